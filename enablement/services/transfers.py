"""Which use case imports or exports each kind of record file (the CLI and the HTTP import use these)."""

from __future__ import annotations

from collections.abc import Callable

from enablement.services import asset_imports, crm_imports

# kind -> fn(sessions, settings, stream: IO[bytes], fmt, skip_invalid, **options) -> ImportResult
IMPORTERS: dict[str, Callable] = {
    "pipelines": crm_imports.import_pipelines,
    "deals": crm_imports.import_deals,
    "assets": asset_imports.import_assets,
    "shares": crm_imports.import_shares,
}
# kind -> fn(sessions, settings, out: IO[str], fmt) -> int (records written)
EXPORTERS: dict[str, Callable] = {
    "pipelines": crm_imports.export_pipelines,
    "deals": crm_imports.export_deals,
    "assets": asset_imports.export_assets,
    "shares": crm_imports.export_shares,
}
