"""The wired parts of a running app, reachable from views and commands."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from enablement.config import Settings
from enablement.domain.crm import Crm
from enablement.queue import JobQueue


@dataclass
class Container:
    """Settings, database and outside services, built once by create_app."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    crm: Crm | None = None  # HubSpot, or an in-memory CRM in tests; None when not configured
    jobs: JobQueue | None = None  # the job engine's side in this process (enablement.queue)


def ctx() -> Container:
    """The container of the current Flask app."""
    return current_app.extensions["enablement"]
