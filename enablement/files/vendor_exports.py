"""Deals as other CRMs' own exports write them: HubSpot's deal export, Salesforce's opportunity
report (and its stage-history report), and any other CRM's CSV through a column mapping.

The edge only: cells become ForeignDeals that still name pipelines, stages and owners as
the export does (labels, names, e-mails); services.vendor_imports resolves those against the
database. Every problem of a line is reported in one pass, by the export's own column names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import IO

from rapidfuzz import fuzz, process, utils

from enablement.domain.amounts import InvalidAmount, parse_export_amount
from enablement.domain.timestamps import InvalidTimestamp, parse_export_time, slash_date_order
from enablement.errors import InvalidInput
from enablement.files.formats import LIST_SEPARATOR, FileError, read_records

SOURCES = ("hubspot", "salesforce")
MAX_TEXT = {"id": 64, "name": 500, "company": 500, "industry": 255, "owner": 320}
# The pipeline of a Salesforce opportunity without a record type column: Salesforce reports
# have no pipelines, one set of stages for all (sales processes are not in the report).
SALESFORCE_PIPELINE = "Salesforce"


@dataclass
class ForeignDeal:
    """A deal as an export names things; history entries are (stage label, pipeline label or None, entered_at)."""

    line: int
    id: str
    pipeline: str
    stage: str
    created_at: datetime
    name: str = ""
    company: str | None = None
    amount: float | None = None
    currency: str | None = None
    industry: str | None = None
    owner: str | None = None
    owner_column: str | None = None
    closed_at: datetime | None = None
    closed_column: str | None = None
    personas: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    history: list[tuple[str, str | None, datetime]] = field(default_factory=list)


@dataclass
class ForeignFile:
    """The deals of an export, its errors by line, and warnings (ignored columns, partial histories)."""

    source: str
    deals: list[ForeignDeal] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)


@dataclass
class ExportDates:
    """How one export's zone-less times read: their zone and their order, and what the file's
    slash dates showed of the order (for the warning when none could tell)."""

    zone: tzinfo | None
    day_first: bool = False
    orders: set[str] = field(default_factory=set)

    def read(self, value: str) -> datetime:
        order = slash_date_order(value)
        if order is not None:
            self.orders.add(order)
        return parse_export_time(value, self.zone, day_first=self.day_first)

    def warnings(self) -> list[dict]:
        """One warning when every slash date of the file reads in both orders."""
        if "either" not in self.orders or self.orders & {"month_first", "day_first"}:
            return []
        order = "day first (D/M/YYYY)" if self.day_first else "month first (M/D/YYYY)"
        other = "without day first" if self.day_first else "with day first (--day-first)"
        return [
            {
                "kind": "ambiguous_dates",
                "message": f"every date like 3/4/2026 in this file reads in both orders; they "
                f"were read {order}: if the export writes them the other way, import it "
                f"again {other}",
            }
        ]


class _Line:
    """Reads the cells of one row, collecting every problem under its column's name."""

    def __init__(self, line: int, row: dict, dates: ExportDates):
        self.line, self.row, self.dates = line, row, dates
        self.problems: dict[str, list[str]] = {}

    def problem(self, column: str, message: str) -> None:
        self.problems.setdefault(column, []).append(message)

    def text(self, column: str | None, key: str, required: bool = False) -> str | None:
        value = self.row.get(column) if column else None
        value = value.strip() if isinstance(value, str) else value
        if not value:
            if required:
                self.problem(column or key, "is empty; it is required")
            return None
        if len(value) > MAX_TEXT.get(key, 255):
            self.problem(column, f"is longer than {MAX_TEXT.get(key, 255)} characters")
            return None
        return value

    def time(self, column: str | None, required: bool = False) -> datetime | None:
        value = self.text(column, "time", required)
        if value is None:
            return None
        try:
            return self.dates.read(value)
        except InvalidTimestamp as e:
            self.problem(column, str(e))
            return None

    def amount(self, column: str | None) -> tuple[float | None, str | None]:
        value = self.row.get(column) if column else None
        if not value:
            return None, None
        try:
            return parse_export_amount(value)
        except InvalidAmount as e:
            self.problem(column, str(e))
            return None, None

    def currency(self, column: str | None) -> str | None:
        value = self.text(column, "currency")
        if value is not None and not re.fullmatch(r"[A-Z]{3}", value):
            self.problem(column, f"{value[:20]!r} is not a currency code (expected like EUR)")
            return None
        return value

    def deal_values(
        self, name: str, columns: dict, amount: float | None, symbol_currency: str | None
    ) -> dict:
        """A vendor export's deal fields beside its id and stages, by the export's columns."""
        return dict(
            name=self.text(name, "name") or "",
            company=self.text(columns["company"], "company"),
            amount=amount,
            currency=self.currency(columns["currency"]) or symbol_currency,
            industry=self.text(columns["industry"], "industry"),
            owner=self.text(columns["owner"], "owner"),
            owner_column=columns["owner"],
            closed_at=self.time(columns["close"]),
            closed_column=columns["close"],
        )

    def error(self) -> FileError | None:
        return FileError(self.line, self.problems, "column") if self.problems else None


