"""The file formats of pipelines, deals and shares: one marshmallow schema per record.

What a line of a file must hold (files.crm_readers turns lines into records); checks
against the database live in the import use cases (enablement.services.crm_imports).
"""

from __future__ import annotations

import json
import math
from datetime import datetime

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_load,
    validate,
    validates_schema,
)

from enablement.domain.numbers import read_amount
from enablement.domain.stages import BUYING_STAGES
from enablement.domain.tags import normalise_tag, tag_problem
from enablement.domain.timestamps import InvalidTimestamp, parse_timestamp

# The columns of a deal and a share file, in the order an export writes them; CSV cells of
# the list fields hold values separated by ';'.
DEAL_COLUMNS = [
    "id",
    "name",
    "company",
    "pipeline",
    "amount",
    "currency",
    "industry",
    "owner_id",
    "created_at",
    "closed_at",
    "personas",
    "topics",
    "stage_history",
    "stage",
    "deleted",
    "deleted_at",
]
SHARE_COLUMNS = ["deal_id", "asset_id", "shared_at", "shared_by", "channel"]
OWNER_COLUMNS = ["id", "email", "first_name", "last_name", "archived"]
LIST_FIELDS = ("personas", "topics")


class _Strict(Schema):
    """Unknown fields are errors; an empty optional text is absent, as an empty CSV cell is.

    NOTE: so a record reads back the same from JSON Lines and from CSV (which cannot tell
    an empty text from a missing one): every export re-imports exactly.
    """

    class Meta:
        unknown = RAISE

    @post_load
    def _empty_text_is_absent(self, data, **_):
        for name, spec in self.fields.items():
            if spec.allow_none and isinstance(spec, fields.String) and data.get(name) == "":
                data[name] = None
        return data


class FileTimestamp(fields.Field):
    """A timestamp by the product's one rule (enablement.domain.timestamps)."""

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return parse_timestamp(value)
        except InvalidTimestamp as e:
            raise ValidationError(str(e)) from None


class FileAmount(fields.Field):
    """A deal amount by the product's one amount rule (domain.numbers.read_amount)."""

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return read_amount(value)
        except ValueError as e:
            raise ValidationError(str(e)) from None


class StageHistoryField(fields.Field):
    """A list of {"stage", "entered_at", "pipeline"?}, checked in one tight loop (empty: not known).

    NOTE: a Nested schema per entry made validation the slowest part of a 100,000-deal import.
    """

    KEYS = frozenset({"stage", "entered_at", "pipeline"})
    MAX_ENTRIES = 10_000

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, _BrokenJson):
            raise ValidationError(f"not valid JSON: {value.reason}")
        if not isinstance(value, list):
            raise ValidationError("must be a list of {stage, entered_at}")
        if len(value) > self.MAX_ENTRIES:
            raise ValidationError(f"more than {self.MAX_ENTRIES} entries")
        entries, errors = [], {}
        for index, entry in enumerate(value):
            problems, entered_at = self._check_entry(entry)
            if problems:
                errors[index] = problems
                continue
            loaded = {"stage": entry["stage"], "entered_at": entered_at}
            if "pipeline" in entry:
                loaded["pipeline"] = entry["pipeline"]
            entries.append(loaded)
        if errors:
            raise ValidationError(errors)
        return entries

    def _check_entry(self, entry) -> tuple[dict, datetime | None]:
        """(errors by key, the parsed entered_at): each timestamp is read once."""
        if not isinstance(entry, dict):
            return {"_schema": ["must be an object {stage, entered_at}"]}, None
        problems = {key: ["unknown field"] for key in entry.keys() - self.KEYS}
        for key in ("stage", "pipeline"):
            if key not in entry:
                if key == "stage":
                    problems[key] = ["missing"]
                continue
            text = entry[key]
            if not isinstance(text, str) or not 1 <= len(text) <= 64:
                problems[key] = ["must be a string of 1 to 64 characters"]
        entered_at = None
        if "entered_at" not in entry:
            problems["entered_at"] = ["missing"]
        else:
            try:
                entered_at = parse_timestamp(entry["entered_at"])
            except InvalidTimestamp as e:
                problems["entered_at"] = [str(e)]
        return problems, entered_at


def _text(max_len: int, **kwargs) -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=max_len), **kwargs)


def _tag() -> fields.String:
    """A tag of a deal by the one tag rule (enablement.domain.tags)."""

    def check(value: str) -> None:
        problem = tag_problem(normalise_tag(value))
        if problem:
            raise ValidationError(problem)

    return fields.String(validate=[validate.Length(min=1, max=255), check])


def _finite(value: float) -> None:
    if not math.isfinite(value):
        raise ValidationError("must be a finite number")


