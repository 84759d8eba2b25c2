"""'Paste a URL': page metadata read under SSRF guards (responses stands in for the web)."""

from __future__ import annotations

import pytest
import requests
import responses

from enablement.domain.page_metadata import read_metadata
from enablement.errors import ExternalServiceError, InvalidInput
from enablement.services import page_metadata
from enablement.services.page_metadata import fetch_page_metadata, is_public

PUBLIC = "93.184.216.34"
PAGE = """<html><head><title>Fallback title</title>
<meta property="og:title" content="Why buying committees stall &amp; how to unstick them">
<meta name="description" content="  A field guide\x00 for   heads of sales. ">
<meta name="author" content="Dana Whitfield"></head><body>x</body></html>"""


def resolver(table: dict[str, list[str]]):
    """A DNS stand-in: host name -> addresses."""

    def resolve(host, port):
        return table[host]

    return resolve


DNS = resolver({"example.com": [PUBLIC], "evil.example": ["10.0.0.7"], "cdn.example": [PUBLIC]})


@responses.activate
def test_title_summary_and_author_come_from_the_page():
    responses.get(f"http://{PUBLIC}/guide", body=PAGE, content_type="text/html; charset=utf-8")
    found = fetch_page_metadata("http://example.com/guide", resolve=DNS)
    assert found == {
        "url": "http://example.com/guide",
        "title": "Why buying committees stall & how to unstick them",
        "summary": "A field guide for heads of sales.",
        "author": "Dana Whitfield",
    }
    # The connection went to the checked address, asking for the original host.
    assert responses.calls[0].request.headers["Host"] == "example.com"


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.1",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "224.0.0.1",
        "100.64.0.1",
        "0.0.0.0",  # noqa: S104 - an address we must refuse, not one we bind
        "::ffff:127.0.0.1",
        "240.0.0.1",
    ],
)
def test_inner_addresses_are_never_fetched(address):
    assert not is_public(address)
    with responses.RequestsMock() as mocked:  # no request may be made at all
        with pytest.raises(InvalidInput, match="private or reserved"):
            fetch_page_metadata(
                "http://inside.example/", resolve=resolver({"inside.example": [address]})
            )
        assert len(mocked.calls) == 0


# IPv6 forms that carry an inner IPv4 address: each reaches the address it carries.
EMBEDDING_INNER = [
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a00:1::1",  # 6to4 of 10.0.0.1
    "2002:a9fe:a9fe::",  # 6to4 of the cloud metadata address
    "64:ff9b::7f00:1",  # NAT64 (well-known prefix) of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b:1::808:808",  # NAT64 local-use prefix: one network's own, never public
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo, client 192.0.2.45 (documentation net)
    "2001:0:7f00:1::f7f7:f7f7",  # Teredo whose server is 127.0.0.1
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
    "::ffff:10.0.0.1",  # IPv4-mapped
    "::ffff:0:7f00:1",  # IPv4-translated
    "::127.0.0.1",  # IPv4-compatible
    "::a9fe:a9fe",
]
EMBEDDING_PUBLIC = [
    "2002:5db8:d822::1",  # 6to4 of 93.184.216.34
    "64:ff9b::5db8:d822",  # NAT64 of 93.184.216.34
    "2001:0:4136:e378:8000:63bf:a247:27dd",  # Teredo, server and client both public
    "::ffff:93.184.216.34",
]


@pytest.mark.parametrize("address", EMBEDDING_INNER)
def test_ipv6_forms_carrying_an_inner_ipv4_address_are_never_fetched(address):
    assert not is_public(address)
    with responses.RequestsMock() as mocked:
        with pytest.raises(InvalidInput, match="private or reserved"):
            fetch_page_metadata(
                "http://inside.example/", resolve=resolver({"inside.example": [address]})
            )
        assert len(mocked.calls) == 0


@pytest.mark.parametrize("address", EMBEDDING_PUBLIC)
def test_ipv6_forms_carrying_a_public_ipv4_address_are_judged_by_it(address):
    assert is_public(address)