def _rows(stream: IO[bytes], required: Iterable[str]) -> tuple[list[str], list[tuple[int, object]]]:
    """(header, numbered rows) of a CSV export; a missing required column is one line-1 error."""
    header: list[str] = []
    rows = list(read_records(stream, "csv", columns=None, required=list(required), header=header))
    return header, rows


def _lines(read: ForeignFile, rows: list[tuple[int, object]], dates: ExportDates):
    """Each readable row as a _Line; a row the CSV reader refused becomes the file's error."""
    for number, row in rows:
        if isinstance(row, FileError):
            row.label = "column"
            read.errors.append(row)
            continue
        yield _Line(number, row, dates)


def _ignored(header: list[str], used: set[str], source: str) -> list[dict]:
    extra = [c for c in header if c not in used]
    if not extra:
        return []
    return [
        {
            "kind": "ignored_columns",
            "columns": extra,
            "message": f"columns this importer does not read, ignored: "
            f"{', '.join(repr(c[:60]) for c in extra[:30])}",
        }
    ]


def _first(header: list[str], *names: str) -> str | None:
    """The first of names present in the header (case-insensitively), as the header spells it."""
    folded = {h.casefold(): h for h in header}
    for name in names:
        if name.casefold() in folded:
            return folded[name.casefold()]
    return None


def _unique(read: ForeignFile, deal: ForeignDeal, seen: dict, column: str) -> bool:
    first = seen.setdefault(deal.id, deal.line)
    if first != deal.line:
        read.errors.append(
            FileError(deal.line, {column: [f"{deal.id!r} repeats line {first}"]}, "column")
        )
        return False
    return True


def only_current_stage(deal: ForeignDeal, why: str) -> dict:
    """The warning for a deal imported with its current stage and no history."""
    return {
        "kind": "only_current_stage",
        "line": deal.line,
        "deal": deal.id,
        "message": f"deal {deal.id!r}: {why}; imported with its current stage "
        f"{deal.stage!r} and no stage history (none is invented)",
    }


# ---------------------------------------------------------------- HubSpot

HUBSPOT_REQUIRED = ("Record ID", "Deal Name", "Deal Stage", "Pipeline", "Create Date")
# "Date entered "Closed Won (Sales Pipeline)"" and the same with 'Date exited'; HubSpot's
# export names the stage and, in parentheses, its pipeline.
_STAGE_COLUMN = re.compile(
    r"^Date (?P<kind>entered|exited) [\"'\u201c\u2018]?(?P<stage>.+?)"
    r"(?: \((?P<pipeline>[^()]+)\))?[\"'\u201d\u2019]?$",
    re.IGNORECASE,
)


def read_hubspot(stream: IO[bytes], dates: ExportDates) -> ForeignFile:
    """A HubSpot deal export (CSV): labels for stages and pipelines, owner names, per-stage dates."""
    read = ForeignFile("hubspot")
    header, rows = _rows(stream, HUBSPOT_REQUIRED)
    columns = {
        "amount": _first(header, "Amount"),
        "currency": _first(header, "Currency", "Deal currency code"),
        "close": _first(header, "Close Date"),
        "owner": _first(header, "Deal owner", "Deal Owner", "Owner"),
        "company": next((h for h in header if h.startswith("Associated Company")), None),
        "industry": _first(header, "Industry"),
    }
    entered: list[tuple[str, str, str | None]] = []
    exited: list[str] = []
    for column in header:
        match = _STAGE_COLUMN.match(column)
        if match and match["kind"].lower() == "entered":
            entered.append((column, match["stage"], match["pipeline"]))
        elif match:
            exited.append(column)
    used = set(HUBSPOT_REQUIRED) | {c for c in columns.values() if c} | set(exited)
    used |= {c for c, _, _ in entered}
    read.warnings.extend(_ignored(header, used, "hubspot"))
    seen: dict[str, int] = {}
    for cells in _lines(read, rows, dates):
        deal_id = cells.text("Record ID", "id", required=True)
        stage = cells.text("Deal Stage", "stage", required=True)
        pipeline = cells.text("Pipeline", "pipeline", required=True)
        created = cells.time("Create Date", required=True)
        amount, symbol_currency = cells.amount(columns["amount"])
        history = []
        for column, stage_label, pipeline_label in entered:
            at = cells.time(column)
            if at is not None:
                history.append((stage_label, pipeline_label, at))
        for column in exited:
            cells.time(column)  # checked, not stored: the next stage's entry says the same
        deal_values = cells.deal_values("Deal Name", columns, amount, symbol_currency)
        error = cells.error()
        if error is not None:
            read.errors.append(error)
            continue
        deal = ForeignDeal(cells.line, deal_id, pipeline, stage, created, **deal_values)
        deal.history = sorted(history, key=lambda e: e[2])
        if not _unique(read, deal, seen, "Record ID"):
            continue
        if not deal.history:
            why = (
                'the export has no "Date entered" columns'
                if not entered
                else 'no "Date entered" cell of this deal is filled'
            )
            read.warnings.append(only_current_stage(deal, why))
        read.deals.append(deal)
    read.warnings.extend(dates.warnings())
    return read


