"""Fetching a page's metadata for "paste a URL", safely: the server never reaches inside networks.

SSRF guards: http(s) only; the host name is resolved here and every address must be public
(not private, loopback, link-local, multicast, reserved or shared); the connection goes to
the checked address (no second DNS lookup an attacker could answer differently); at most
MAX_BYTES are read within TIMEOUT seconds; redirects are followed by hand, each one checked
the same way, at most MAX_REDIRECTS.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from enablement.domain.assets import is_internal_address
from enablement.domain.page_metadata import read_metadata
from enablement.errors import ExternalServiceError, InvalidInput

MAX_BYTES = 1_000_000
TIMEOUT = 5.0
MAX_REDIRECTS = 3
MAX_URL = 2048
HTML_TYPES = ("text/html", "application/xhtml+xml")
USER_AGENT = "enablement-metadata/1.0 (+fills asset title, summary and author)"


def _refuse(message: str) -> InvalidInput:
    """A URL we will not fetch, as a field error of `url`."""
    return InvalidInput(message, {"url": [message]})


def resolve_host(host: str, port: int) -> list[str]:
    """Every address the host name resolves to (TCP)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise _refuse(f"the host {host!r} does not resolve") from None
    return list(dict.fromkeys(info[4][0] for info in infos))


def is_public(address: str) -> bool:
    """True for a globally routable unicast address (the asset rule's classification, negated)."""
    return not is_internal_address(ipaddress.ip_address(address.split("%", 1)[0]))


def checked_target(
    url: str, resolve=resolve_host, allowed: Callable[[str], bool] = is_public
) -> tuple[str, str, str]:
    """(url to connect to with the checked address, host name, the original url) or InvalidInput.

    Every address the host resolves to must be `allowed` (is_public; tests that serve on loopback
    allow their own address).
    """
    if not isinstance(url, str) or not url.strip() or len(url) > MAX_URL or "\x00" in url:
        raise _refuse(f"give an http(s) URL of at most {MAX_URL} characters")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise _refuse("only http and https URLs can be fetched")
    if parts.username or parts.password:
        raise _refuse("a URL with a user name or password cannot be fetched")
    host = parts.hostname
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise _refuse("the URL's port is not a number from 1 to 65535") from None
    if not host:
        raise _refuse("the URL has no host")
    addresses = resolve(host, port)
    if not addresses or not all(allowed(a) for a in addresses):
        raise _refuse(f"{host} is a private or reserved address; only public pages can be fetched")
    address = addresses[0]
    netloc = f"[{address}]" if ":" in address else address
    if parts.port:
        netloc += f":{parts.port}"
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    return pinned, host, url.strip()


class _PinnedHost(HTTPAdapter):
    """Connects to an IP address while TLS checks the certificate of the original host name."""

    def __init__(self, host: str, **kwargs):
        self._host = host
        super().__init__(max_retries=0, **kwargs)

    def init_poolmanager(self, *args, **kwargs):
        """Every pool sends SNI for, and verifies the certificate of, the host name."""
        kwargs["server_hostname"] = self._host
        kwargs["assert_hostname"] = self._host
        super().init_poolmanager(*args, **kwargs)


def fetch_page_metadata(
    url: str,
    *,
    resolve=resolve_host,
    allowed: Callable[[str], bool] = is_public,
    ca_file: str | None = None,
) -> dict:
    """{url, title, summary, author} of a public HTML page (the url after redirects).

    HTTPS certificates are verified against ca_file when given, else requests' CA bundle.
    """
    deadline = time.monotonic() + TIMEOUT
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        pinned, host, original = checked_target(current, resolve, allowed)
        response = _get(pinned, host, deadline, ca_file)
        try:
            if response.is_redirect:
                location = response.headers.get("Location", "")
                current = urljoin(original, location)
                continue
            if response.status_code >= 400:
                raise ExternalServiceError(
                    f"the page answered HTTP {response.status_code}",
                    {"url": [f"the page answered HTTP {response.status_code}"]},
                )
            kind = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if kind not in HTML_TYPES:
                raise _refuse(f"the URL is not an HTML page ({kind or 'no content type'})")
            html = _read_limited(response, deadline)
        finally:
            response.close()
        return {"url": original, **read_metadata(html)}
    raise _refuse(f"more than {MAX_REDIRECTS} redirects")


def _get(pinned: str, host: str, deadline: float, ca_file: str | None = None) -> requests.Response:
    """One GET to the checked address, without following redirects."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise ExternalServiceError("the page took too long", {"url": ["the page took too long"]})
    with requests.Session() as session:
        session.trust_env = False  # NOTE: no proxy from the environment between us and the check
        session.mount("https://", _PinnedHost(host))
        session.mount("http://", _PinnedHost(host))
        try:
            return session.get(
                pinned,
                headers={"Host": host, "User-Agent": USER_AGENT, "Accept": "text/html"},
                allow_redirects=False,
                stream=True,
                verify=ca_file or True,  # NOTE: never False: an unverified page is refused
                timeout=(min(remaining, TIMEOUT), min(remaining, TIMEOUT)),
            )
        except requests.Timeout:
            raise ExternalServiceError(
                "the page took too long", {"url": ["the page took too long"]}
            ) from None
        except requests.RequestException as e:
            message = f"could not fetch the page ({type(e).__name__})"
            raise ExternalServiceError(message, {"url": [message]}) from None


def _read_limited(response: requests.Response, deadline: float) -> str:
    """The body as text, refused past MAX_BYTES or past the deadline."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > MAX_BYTES:
        raise _refuse(f"the page is larger than {MAX_BYTES // 1_000_000} MB")
    chunks, size = [], 0
    try:
        for chunk in response.iter_content(64 * 1024):
            size += len(chunk)
            if size > MAX_BYTES:
                raise _refuse(f"the page is larger than {MAX_BYTES // 1_000_000} MB")
            if time.monotonic() > deadline:
                raise ExternalServiceError(
                    "the page took too long", {"url": ["the page took too long"]}
                )
            chunks.append(chunk)
    except requests.RequestException:
        raise ExternalServiceError(
            "the page could not be read", {"url": ["could not read the page"]}
        ) from None
    encoding = (
        response.encoding if "charset" in response.headers.get("Content-Type", "") else "utf-8"
    )
    try:
        return b"".join(chunks).decode(encoding or "utf-8", errors="replace")
    except LookupError:
        return b"".join(chunks).decode("utf-8", errors="replace")
