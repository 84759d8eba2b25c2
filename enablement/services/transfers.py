"""Which use case imports or exports each kind of record file (the CLI and the HTTP import use these).

An importer reads the file at the edge (enablement.files) and hands the records to its use
case; asset files are read inside asset_imports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO

from enablement.domain.timestamps import InvalidTimestamp, time_zone
from enablement.errors import BadRequest, InvalidInput
from enablement.files import crm_readers, vendor_exports
from enablement.files.formats import ImportResult
from enablement.services import asset_imports, crm_exports, crm_imports, vendor_imports

# Where a deals file comes from: the product's own format, or another CRM's export.
DEAL_SOURCES = ("enablement", *vendor_exports.SOURCES)


def import_pipelines(
    sessions, settings, stream: IO[bytes], fmt: str, skip_invalid: bool, check: bool = False
) -> ImportResult:
    """Pipelines from a JSON Lines file."""
    return crm_imports.import_pipelines(
        sessions, settings, crm_readers.read_pipelines(stream, fmt), skip_invalid, check
    )


def import_deals(
    sessions,
    settings,
    stream: IO[bytes],
    fmt: str,
    skip_invalid: bool,
    *,
    source: str | None = None,
    history: IO[bytes] | None = None,
    mapping: IO[bytes] | None = None,
    timezone: str | None = None,
    day_first: bool = False,
    **options,
) -> ImportResult:
    """Deals from the product's format, a HubSpot or Salesforce export, or a mapped CSV.

    history is Salesforce's stage-history report, mapping a column mapping file, timezone
    the IANA zone of an export's zone-less times, day_first how its slash dates read (4/3/2026
    is March 4); options (on_progress, batch, check) go to
    the use case.
    """
    source = source or "enablement"
    if source not in DEAL_SOURCES:
        raise BadRequest(f"unknown source {source!r}; use {', '.join(DEAL_SOURCES)}")
    if history is not None and source != "salesforce":
        raise BadRequest(
            "a history file goes with Salesforce's opportunity report (from salesforce)"
        )
    if mapping is not None and source != "enablement":
        raise BadRequest(f"a mapping file is for other CRMs' exports, not with from {source}")
    try:
        zone = time_zone(timezone) if timezone else None
    except InvalidTimestamp as e:
        raise InvalidInput(str(e), {"timezone": [str(e)]}) from None
    if source == "enablement" and mapping is None:
        if zone is not None or day_first:
            raise BadRequest(
                "the product's own files carry zoned ISO 8601 times; timezone and day first "
                "are for exports"
            )
        return crm_imports.import_deals(
            sessions, settings, crm_readers.read_deals(stream, fmt), skip_invalid, **options
        )
    dates = vendor_exports.ExportDates(zone, day_first)
    if mapping is not None:
        read = vendor_exports.read_mapped(stream, vendor_exports.load_mapping(mapping), dates)
    elif source == "hubspot":
        read = vendor_exports.read_hubspot(stream, dates)
    else:
        read = vendor_exports.read_salesforce(stream, dates, history)
    return vendor_imports.import_foreign_deals(sessions, settings, read, skip_invalid, **options)


def import_shares(
    sessions, settings, stream: IO[bytes], fmt: str, skip_invalid: bool, check: bool = False
) -> ImportResult:
    """Shares from a file."""
    return crm_imports.import_shares(
        sessions, settings, crm_readers.read_shares(stream, fmt), skip_invalid, check=check
    )


def import_owners(
    sessions, settings, stream: IO[bytes], fmt: str, skip_invalid: bool, check: bool = False
) -> ImportResult:
    """Owners from a file."""
    return crm_imports.import_owners(
        sessions, settings, crm_readers.read_owners(stream, fmt), skip_invalid, check=check
    )


# kind -> fn(sessions, settings, stream: IO[bytes], fmt, skip_invalid, **options) -> ImportResult
IMPORTERS: dict[str, Callable] = {
    "owners": import_owners,
    "pipelines": import_pipelines,
    "deals": import_deals,
    "assets": asset_imports.import_assets,
    "shares": import_shares,
}
# kind -> fn(sessions, settings, out: IO[str], fmt) -> int (records written)
EXPORTERS: dict[str, Callable] = {
    "owners": crm_exports.export_owners,
    "pipelines": crm_exports.export_pipelines,
    "deals": crm_exports.export_deals,
    "assets": asset_imports.export_assets,
    "shares": crm_exports.export_shares,
}
