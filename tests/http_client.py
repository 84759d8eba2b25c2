"""Raw HTTP for tests that need what a test client cannot send: a chunked body on a real socket."""

from __future__ import annotations

import http.client
import json


def chunked_request(port: int, method: str, path: str, body: bytes, headers: dict, timeout=30):
    """Send a body with Transfer-Encoding: chunked (no Content-Length) over real HTTP; (status, json)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.putrequest(method, path)
    for name, value in {**headers, "Transfer-Encoding": "chunked"}.items():
        conn.putheader(name, value)
    conn.endheaders()
    try:
        for start in range(0, len(body), 64 * 1024):
            piece = body[start : start + 64 * 1024]
            conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may answer before reading everything, as it should past the limit
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    try:
        return response.status, json.loads(payload or b"null")
    except ValueError:
        return response.status, None
