"""Routes for links (to be built)."""

from flask import Blueprint

bp = Blueprint("links", __name__)
