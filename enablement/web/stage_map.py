"""Routes for stage_map (to be built)."""

from flask import Blueprint

bp = Blueprint("stage_map", __name__)
