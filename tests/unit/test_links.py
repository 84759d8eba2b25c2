"""Link tokens, bot detection and redirect targets (pure)."""

import pytest

from enablement.domain.links import (
    TOKEN_LENGTH,
    is_human_visitor,
    is_redirectable,
    link_token,
    link_url,
    looks_like_token,
    token_hash,
)

BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Safari/605.1.15"
)


def test_a_token_is_deterministic_per_share_and_secret():
    assert link_token("s", 1) == link_token("s", 1)
    assert link_token("s", 1) != link_token("s", 2)
    assert link_token("s", 1) != link_token("other", 1)


def test_a_token_is_url_safe_and_of_fixed_length():
    for share_id in range(200):
        token = link_token("secret", share_id)
        assert len(token) == TOKEN_LENGTH
        assert looks_like_token(token)


def test_the_stored_hash_is_not_the_token():
    token = link_token("s", 7)
    assert token_hash(token) != token
    assert len(token_hash(token)) == 64


@pytest.mark.parametrize(
    "text", ["", None, "../", "../../etc/passwd", "a" * 23, "a" * 21, "a" * 5000, "abc def" * 3]
)
def test_malformed_tokens_are_recognised_before_any_lookup(text):
    assert not looks_like_token(text)


def test_link_url_joins_the_base_without_a_double_slash():
    assert link_url("https://x.example/", "tok") == "https://x.example/l/tok"


@pytest.mark.parametrize(
    "agent",
    [
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "Twitterbot/1.0",
        "WhatsApp/2.23.20.0",
        "TelegramBot (like TwitterBot)",
        "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/120.0 Safari/537.36",
        "Mozilla/5.0 ... SkypeUriPreview Preview/0.5",
        "curl/8.5.0",
        "python-requests/2.31.0",
        "",
        "   ",
        None,
    ],
)
def test_previewers_crawlers_scripts_and_empty_agents_are_not_buyers(agent):
    assert not is_human_visitor(agent)


def test_a_browser_is_a_buyer():
    assert is_human_visitor(BROWSER)


@pytest.mark.parametrize(
    "url,ok",
    [
        ("https://example.com/post", True),
        ("http://example.com", True),
        ("javascript:alert(1)", False),
        ("//evil.example/x", False),
        ("/relative/path", False),
        ("data:text/html,hi", False),
        ("https://example.com/\r\nSet-Cookie: x=1", False),
        ("", False),
        (None, False),
    ],
)
def test_only_absolute_http_urls_are_redirect_targets(url, ok):
    assert is_redirectable(url) is ok