# ---------------------------------------------------------------- Salesforce

HISTORY_FILE = "history file"
SALESFORCE_REQUIRED = ("Opportunity ID", "Opportunity Name", "Stage", "Created Date")
_HISTORY_ID = ("Opportunity ID",)


def read_salesforce(
    stream: IO[bytes], dates: ExportDates, history: IO[bytes] | None = None
) -> ForeignFile:
    """A Salesforce opportunity report (CSV), with its Opportunity History or field-history report."""
    read = ForeignFile("salesforce")
    header, rows = _rows(stream, SALESFORCE_REQUIRED)
    columns = {
        "amount": _first(header, "Amount"),
        "currency": _first(header, "Opportunity Currency", "Amount Currency", "Currency"),
        "close": _first(header, "Close Date"),
        "owner": _first(header, "Opportunity Owner", "Owner Email", "Opportunity Owner Email"),
        "company": _first(header, "Account Name"),
        "industry": _first(header, "Industry", "Account Industry"),
        "pipeline": _first(header, "Opportunity Record Type", "Record Type"),
    }
    used = set(SALESFORCE_REQUIRED) | {c for c in columns.values() if c}
    read.warnings.extend(_ignored(header, used, "salesforce"))
    seen: dict[str, int] = {}
    for cells in _lines(read, rows, dates):
        deal_id = cells.text("Opportunity ID", "id", required=True)
        stage = cells.text("Stage", "stage", required=True)
        created = cells.time("Created Date", required=True)
        amount, symbol_currency = cells.amount(columns["amount"])
        values = cells.deal_values("Opportunity Name", columns, amount, symbol_currency)
        pipeline = cells.text(columns["pipeline"], "pipeline") or SALESFORCE_PIPELINE
        error = cells.error()
        if error is not None:
            read.errors.append(error)
            continue
        deal = ForeignDeal(cells.line, deal_id, pipeline, stage, created, **values)
        if _unique(read, deal, seen, "Opportunity ID"):
            read.deals.append(deal)
    if history is None:
        for deal in read.deals:
            read.warnings.append(
                only_current_stage(deal, "no history report was given (--history)")
            )
    else:
        _read_salesforce_history(read, history, dates)
    read.warnings.extend(dates.warnings())
    return read


def _opportunity_key(value: str) -> str:
    """Salesforce ids match on their first 15 characters (reports write 15 or 18)."""
    return value[:15]


