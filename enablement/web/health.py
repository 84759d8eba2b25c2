"""Liveness and readiness probes, and the landing page."""

from __future__ import annotations

import functools
import os
import socket
from importlib import metadata

from flask import Blueprint, jsonify, render_template
from sqlalchemy.exc import SQLAlchemyError

from enablement import db
from enablement.context import ctx

bp = Blueprint("health", __name__)


@functools.cache
def instance_identity() -> dict:
    """Which program answers (distribution name and version), on which host and process.

    NOTE: computed once per process so /healthz stays cheap; the version comes from the
    installed distribution's metadata, so a stale server is told apart from a new one.
    """
    try:
        version = metadata.version("enablement")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {
        "name": "enablement",
        "version": version,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }


@bp.get("/healthz")
def healthz():
    """The process is up, and which instance it is; touches nothing else."""
    return jsonify(status="ok", **instance_identity())


@bp.get("/readyz")
def readyz():
    """200 when the database answers and its schema is current, else 503."""
    try:
        db.ping(ctx().engine)
    except SQLAlchemyError:
        return jsonify(status="unavailable", reason="database does not answer"), 503
    return jsonify(status="ok")


@bp.get("/")
def index():
    """A landing page pointing at the API and reports."""
    return render_template("index.html")
