"""What report and search caches compare, for tests that check a write changed nothing."""

from __future__ import annotations

from enablement.db.versioning import table_versions
from enablement.services.reports import tables_read


def report_inputs(sessions) -> tuple:
    """Fingerprints of every table a report reads; unchanged means no cached report is recomputed."""
    # Coverage reads every table any report (or the deal search) reads.
    with sessions() as session:
        return table_versions(session, tables_read("coverage"))