def test_one_private_address_among_public_ones_is_refused():
    mixed = resolver({"split.example": [PUBLIC, "10.0.0.1"]})
    with pytest.raises(InvalidInput):
        fetch_page_metadata("https://split.example/", resolve=mixed)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "",
        "http://user:pw@example.com/",
        "http://example.com:99999/",
        "http://exa\x00mple.com/",
    ],
)
def test_only_plain_http_urls_are_accepted(url):
    with pytest.raises(InvalidInput):
        fetch_page_metadata(url, resolve=DNS)


@responses.activate
def test_a_redirect_to_a_private_address_is_refused():
    responses.get(
        f"http://{PUBLIC}/go", status=302, headers={"Location": "http://evil.example/admin"}
    )
    with pytest.raises(InvalidInput, match="private or reserved"):
        fetch_page_metadata("http://example.com/go", resolve=DNS)
    assert len(responses.calls) == 1


@responses.activate
def test_a_public_redirect_is_followed_and_rechecked():
    responses.get(
        f"http://{PUBLIC}/old", status=301, headers={"Location": "https://cdn.example/new"}
    )
    responses.get(f"https://{PUBLIC}/new", body=PAGE, content_type="text/html")
    found = fetch_page_metadata("http://example.com/old", resolve=DNS)
    assert found["url"] == "https://cdn.example/new"
    assert found["author"] == "Dana Whitfield"


@responses.activate
def test_redirect_loops_stop_after_three():
    responses.get(f"http://{PUBLIC}/loop", status=302, headers={"Location": "/loop"})
    with pytest.raises(InvalidInput, match="more than 3 redirects"):
        fetch_page_metadata("http://example.com/loop", resolve=DNS)
    assert len(responses.calls) == 4


@responses.activate
def test_an_oversized_page_is_refused():
    big = "<html><head><title>x</title></head>" + "a" * (page_metadata.MAX_BYTES + 10)
    responses.get(
        f"http://{PUBLIC}/big",
        body=big,
        content_type="text/html",
        auto_calculate_content_length=False,
    )
    with pytest.raises(InvalidInput, match="larger than 1 MB"):
        fetch_page_metadata("http://example.com/big", resolve=DNS)


@responses.activate
def test_a_declared_oversized_page_is_refused_before_reading():
    responses.get(
        f"http://{PUBLIC}/big",
        body="x",
        content_type="text/html",
        headers={"Content-Length": str(50_000_000)},
        auto_calculate_content_length=False,
    )
    with pytest.raises(InvalidInput, match="larger than"):
        fetch_page_metadata("http://example.com/big", resolve=DNS)


@responses.activate
def test_something_other_than_html_is_refused():
    responses.get(f"http://{PUBLIC}/file.pdf", body=b"%PDF-1.7", content_type="application/pdf")
    with pytest.raises(InvalidInput, match="not an HTML page"):
        fetch_page_metadata("http://example.com/file.pdf", resolve=DNS)


@responses.activate
def test_a_timeout_is_a_clear_error():
    responses.get(f"http://{PUBLIC}/slow", body=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(ExternalServiceError, match="too long"):
        fetch_page_metadata("http://example.com/slow", resolve=DNS)


@responses.activate
def test_an_error_status_is_reported():
    responses.get(f"http://{PUBLIC}/gone", status=404, body="no", content_type="text/html")
    with pytest.raises(ExternalServiceError, match="HTTP 404"):
        fetch_page_metadata("http://example.com/gone", resolve=DNS)


def test_the_parser_survives_hostile_markup():
    hostile = (
        "<title>"
        + "<b>" * 5000
        + "\ud800 deep</title><meta name=author content='"
        + "x" * 9000
        + "'>"
    )
    found = read_metadata(hostile)
    assert found["title"] == "deep"
    assert len(found["author"]) <= 255
    assert read_metadata("") == {"title": None, "summary": None, "author": None}
