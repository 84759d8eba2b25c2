"""The HTTP edge: blueprints, schemas, error handling, the OpenAPI document."""

from __future__ import annotations

import importlib

# Each feature module exposes a Blueprint named `bp`; listed here, registered by create_app.
FEATURE_MODULES = (
    "enablement.web.health",
    "enablement.web.openapi",
    "enablement.web.tokens",
    "enablement.web.assets",
    "enablement.web.deals",
    "enablement.web.stage_map",
    "enablement.web.links",
    "enablement.web.reports",
)


def blueprints():
    """The blueprints of every feature module."""
    return [importlib.import_module(name).bp for name in FEATURE_MODULES]
