"""enablement: thought-leadership content for B2B sales, and proof of what works."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask

from enablement import db
from enablement.config import Settings
from enablement.context import Container
from enablement.services.jobs import job_queue


def template_folder() -> Path:
    """The Jinja templates: enablement/templates when installed, else the top-level templates/."""
    package = Path(__file__).resolve().parent
    # NOTE: the installed copy is checked first: next to site-packages/enablement, a stray
    # site-packages/templates may belong to another distribution.
    installed = package / "templates"
    return installed if installed.is_dir() else package.parent / "templates"


TEMPLATES = template_folder()


def create_app(settings: Settings | None = None, **overrides) -> Flask:
    """Build the app: settings, database, blueprints, error handlers, commands."""
    settings = (settings or Settings.from_env()).with_overrides(**overrides)
    app = Flask(__name__, template_folder=str(TEMPLATES), instance_path=str(settings.instance_path))
    register_config(app, settings)
    container = register_database(app, settings)
    register_crm(app, container)
    register_request_guard(app)
    register_blueprints(app)
    register_errors(app)
    register_security_headers(app)
    register_commands(app)
    # NOTE: a server (gunicorn, `enablement serve`) refuses an outdated schema; commands loaded
    # through a click context (`flask --app wsgi enablement init`) must still be able to upgrade it.
    if settings.check_schema and click.get_current_context(silent=True) is None:
        db.check_schema(container.engine)
    return app


def register_config(app: Flask, settings: Settings) -> None:
    """Flask's own settings derived from ours."""
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        TESTING=settings.testing,
        JSON_SORT_KEYS=False,
        # The pages' session cookie holds a token id: never readable by scripts, never cross-site.
        SESSION_COOKIE_SECURE=settings.public_base_url.startswith("https://"),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )


def register_database(app: Flask, settings: Settings) -> Container:
    """Engine and session factory, held by the app's container."""
    engine = db.make_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
    container = Container(settings=settings, engine=engine, sessions=db.make_sessions(engine))
    # NOTE: nothing of the job engine is loaded or connected until the first job is queued.
    container.jobs = job_queue(container)
    app.extensions["enablement"] = container
    return container


def register_crm(app: Flask, container: Container) -> None:
    """The CRM behind the Crm interface: HubSpot when HUBSPOT_ACCESS_TOKEN is set, else none."""
    container.crm = None
    if container.settings.hubspot_access_token:
        # NOTE: imported here so that an app without a CRM never loads the HubSpot SDK.
        from integrations.hubspot.client import HubSpotCrm

        container.crm = HubSpotCrm.from_settings(container.settings)


def register_request_guard(app: Flask) -> None:
    """Size limit whatever the framing, storable text and id ranges, before any view runs."""
    from enablement.web.request_guard import register_request_guard as register

    register(app)


def register_blueprints(app: Flask) -> None:
    """Every route of the service."""
    from enablement.web import blueprints

    # NOTE: werkzeug answers a path with doubled slashes (/l//evil.com) with a redirect to the
    # merged path, built from the request's Host header: an open redirect for anyone who can
    # send a forged Host. Such paths are simply not found; no redirect is built from Host.
    app.url_map.merge_slashes = False
    for blueprint in blueprints():
        app.register_blueprint(blueprint)
    leaning = [r.rule for r in app.url_map.iter_rules() if r.rule.endswith("/") and r.rule != "/"]
    if leaning:
        raise RuntimeError(f"routes ending in a slash would redirect from Host: {leaning}")


def register_errors(app: Flask) -> None:
    """The error map (JSON or HTML by what the caller accepts)."""
    from enablement.web.errors import register_error_handlers

    register_error_handlers(app)


def register_security_headers(app: Flask) -> None:
    """Conservative headers on every answer; routes may set stricter ones themselves."""

    @app.after_request
    def _headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if response.mimetype == "text/html":
            response.headers.setdefault(
                "Content-Security-Policy", "default-src 'self'; object-src 'none'; base-uri 'none'"
            )
        return response


def register_commands(app: Flask) -> None:
    """`flask --app wsgi enablement ...` runs the same commands as the console script."""
    from enablement.cli import cli

    app.cli.add_command(cli, "enablement")