class StageFileSchema(_Strict):
    """A pipeline stage in a pipelines file."""

    id = _text(64, required=True)
    label = _text(255, required=True)
    # NOTE: None when left out: the import then uses the stage's position in the list, so a
    # file without display_order still orders stages as written (cycle time needs the order).
    display_order = fields.Integer(load_default=None, validate=validate.Range(min=0, max=10_000))
    probability = fields.Float(
        allow_none=True, load_default=None, validate=[validate.Range(min=0, max=1), _finite]
    )
    is_closed = fields.Boolean(load_default=False)
    is_won = fields.Boolean(load_default=False)
    archived = fields.Boolean(load_default=False)
    buying_stage = fields.String(allow_none=True, validate=validate.OneOf(BUYING_STAGES))

    @validates_schema
    def _won_is_closed(self, data, **_):
        if data.get("is_won") and not data.get("is_closed"):
            raise ValidationError("a won stage must be closed", "is_won")


class PipelineFileSchema(_Strict):
    """One line of a pipelines file."""

    id = _text(64, required=True)
    label = _text(255, required=True)
    display_order = fields.Integer(load_default=None, validate=validate.Range(min=0, max=10_000))
    archived = fields.Boolean(load_default=False)
    stages = fields.List(
        fields.Nested(StageFileSchema), required=True, validate=validate.Length(min=1, max=500)
    )

    @validates_schema
    def _unique_stage_ids(self, data, **_):
        seen: set[str] = set()
        for stage in data.get("stages", []):
            if stage["id"] in seen:
                raise ValidationError(f"stage id {stage['id']!r} appears twice", "stages")
            seen.add(stage["id"])


class _BrokenJson(str):
    """A CSV history cell that is not JSON: kept so the line's other fields are checked too."""

    reason: str = ""


class DealFileSchema(_Strict):
    """One line of a deals file.

    NOTE: name, amount and stage_history may be absent (an empty CSV cell): deals created by
    webhooks have no name or amount yet and may have no known stage, and every export must
    re-import exactly. `stage` is the current stage of a deal whose history is not known.
    """

    id = _text(64, required=True)
    name = fields.String(load_default="", validate=validate.Length(max=500))
    company = fields.String(allow_none=True, validate=validate.Length(max=500))
    pipeline = _text(64, required=True)
    amount = FileAmount(load_default=None, allow_none=True)
    currency = fields.String(allow_none=True, validate=validate.Regexp(r"^[A-Z]{3}$"))
    industry = fields.String(allow_none=True, validate=validate.Length(max=255))
    owner_id = fields.String(allow_none=True, validate=validate.Length(max=64))
    created_at = FileTimestamp(required=True)
    closed_at = FileTimestamp(allow_none=True)
    personas = fields.List(_tag(), load_default=list, validate=validate.Length(max=100))
    topics = fields.List(_tag(), load_default=list, validate=validate.Length(max=100))
    stage_history = StageHistoryField(load_default=list)
    stage = fields.String(allow_none=True, validate=validate.Length(min=1, max=64))
    deleted = fields.Boolean(load_default=False)
    deleted_at = FileTimestamp(allow_none=True)

    @pre_load
    def _history_from_csv_cell(self, data, **_):
        # CSV carries the history as JSON in one cell; broken JSON is reported by the field,
        # beside every other problem of the line.
        if isinstance(data, dict) and isinstance(data.get("stage_history"), str):
            try:
                data = {**data, "stage_history": json.loads(data["stage_history"])}
            except ValueError as e:
                broken = _BrokenJson(data["stage_history"])
                broken.reason = str(e)
                data = {**data, "stage_history": broken}
        return data

    @validates_schema
    def _stage_is_the_current_one(self, data, **_):
        history, stage = data.get("stage_history"), data.get("stage")
        latest = max(history, key=lambda e: e["entered_at"]) if history else None
        if latest is not None and stage is not None and latest["stage"] != stage:
            raise ValidationError(
                "must be the latest stage of stage_history (or leave it out)", "stage"
            )


class ShareFileSchema(_Strict):
    """One line of a shares file."""

    deal_id = _text(64, required=True)
    asset_id = _text(64, required=True)
    shared_at = FileTimestamp(required=True)
    shared_by = fields.String(allow_none=True, validate=validate.Length(max=255))
    channel = fields.String(allow_none=True, validate=validate.Length(max=32))


class OwnerFileSchema(_Strict):
    """One line of an owners file: a salesperson deals name by id, e-mail or name."""

    id = _text(64, required=True)
    email = fields.String(allow_none=True, validate=validate.Length(min=3, max=320))
    first_name = fields.String(allow_none=True, validate=validate.Length(max=255))
    last_name = fields.String(allow_none=True, validate=validate.Length(max=255))
    archived = fields.Boolean(load_default=False)
