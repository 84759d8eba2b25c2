"""One error map: product errors and HTTP errors become the documented JSON shape (or HTML)."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, make_response, render_template, request
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from enablement.db import OUTAGE_ERRORS, RETRY_AFTER_SECONDS, is_database_failure, outage
from enablement.errors import EnablementError, PayloadTooLarge, error_kinds

log = logging.getLogger(__name__)

INTERNAL_ERROR = "internal_error"
# HTTP errors that routing answers by itself, with no product kind behind them.
_ROUTING_ERRORS: tuple[type[HTTPException], ...] = (MethodNotAllowed,)


def http_error_code(e: HTTPException) -> str:
    """The code of an HTTP error: its name in snake case (a 413 is the product's payload_too_large)."""
    if e.code == PayloadTooLarge.status:
        return PayloadTooLarge.code
    return (e.name or "error").lower().replace(" ", "_")


def documented_codes() -> tuple[str, ...]:
    """Every code an error answer can carry, by status: the product's kinds, routing's, the 500."""
    answers = {(kind.status, kind.code) for kind in error_kinds()}
    answers |= {(kind.code, http_error_code(kind())) for kind in _ROUTING_ERRORS}
    answers.add((500, INTERNAL_ERROR))
    return tuple(code for _, code in sorted(answers))


def _wants_html() -> bool:
    """Pages and browsers get HTML; the API and everyone else get JSON."""
    if request.path.startswith(("/api/", "/webhooks/", "/integrations/", "/l/")):
        return False
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return (
        best == "text/html"
        and request.accept_mimetypes[best] > request.accept_mimetypes["application/json"]
    )


def error_response(status: int, code: str, message: str, details: dict | None = None):
    """Answer an error in the caller's format."""
    if _wants_html():
        return render_template("error.html", status=status, code=code, message=message), status
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return jsonify(body), status


def outage_response(error: Exception):
    """503 with Retry-After for a database that cannot be reached (the documented answer)."""
    unavailable = outage(error)
    log.warning("%s on %s %s", unavailable.message, request.method, request.path)
    response, status = error_response(
        unavailable.status, unavailable.code, unavailable.message, unavailable.details
    )
    response = make_response(response, status)
    if unavailable.retry:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def register_error_handlers(app: Flask) -> None:
    """Install handlers for product errors, HTTP errors and the unexpected."""

    @app.errorhandler(EnablementError)
    def _product_error(e: EnablementError):
        return error_response(e.status, e.code, e.message, e.details)

    for kind in OUTAGE_ERRORS:
        # NOTE: a stopped, restarting or dropped database is an outage (503, try again), not a
        # bug (500); sessions roll back on the way out, so nothing half-written remains.
        app.register_error_handler(kind, outage_response)

    @app.errorhandler(sa_exc.ProgrammingError)
    def _programming_error(e: sa_exc.ProgrammingError):
        # NOTE: a missing grant ("permission denied") is the operator's to fix, told in one line;
        # any other ProgrammingError is a bug and answers like one.
        if is_database_failure(e):
            return outage_response(e)
        return _unexpected(e)

    @app.errorhandler(HTTPException)
    def _http_error(e: HTTPException):
        answer = error_response(e.code or 500, http_error_code(e), e.description or e.name)
        if getattr(e, "valid_methods", None):
            # RFC 9110: a 405 says which methods the resource does allow.
            return (*answer, {"Allow": ", ".join(sorted(e.valid_methods))})
        return answer

    @app.errorhandler(Exception)
    def _unexpected(e: Exception):
        # Services roll back their own sessions on the way out; here we only log and answer.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, INTERNAL_ERROR, "something went wrong on our side")
