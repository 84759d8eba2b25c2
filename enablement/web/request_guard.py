"""The edge every request crosses first: body size whatever the framing, storable text, id range."""

from __future__ import annotations

import io

from flask import Flask, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import BaseConverter, IntegerConverter

from enablement.domain.assets import RESERVED_IDS
from enablement.domain.numbers import MAX_ROW_ID
from enablement.domain.storable import text_problem
from enablement.errors import BadRequest, InvalidInput, NotFound, PayloadTooLarge

READ_CHUNK = 64 * 1024
_UNREADABLE = "enablement.body_unreadable"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class RowId(IntegerConverter):
    """`<int:...>` in a route: a non-negative integer a database row id can be (else no match: 404)."""

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", MAX_ROW_ID)
        super().__init__(map, *args, **kwargs)


class AssetId(BaseConverter):
    """`<asset_id:...>`: one path segment that is not a route of its own (/assets/import).

    NOTE: without it /api/v1/assets/import also matched /api/v1/assets/<asset_id>, so OPTIONS
    there advertised GET, PATCH and DELETE, and GET answered "no asset 'import'".
    """

    regex = "(?!(?:" + "|".join(sorted(RESERVED_IDS)) + ")$)[^/]+"


class BoundedBody:
    """WSGI middleware: a body without Content-Length (chunked) is read up front, up to the limit.

    Werkzeug's LimitedStream stops silently at MAX_CONTENT_LENGTH when the server terminates
    the stream (gunicorn, the dev server with chunked bodies): a reader got a prefix and the
    route imported it. Reading the body here makes every route see a framed body, or a
    Content-Length past the limit that the before_request check answers with 413.
    """

    def __init__(self, wsgi_app, app: Flask):
        self.wsgi_app = wsgi_app
        self.app = app

    def __call__(self, environ, start_response):
        """Frame an unframed body, then pass the request on."""
        if _unframed(environ):
            limit = self.app.config.get("MAX_CONTENT_LENGTH")
            try:
                body = read_at_most(environ["wsgi.input"], limit)
            except (OSError, ValueError):
                body, environ[_UNREADABLE] = b"", True
            too_large = limit is not None and len(body) > limit
            environ["wsgi.input"] = io.BytesIO(b"" if too_large else body)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("wsgi.input_terminated", None)
            environ.pop("HTTP_TRANSFER_ENCODING", None)
        return self.wsgi_app(environ, start_response)


def _unframed(environ) -> bool:
    """True when the body's end is known only by reading it (no Content-Length)."""
    if environ.get("CONTENT_LENGTH"):
        return False
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    return chunked or "wsgi.input_terminated" in environ


def read_at_most(stream, limit: int | None) -> bytes:
    """Read to the end or to limit + 1 bytes (enough to know it is too large), whichever is first."""
    parts, size = [], 0
    while limit is None or size <= limit:
        want = READ_CHUNK if limit is None else min(READ_CHUNK, limit + 1 - size)
        chunk = stream.read(want)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


def read_body(limit: int) -> bytes:
    """The raw body, at most `limit` bytes: 413 beyond, whether Content-Length says so or a chunked stream runs on."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes")
    body = read_at_most(request.stream, limit)
    if len(body) > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes")
    return body


def check_request() -> None:
    """Before any view: 413 past the size limit; storable path, query, form and header text."""
    limit = request.max_content_length
    if limit is not None and request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge(
            f"the body is larger than the limit of {limit} bytes ({limit // (1024 * 1024)} MB)"
        )
    if request.environ.get(_UNREADABLE):
        raise BadRequest("the body could not be read to its end")
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str) and text_problem(value):
            raise NotFound(f"no {name.replace('_', ' ')} like that: it {text_problem(value)}")
    for name, value in request.args.items(multi=True):
        reason = _problem_of(name, value)
        if reason:
            raise InvalidInput(
                f"query parameter {name[:60]!r} {reason}", {"query": {name[:60]: [reason]}}
            )
    if request.mimetype in FORM_TYPES:
        # NOTE: the pages' forms reach the same services as the API: same rule for their fields.
        for name, value in request.form.items(multi=True):
            reason = _problem_of(name, value)
            if reason:
                raise InvalidInput(
                    f"form field {str(name)[:60]!r} {reason}", {"form": {str(name)[:60]: [reason]}}
                )
    for name, value in request.headers.items():
        if "\x00" in value:
            raise BadRequest(f"header {name[:60]!r} contains a NUL byte")


def _problem_of(*texts) -> str | None:
    """The first storage problem among a field's name and value (non-strings have none here)."""
    for text in texts:
        if isinstance(text, str):
            reason = text_problem(text)
            if reason:
                return reason
    return None


def register_request_guard(app: Flask) -> None:
    """Install the converter, the middleware and the check (before blueprints add routes)."""
    app.url_map.converters["int"] = RowId
    app.url_map.converters["asset_id"] = AssetId
    app.wsgi_app = BoundedBody(app.wsgi_app, app)
    app.before_request(check_request)
