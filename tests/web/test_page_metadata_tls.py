"""The page fetch's pinned connection over real HTTPS on loopback: TLS still checks the host name.

responses stands in for the web in test_page_metadata.py, which replaces the pinning adapter;
here a real TLS server (a trustme CA and certificate) answers on 127.0.0.1.
"""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import trustme

from enablement.errors import ExternalServiceError, InvalidInput
from enablement.services.page_metadata import fetch_page_metadata

LOOPBACK = "127.0.0.1"
PAGE = b"""<html><head><title>Why buying committees stall</title>
<meta name="author" content="Dana Whitfield"></head><body>x</body></html>"""


class TlsPageServer(ThreadingHTTPServer):
    """An HTTPS server on loopback that counts connections and records SNI names and Host headers."""

    daemon_threads = True

    def __init__(self, context: ssl.SSLContext):
        self.connections, self.server_names, self.hosts = 0, [], []
        context.sni_callback = lambda sock, name, ctx: self.server_names.append(name)
        self.context = context
        super().__init__((LOOPBACK, 0), PageHandler)

    def get_request(self):
        """Count the TCP connection before the handshake (which may fail), then wrap it in TLS."""
        sock, address = self.socket.accept()
        self.connections += 1
        return self.context.wrap_socket(sock, server_side=True), address

    def handle_error(self, request, client_address):
        """A refused handshake is what some tests want; no traceback on stderr."""


class PageHandler(BaseHTTPRequestHandler):
    """Answers every GET with PAGE."""

    def do_GET(self):  # noqa: N802 - the name http.server calls
        self.server.hosts.append(self.headers.get("Host"))
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args):
        """Quiet."""


@pytest.fixture(scope="module")
def ca():
    """A certificate authority made for this test module."""
    return trustme.CA()


@pytest.fixture
def ca_file(ca, tmp_path) -> str:
    """The CA's certificate as a PEM file, the only authority the fetch trusts."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def serve(ca):
    """serve(name): an HTTPS server on loopback presenting a certificate for that name."""
    servers = []

    def start(name: str, authority: trustme.CA | None = None) -> TlsPageServer:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        (authority or ca).issue_cert(name).configure_cert(context)
        server = TlsPageServer(context)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def to(table: dict[str, list[str]]):
    """A DNS stand-in: host name -> addresses."""
    return lambda host, port: table[host]


def only_loopback(address: str) -> bool:
    """The address policy of these tests: the test's own server is the 'public' internet."""
    return address == LOOPBACK


def test_the_pinned_connection_sends_sni_for_and_verifies_the_host_name(serve, ca_file):
    server = serve("news.example.com")
    port = server.server_address[1]
    found = fetch_page_metadata(
        f"https://news.example.com:{port}/guide",
        resolve=to({"news.example.com": [LOOPBACK]}),
        allowed=only_loopback,
        ca_file=ca_file,
    )
    assert found["title"] == "Why buying committees stall"
    assert found["author"] == "Dana Whitfield"
    # The name was never looked up in real DNS: the connection went to the pinned address,
    # and TLS named (and checked) the host, not the address.
    assert server.connections == 1
    assert server.server_names == ["news.example.com"]
    assert server.hosts == ["news.example.com"]


def test_a_certificate_for_another_name_is_refused(serve, ca_file):
    server = serve("other.example.org")
    port = server.server_address[1]
    with pytest.raises(ExternalServiceError, match="SSLError"):
        fetch_page_metadata(
            f"https://news.example.com:{port}/guide",
            resolve=to({"news.example.com": [LOOPBACK]}),
            allowed=only_loopback,
            ca_file=ca_file,
        )
    assert server.connections == 1 and server.hosts == []


def test_a_certificate_from_an_authority_not_trusted_is_refused(serve, ca_file):
    server = serve("news.example.com", authority=trustme.CA())
    port = server.server_address[1]
    with pytest.raises(ExternalServiceError, match="SSLError"):
        fetch_page_metadata(
            f"https://news.example.com:{port}/guide",
            resolve=to({"news.example.com": [LOOPBACK]}),
            allowed=only_loopback,
            ca_file=ca_file,
        )
    assert server.hosts == []


@pytest.mark.parametrize("inner", [LOOPBACK, "10.0.0.7", "::ffff:127.0.0.1"])
def test_a_name_resolving_to_an_inner_address_is_refused_before_connecting(serve, ca_file, inner):
    server = serve("intranet.example.com")
    port = server.server_address[1]
    # The default address policy, with a live server listening where the name points.
    with pytest.raises(InvalidInput, match="private or reserved"):
        fetch_page_metadata(
            f"https://intranet.example.com:{port}/",
            resolve=to({"intranet.example.com": [inner]}),
            ca_file=ca_file,
        )
    assert server.connections == 0
