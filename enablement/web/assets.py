"""Routes for assets (to be built)."""

from flask import Blueprint

bp = Blueprint("assets", __name__)
