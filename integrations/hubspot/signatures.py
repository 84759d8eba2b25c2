"""HubSpot's v3 request signature, checked with the SDK's helper (webhooks and the app card).

v3 signs METHOD + URI + BODY + TIMESTAMP with HMAC-SHA256 and the app's client secret, base64.
The URI is the one HubSpot called, with a few percent-escapes decoded; we rebuild it from our
configured public base URL (never the Host header, which the caller controls).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

MAX_SKEW = timedelta(minutes=5)
SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
# HubSpot decodes these escapes in the URI before signing (its v3 validation guide).
_DECODED = {
    "3A": ":",
    "2F": "/",
    "3F": "?",
    "40": "@",
    "21": "!",
    "24": "$",
    "27": "'",
    "28": "(",
    "29": ")",
    "2A": "*",
    "2C": ",",
    "3B": ";",
}
_ESCAPE = re.compile(r"%(" + "|".join(_DECODED) + r")", re.IGNORECASE)


def signed_url(public_base_url: str, path: str, query: bytes | str) -> str:
    """The URI HubSpot signed: our public base URL, the path, the raw query string, v3-decoded."""
    if isinstance(query, bytes):
        query = query.decode("latin-1")
    url = public_base_url.rstrip("/") + path + (f"?{query}" if query else "")
    return _ESCAPE.sub(lambda m: _DECODED[m.group(1).upper()], url)


def sign_v3(secret: str, method: str, url: str, body: bytes, timestamp: str) -> str:
    """The v3 signature HubSpot sends for this request (the SDK's Signature.get_signature)."""
    # NOTE: imported here: the SDK package is large and only signed routes need it.
    from hubspot.utils.signature import Signature

    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        # The SDK takes text; a body that is not UTF-8 is signed over its raw bytes.
        source = method.encode() + url.encode() + body + timestamp.encode()
        return base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest()).decode()
    return Signature.get_signature(secret, text, "v3", url, method, timestamp)


def verify_v3(
    secret: str,
    method: str,
    url: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    now: datetime,
) -> str | None:
    """None when the signature holds and the timestamp is within 5 minutes of now; else the reason."""
    if not signature or not timestamp:
        return f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER}"
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 15:
        return "the request timestamp is not epoch milliseconds"
    sent = datetime.fromtimestamp(int(timestamp) / 1000, tz=UTC)
    if abs(now - sent) > MAX_SKEW:
        return "the request timestamp is more than 5 minutes away from now"
    if not signature.isascii():
        return "the signature does not match"
    expected = sign_v3(secret, method.upper(), url, body, timestamp)
    # Constant-time comparison: the time taken must not reveal how much of a guess matched.
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii")):
        return "the signature does not match"
    return None


def verify_request(
    secret: str,
    public_base_url: str,
    method: str,
    path: str,
    query: bytes | str,
    body: bytes,
    headers: Mapping[str, str],
    now: datetime,
) -> str | None:
    """None when a request to our public URL carries HubSpot's valid v3 signature (headers as sent); else the reason."""
    return verify_v3(
        secret,
        method,
        signed_url(public_base_url, path, query),
        body,
        headers.get(SIGNATURE_HEADER),
        headers.get(TIMESTAMP_HEADER),
        now,
    )
