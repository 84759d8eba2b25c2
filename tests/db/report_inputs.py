"""What report and search caches compare, for tests that check a write changed nothing."""

from __future__ import annotations

from enablement.db.models import ReportCache
from enablement.db.versioning import table_versions
from enablement.services.reports import LOADS, tables_read


def report_inputs(sessions) -> tuple:
    """Fingerprints of every table a report reads; unchanged means no cached report is recomputed."""
    tables = {table for kind in LOADS for table in tables_read(kind)}
    with sessions() as session:
        return table_versions(session, tables)


def mark_reports(statement):
    """Overwrite every cached report with a marker (the recommender-impact part keeps its shape)."""
    return statement.where(~ReportCache.key.like("recommender-impact:%")).values(
        payload={"as_of": "marker"}
    )
