"""Routes for deals (to be built)."""

from flask import Blueprint

bp = Blueprint("deals", __name__)
