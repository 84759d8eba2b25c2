"""Signing in with an API token, signing out, and the start page after sign-in."""

from __future__ import annotations

from flask import redirect, render_template, request, session, url_for

from enablement.context import ctx
from enablement.errors import Unauthenticated
from enablement.services.tokens import authenticate, end_web_session, start_web_session
from enablement.web.pages import bp, page, safe_next

MAX_TOKEN_CHARS = 200


@bp.get("/signin")
def signin():
    """The sign-in form."""
    return render_template("pages/signin.html", next=request.args.get("next", ""), error=None)


@bp.post("/signin")
def signin_post():
    """Check the token like the API does; keep only its id in the session."""
    token = (request.form.get("token") or "").strip()
    target = request.form.get("next") or ""
    try:
        if not token or len(token) > MAX_TOKEN_CHARS or "\x00" in token:
            raise Unauthenticated("paste the whole token (it starts with enb_)")
        principal = authenticate(ctx().sessions, f"Bearer {token}")
    except Unauthenticated as e:
        page_html = render_template("pages/signin.html", next=target, error=e.message)
        return page_html, 401
    # NOTE: a fresh session on sign-in, so a session id planted before it is worthless.
    session.clear()
    session["sid"] = start_web_session(ctx().sessions, principal.token_id)
    return redirect(safe_next(target))


@bp.post("/signout")
def signout():
    """End the session on the server (a copied cookie stops working too), then forget it."""
    end_web_session(ctx().sessions, session.get("sid"))
    session.clear()
    return redirect(url_for("pages.signin"))


@bp.get("/app")
@page("sales")
def home(principal):
    """Where each role starts."""
    if principal.has_role("marketing"):
        return redirect(url_for("pages.coverage"))
    return redirect(url_for("pages.deals"))
