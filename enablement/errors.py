"""The product's error kinds; web/errors.py maps them to HTTP statuses."""

from __future__ import annotations


class EnablementError(Exception):
    """Base of every error the product raises on purpose."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}


class BadRequest(EnablementError):
    """The request itself is malformed (not JSON, wrong structure)."""


class InvalidInput(EnablementError):
    """Well-formed input that fails validation."""

    status = 422
    code = "invalid_input"


class Unauthenticated(EnablementError):
    """No credentials, or credentials that do not check out."""

    status = 401
    code = "unauthenticated"


class Forbidden(EnablementError):
    """Authenticated, but the role does not allow this."""

    status = 403
    code = "forbidden"


class NotFound(EnablementError):
    """The thing asked for does not exist."""

    status = 404
    code = "not_found"


class Conflict(EnablementError):
    """The request conflicts with the current state."""

    status = 409
    code = "conflict"


class PayloadTooLarge(EnablementError):
    """The body or file is larger than allowed."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(EnablementError):
    """The body is not in a content type the route accepts."""

    status = 415
    code = "unsupported_media_type"


class Unavailable(EnablementError):
    """A dependency (database, HubSpot, configuration) is not available."""

    status = 503
    code = "unavailable"


class SchemaOutdated(Unavailable):
    """The database schema is behind the code's migrations."""

    code = "schema_outdated"


class ExternalServiceError(EnablementError):
    """An external service (HubSpot) failed in a way retries did not fix."""

    status = 502
    code = "external_service_error"


def error_kinds() -> tuple[type[EnablementError], ...]:
    """Every kind defined in this module, the base included, in the order of definition."""
    return tuple(
        value
        for value in globals().values()
        if isinstance(value, type) and issubclass(value, EnablementError)
    )
