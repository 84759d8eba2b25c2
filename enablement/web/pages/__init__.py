"""The browser pages: sign in with a token, then sales, asset library, reports and stage map.

Every page calls the same services as the API; the role rules are the API's (services.tokens,
Principal.owner_scope). The session cookie names a server-side session (services.tokens), never the token.
"""

from __future__ import annotations

import functools
import unicodedata
from urllib.parse import quote, unquote, urlsplit

from flask import Blueprint, g, redirect, request, session, url_for
from flask_wtf.csrf import CSRFProtect

from enablement.context import ctx
from enablement.render import time_element
from enablement.services.tokens import Principal, require_role, web_session_principal

bp = Blueprint("pages", __name__)
csrf = CSRFProtect()

# NOTE: no 'unsafe-inline' anywhere: styles and scripts are files under /static, and charts
# are SVG elements styled by class, so an injected <script> or style attribute never runs.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@bp.record_once
def _wire_csrf(state) -> None:
    """CSRF protection for the pages only: API routes authenticate with a bearer token instead."""
    state.app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    csrf.init_app(state.app)


@bp.before_request
def _check_csrf():
    """Every form post carries the session's CSRF token."""
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()


@bp.after_request
def _page_headers(response):
    """A strict Content-Security-Policy, and no caching of signed-in pages."""
    response.headers["Content-Security-Policy"] = PAGE_POLICY
    response.headers.setdefault("Cache-Control", "private, no-store")
    return response


@bp.app_context_processor
def _signed_in():
    """Templates know who is signed in (for the navigation)."""
    try:
        return {"principal": session_principal()}
    except Exception:  # noqa: BLE001
        # NOTE: the error page of a database outage must still render: signed out, then.
        return {"principal": None}


@bp.app_template_filter("when")
def _when(value) -> str:
    """A timestamp as people read it: a <time> element with readable UTC text (render.time_element)."""
    return time_element(value)


@bp.app_template_filter("combine")
def _combine(args: dict, **changes) -> dict:
    """Query arguments with some replaced (pager links keep the filters)."""
    return {**args, **changes}


def session_principal() -> Principal | None:
    """The principal of the session, or None (no session, signed out, expired, or revoked)."""
    if "principal" in g:
        return g.principal
    principal = None
    if "sid" in session:
        principal = web_session_principal(ctx().sessions, session.get("sid"))
    g.principal = principal
    return principal


def page(role: str):
    """A page view for `role` and up: signed-out visitors go to the sign-in page first."""

    def decorate(view):
        @functools.wraps(view)
        def wrapper(**kwargs):
            principal = session_principal()
            if principal is None:
                return redirect(url_for("pages.signin", next=request.full_path.rstrip("?")))
            require_role(principal, role)
            return view(principal, **kwargs)

        return wrapper

    return decorate


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site only (never another site).

    NOTE: decided on the normalised URL, the way a browser reads it: percent-decoded (twice
    over and more, until it stops changing), so that a tab, CR or LF, other whitespace or
    control and format characters, a backslash or an encoded slash can never turn "/x" into
    "//evil.example". Anything doubtful goes to the start page; it is never an error.
    """
    if not isinstance(target, str) or not target.startswith("/") or len(target) > MAX_NEXT:
        return url_for("pages.home")
    decoded = target
    for _ in range(4):
        once = unquote(decoded)
        if once == decoded:
            break
        decoded = once
    else:
        return url_for("pages.home")  # still encoded after four rounds: nobody's real path
    parts = urlsplit(decoded)
    if (
        any(_unsafe_in_path(c) for c in target)
        or any(_unsafe_once_decoded(c) for c in decoded)
        or decoded.startswith("//")
        or decoded[1:2].isspace()
        or parts.scheme
        or parts.netloc
    ):
        return url_for("pages.home")
    # Sent as printable ASCII only (what Location allows); percent-escapes already there stay.
    return quote(target, safe="/?&=%:@!$'()*+,;~-._#")


MAX_NEXT = 2000


def _unsafe_in_path(char: str) -> bool:
    """Whitespace, control, format and separator characters: none belongs in a path as sent."""
    return char.isspace() or unicodedata.category(char) in ("Cc", "Cf", "Zs", "Zl", "Zp", "Cs")


def _unsafe_once_decoded(char: str) -> bool:
    """What no path may hold even percent-encoded: control, format and line characters, "\\"."""
    return char == "\\" or unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Cs")


from enablement.web.pages import (  # noqa: E402  (the routes register on bp)
    assets,
    reports,
    sales,
    signin,
    stage_map,
)

__all__ = ["bp", "assets", "reports", "sales", "signin", "stage_map"]
