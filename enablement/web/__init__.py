"""The HTTP edge: blueprints, schemas, error handling, the OpenAPI document."""

from __future__ import annotations

from flask import Blueprint


def blueprints() -> list[Blueprint]:
    """The blueprint of every feature module, in registration order."""
    from enablement.web import (
        assets,
        deals,
        health,
        hubspot_card,
        hubspot_workflow,
        jobs,
        links,
        nudges,
        openapi,
        pages,
        recommendations,
        reports,
        stage_map,
        tokens,
        webhooks,
    )

    return [
        m.bp
        for m in (
            health,
            openapi,
            tokens,
            assets,
            deals,
            stage_map,
            links,
            reports,
            recommendations,
            hubspot_card,
            hubspot_workflow,
            webhooks,
            jobs,
            nudges,
            pages,
        )
    ]