def _read_salesforce_history(read: ForeignFile, stream: IO[bytes], dates: ExportDates) -> None:
    """Stage changes from an Opportunity History report (From Stage, To Stage, Last Modified)
    or an Opportunity Field History report (Field / Event, Old Value, New Value, Edit Date)."""
    header, rows = _rows(stream, _HISTORY_ID)
    field_col = _first(header, "Field / Event", "Field/Event", "Field")
    to_col = _first(header, "New Value") if field_col else _first(header, "To Stage", "Stage")
    from_col = _first(header, "Old Value") if field_col else _first(header, "From Stage")
    at_col = _first(header, "Edit Date", "Last Modified", "Last Modified Date", "Change Date")
    missing = [
        n
        for n, c in (("To Stage or New Value", to_col), ("Last Modified or Edit Date", at_col))
        if c is None
    ]
    if missing:
        raise InvalidInput(
            f"history file, line 1: the header has no column {' and no column '.join(missing)}; "
            "export Salesforce's Opportunity History report (From Stage, To Stage, "
            "Last Modified) or Opportunity Field History report (Field / Event, Old Value, "
            "New Value, Edit Date)",
            {"line": 1, "file": "history", "missing": missing},
        )
    by_key = {_opportunity_key(d.id): d for d in read.deals}
    changes: dict[str, list[tuple[datetime, str | None, str]]] = {}
    for number, row in rows:
        if isinstance(row, FileError):
            row.label, row.file = "column", HISTORY_FILE
            read.errors.append(row)
            continue
        if field_col and (row.get(field_col) or "").strip().casefold() not in (
            "stage",
            "stagename",
        ):
            continue
        cells = _Line(number, row, dates)
        opp = cells.text("Opportunity ID", "id", required=True)
        to_stage = cells.text(to_col, "stage", required=True)
        from_stage = cells.text(from_col, "stage")
        at = cells.time(at_col, required=True)
        if cells.problems:
            read.errors.append(FileError(number, cells.problems, "column", HISTORY_FILE))
            continue
        deal = by_key.get(_opportunity_key(opp))
        if deal is None:
            read.warnings.append(
                {
                    "kind": "unknown_opportunity",
                    "message": f"history file, line {number}: opportunity {opp!r} is not in "
                    "the opportunity report; its changes are not imported",
                }
            )
            continue
        changes.setdefault(deal.id, []).append((at, from_stage, to_stage))
    for deal in read.deals:
        rows_of = sorted(changes.get(deal.id, []), key=lambda c: c[0])
        if not rows_of:
            read.warnings.append(
                only_current_stage(deal, "the history report has no stage change of it")
            )
            continue
        first_at, first_from, _ = rows_of[0]
        # The stage before the first recorded change is where the opportunity began.
        if first_from and first_at > deal.created_at:
            deal.history.append((first_from, None, deal.created_at))
        deal.history += [(to_stage, None, at) for at, _, to_stage in rows_of]


# ---------------------------------------------------------------- any other CRM, mapped

MAPPABLE = (
    "id",
    "name",
    "company",
    "pipeline",
    "stage",
    "amount",
    "currency",
    "industry",
    "owner",
    "created_at",
    "closed_at",
    "personas",
    "topics",
)
MAPPED_REQUIRED = ("id", "stage", "created_at")
# Words other CRMs call the product's fields, for suggestions only (never applied unasked).
ALIASES = {
    "id": ("id", "deal id", "record id", "opportunity id", "external id"),
    "name": ("name", "deal name", "title", "deal title", "opportunity name", "subject"),
    "company": ("company", "organization", "organisation", "account", "account name", "org"),
    "pipeline": ("pipeline", "pipeline name", "sales process", "board"),
    "stage": ("stage", "deal stage", "status", "phase", "sales stage"),
    "amount": ("amount", "value", "deal value", "revenue", "price", "total"),
    "currency": ("currency", "currency code"),
    "industry": ("industry", "sector", "vertical"),
    "owner": ("owner", "deal owner", "assigned to", "user", "sales rep", "rep", "owner email"),
    "created_at": (
        "created_at",
        "created",
        "created date",
        "create date",
        "add time",
        "created time",
    ),
    "closed_at": ("closed_at", "closed", "close date", "closed date", "won time", "closing date"),
    "personas": ("personas", "persona", "roles", "buyer roles"),
    "topics": ("topics", "tags", "labels", "interests"),
}


@dataclass(frozen=True)
class ColumnMapping:
    """Which header feeds which field (None: ignored on purpose), and the pipeline when no column names one."""

    columns: dict[str, str | None]
    pipeline: str = "Imported"


def suggest_field(header: str) -> str | None:
    """The product field an unmapped header most likely means (rapidfuzz), or None."""
    choices = {alias: name for name, aliases in ALIASES.items() for alias in aliases}
    found = process.extractOne(
        header, list(choices), scorer=fuzz.WRatio, processor=utils.default_process, score_cutoff=80
    )
    return choices[found[0]] if found else None


def _closest(value: str, options: Iterable[str]) -> str | None:
    found = process.extractOne(
        value, list(options), scorer=fuzz.WRatio, processor=utils.default_process, score_cutoff=70
    )
    return found[0] if found else None


