"""Liveness and readiness probes, and the landing page."""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template
from sqlalchemy.exc import SQLAlchemyError

from enablement import db
from enablement.context import ctx

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process is up; touches nothing else."""
    return jsonify(status="ok")


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
