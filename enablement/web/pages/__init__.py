"""The browser pages: sign in with a token, then sales, asset library, reports and stage map.

Every page calls the same services as the API; the role rules are the API's (services.tokens,
Principal.owner_scope). The session cookie holds the token's id, never the token.
"""

from __future__ import annotations

import functools

from flask import Blueprint, g, redirect, request, session, url_for
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import select

from enablement.context import ctx
from enablement.db.models import ApiToken
from enablement.render import time_element
from enablement.services.tokens import Principal, require_role

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
    """The principal of the session's token, or None (no session, or the token was revoked)."""
    if "principal" in g:
        return g.principal
    token_id = session.get("token_id")
    principal = None
    if isinstance(token_id, int):
        with ctx().sessions() as db:
            record = db.execute(
                select(ApiToken.id, ApiToken.name, ApiToken.role, ApiToken.owner_id).where(
                    ApiToken.id == token_id, ApiToken.revoked_at.is_(None)
                )
            ).first()
        if record is not None:
            principal = Principal(record.id, record.name, record.role, record.owner_id)
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
    """Where to go after signing in: a local path only (never another site)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("pages.home")


from enablement.web.pages import (  # noqa: E402  (the routes register on bp)
    assets,
    reports,
    sales,
    signin,
    stage_map,
)

__all__ = ["bp", "assets", "reports", "sales", "signin", "stage_map"]
