"""The outage window of a fault run, in seconds since the run began."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """From the moment the database began to stop to the moment it accepted connections again."""

    start: float
    end: float


def overlaps(started: float, seconds: float, window: Window) -> bool:
    """True when a request that began at `started` and took `seconds` was in flight during the window."""
    return started < window.end and started + seconds > window.start
