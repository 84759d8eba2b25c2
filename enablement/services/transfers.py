"""Which use case imports or exports each kind of record file (the CLI and the HTTP import use these).

An importer reads the file at the edge (enablement.files) and hands the records to its use
case; asset files are read inside asset_imports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO

from enablement.files import crm_readers
from enablement.files.formats import ImportResult
from enablement.services import asset_imports, crm_exports, crm_imports


def import_pipelines(
    sessions, settings, stream: IO[bytes], fmt: str, skip_invalid: bool
) -> ImportResult:
    """Pipelines from a JSON Lines file."""
    return crm_imports.import_pipelines(
        sessions, settings, crm_readers.read_pipelines(stream, fmt), skip_invalid
    )


def import_deals(
    sessions, settings, stream: IO[bytes], fmt: str, skip_invalid: bool, **options
) -> ImportResult:
    """Deals from a file; options (on_progress, batch) go to the use case."""
    return crm_imports.import_deals(
        sessions, settings, crm_readers.read_deals(stream, fmt), skip_invalid, **options
    )


def import_shares(
    sessions, settings, stream: IO[bytes], fmt: str, skip_invalid: bool
) -> ImportResult:
    """Shares from a file."""
    return crm_imports.import_shares(
        sessions, settings, crm_readers.read_shares(stream, fmt), skip_invalid
    )


# kind -> fn(sessions, settings, stream: IO[bytes], fmt, skip_invalid, **options) -> ImportResult
IMPORTERS: dict[str, Callable] = {
    "pipelines": import_pipelines,
    "deals": import_deals,
    "assets": asset_imports.import_assets,
    "shares": import_shares,
}
# kind -> fn(sessions, settings, out: IO[str], fmt) -> int (records written)
EXPORTERS: dict[str, Callable] = {
    "pipelines": crm_exports.export_pipelines,
    "deals": crm_exports.export_deals,
    "assets": asset_imports.export_assets,
    "shares": crm_exports.export_shares,
}