def load_mapping(stream: IO[bytes]) -> ColumnMapping:
    """A mapping file: {"columns": {"Header": "field" or null}, "pipeline"?: "label"}."""
    try:
        data = json.loads(stream.read(1024 * 1024).decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as e:
        raise InvalidInput(f"mapping file: not valid JSON: {e}", {"file": "mapping"}) from None
    if not isinstance(data, dict) or not isinstance(data.get("columns"), dict):
        raise InvalidInput(
            'mapping file: expected {"columns": {"Header in the file": "field", ...}}',
            {"file": "mapping"},
        )
    problems = []
    for key in data.keys() - {"columns", "pipeline"}:
        problems.append(f'unknown key "{key}" (the keys are columns and pipeline)')
    columns: dict[str, str | None] = {}
    for header, target in data["columns"].items():
        if target is not None and target not in MAPPABLE:
            hint = _closest(str(target), MAPPABLE)
            problems.append(
                f'"{header}" maps to unknown field {str(target)[:40]!r}'
                + (f' (did you mean "{hint}"?)' if hint else "")
            )
            continue
        columns[str(header)] = target
    targets = [t for t in columns.values() if t]
    repeated = sorted({t for t in targets if targets.count(t) > 1})
    problems += [f'field "{t}" is mapped from more than one column' for t in repeated]
    pipeline = data.get("pipeline", "Imported")
    if not isinstance(pipeline, str) or not 1 <= len(pipeline) <= 255:
        problems.append("pipeline must be a label of 1 to 255 characters")
    if problems:
        raise InvalidInput(
            "mapping file: " + "; ".join(problems), {"file": "mapping", "problems": problems}
        )
    return ColumnMapping(columns, pipeline)


def check_mapping(mapping: ColumnMapping, header: list[str]) -> None:
    """Every header mapped (or ignored with null), every mapped column present, the required fields fed."""
    problems = []
    for column in header:
        if column not in mapping.columns:
            hint = suggest_field(column)
            problems.append(
                f'column "{column[:60]}" is not mapped'
                + (f' (it looks like "{hint}")' if hint else "")
                + "; map it to a field, or to null to leave it out"
            )
    for column in mapping.columns:
        if column not in header:
            hint = _closest(column, header)
            problems.append(
                f'mapped column "{column[:60]}" is not in the file'
                + (f' (did you mean "{hint}"?)' if hint else "")
            )
    fed = set(v for v in mapping.columns.values() if v)
    missing = [f for f in MAPPED_REQUIRED if f not in fed]
    if missing:
        problems.append("no column is mapped to " + ", ".join(f'"{f}"' for f in missing))
    if problems:
        raise InvalidInput("line 1: " + "; ".join(problems), {"line": 1, "problems": problems})


def read_mapped(stream: IO[bytes], mapping: ColumnMapping, dates: ExportDates) -> ForeignFile:
    """Any CRM's CSV export, its headers mapped to the product's fields by the mapping file."""
    read = ForeignFile("mapped")
    header, rows = _rows(stream, ())
    check_mapping(mapping, header)
    col = {target: column for column, target in mapping.columns.items() if target}
    seen: dict[str, int] = {}
    for cells in _lines(read, rows, dates):
        deal_id = cells.text(col["id"], "id", required=True)
        stage = cells.text(col["stage"], "stage", required=True)
        created = cells.time(col["created_at"], required=True)
        amount, symbol_currency = cells.amount(col.get("amount"))
        values = dict(
            name=cells.text(col.get("name"), "name") or "",
            company=cells.text(col.get("company"), "company"),
            amount=amount,
            currency=cells.currency(col.get("currency")) or symbol_currency,
            industry=cells.text(col.get("industry"), "industry"),
            owner=cells.text(col.get("owner"), "owner"),
            owner_column=col.get("owner"),
            closed_at=cells.time(col.get("closed_at")),
            closed_column=col.get("closed_at"),
            personas=_tags(cells.row.get(col.get("personas") or "")),
            topics=_tags(cells.row.get(col.get("topics") or "")),
        )
        pipeline = cells.text(col.get("pipeline"), "pipeline") or mapping.pipeline
        error = cells.error()
        if error is not None:
            read.errors.append(error)
            continue
        deal = ForeignDeal(cells.line, deal_id, pipeline, stage, created, **values)
        if _unique(read, deal, seen, col["id"]):
            read.warnings.append(
                only_current_stage(deal, "a mapped export carries only the current stage")
            )
            read.deals.append(deal)
    read.warnings.extend(dates.warnings())
    return read


def _tags(cell) -> tuple[str, ...]:
    if isinstance(cell, list):
        return tuple(cell)
    return tuple(p.strip() for p in (cell or "").split(LIST_SEPARATOR) if p.strip())
