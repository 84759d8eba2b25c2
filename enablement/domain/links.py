"""Trackable links: deterministic tokens, their stored hash, and which visitors count as buyers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from urllib.parse import urlsplit

TOKEN_LENGTH = 22  # 132 bits of the HMAC, url-safe base64
_TOKEN = re.compile(rf"^[A-Za-z0-9_-]{{{TOKEN_LENGTH}}}$")

# Substrings (lower case) of User-Agents that are link previewers, crawlers or scripts, not buyers.
# NOTE: curl, wget and HTTP libraries are not counted either: a buyer opens links in a browser.
NON_HUMAN_AGENTS: tuple[str, ...] = (
    "bot",  # Slackbot, LinkedInBot, Twitterbot, TelegramBot, Discordbot, Googlebot, bingbot, ...
    "crawler",
    "spider",
    "slurp",
    "preview",  # "... link preview", SkypeUriPreview, BingPreview
    "facebookexternalhit",
    "facebookcatalog",
    "meta-externalagent",
    "whatsapp",
    "slack-imgproxy",
    "headless",  # HeadlessChrome
    "phantomjs",
    "lighthouse",
    "embedly",
    "iframely",
    "vkshare",
    "pinterest",
    "mastodon",
    "google-inspectiontool",
    "apis-google",
    "feedfetcher",
    "mediapartners",
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "httpx",
    "go-http-client",
    "java/",
    "okhttp",
    "libwww",
    "scrapy",
)


def link_token(secret_key: str, share_id: int) -> str:
    """The trackable-link token of a share: HMAC-SHA256(secret, 'share:<id>'), url-safe, 22 chars."""
    digest = hmac.new(secret_key.encode("utf-8"), f"share:{share_id}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).decode("ascii")[:TOKEN_LENGTH]


def token_hash(token: str) -> str:
    """SHA-256 hex of a link token: what the database stores and looks up."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def looks_like_token(text: str | None) -> bool:
    """True when text has the exact shape of a link token (checked before any lookup)."""
    return bool(text) and _TOKEN.match(text) is not None


def link_url(public_base_url: str, token: str) -> str:
    """The public trackable link for a token."""
    return f"{public_base_url.rstrip('/')}/l/{token}"


def is_human_visitor(user_agent: str | None) -> bool:
    """False for an empty User-Agent and for known previewers, crawlers and scripts."""
    agent = (user_agent or "").strip().lower()
    if not agent:
        return False
    return not any(marker in agent for marker in NON_HUMAN_AGENTS)


def is_redirectable(url: str | None) -> bool:
    """True for an absolute http(s) URL with a host: the only kind of target a link may open."""
    if not url or any(ch in url for ch in "\r\n\t\x00"):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in {"http", "https"} and bool(parts.hostname)
