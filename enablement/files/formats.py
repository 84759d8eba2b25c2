"""Reading and writing record files (JSON Lines and CSV) with line numbers and limits."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO

from enablement.domain.storable import refuse_json_constant, value_problem
from enablement.errors import BadRequest, InvalidInput, PayloadTooLarge
from enablement.render import csv_cell, csv_uncell

FORMATS = ("jsonl", "csv")
MAX_FILE_BYTES = 100 * 1024 * 1024
MAX_LINE_BYTES = 1024 * 1024
READ_CHUNK = 1024 * 1024
LIST_SEPARATOR = ";"
# Separators other spreadsheets and CRMs export with; a header split by one of them is the
# sign of a wrong delimiter, not of one long unknown column.
OTHER_DELIMITERS = {";": "semicolons (;)", "\t": "tabs", "|": "vertical bars (|)"}


@dataclass
class FileError:
    """An error tied to a line of an input file (line 0: the file as a whole).

    errors maps a column (or field) to its messages, nested for lists of objects; `label`
    names what the keys are in messages people read ("column" in CSV, "field" in JSON Lines).
    """

    line: int
    errors: dict | list | str
    label: str = "field"
    # Which file of an import with several (a Salesforce history report: "history file").
    file: str = ""

    def messages(self) -> list[str]:
        """One line a person can act on per problem: `line N, column "Close Date": ...`."""
        where = f"line {self.line}" if self.line else "the file"
        where = f"{self.file}, {where}" if self.file else where
        return [
            f"{where}, {self.label} {_quoted(path)}: {text}" if path else f"{where}: {text}"
            for path, text in flat_messages(self.errors)
        ]

    def as_dict(self) -> dict:
        """JSON-ready form: the structured errors and the same as sentences."""
        answer = {"line": self.line, "errors": self.errors, "messages": self.messages()}
        if self.file:
            answer["file"] = self.file
        return answer


def _quoted(path: str) -> str:
    return '"' + path.replace('"', "'") + '"'


def flat_messages(errors, path: str = "") -> list[tuple[str, str]]:
    """(column path, message) pairs of nested marshmallow-style errors, in their order.

    A list index becomes `[i]` (entries of stage_history count from 1, as people do), a
    schema-wide error (`_schema`) belongs to its parent.
    """
    if isinstance(errors, str):
        return [(path, errors)]
    if isinstance(errors, list):
        return [pair for item in errors for pair in flat_messages(item, path)]
    if isinstance(errors, dict):
        pairs = []
        for key, value in errors.items():
            if key == "_schema":
                sub = path
            elif isinstance(key, int):
                sub = f"{path}[{key + 1}]"
            else:
                sub = f"{path}.{key}" if path else str(key)
            pairs.extend(flat_messages(value, sub))
        return pairs
    return [(path, str(errors))]


@dataclass
class ImportResult:
    """What an import did: counts, per-line errors, warnings (near-duplicates and the like)."""

    kind: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    errors: list[FileError] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    # A dry run (--check): the counts are what the import would do; nothing was written.
    checked: bool = False

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "check": self.checked,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "errors": [e.as_dict() for e in self.errors],
            "warnings": self.warnings,
        }


def warning_text(warning: dict) -> str:
    """A warning as one sentence (never a dict): its message, or what its fields say."""
    where = f"line {warning['line']}: " if warning.get("line") else ""
    if warning.get("message"):
        return where + str(warning["message"])
    if warning.get("kind") == "near_duplicate":
        reason = str(warning.get("reason", "")).replace("_", " ")
        return (
            f"{where}asset {warning.get('asset_id')!s} looks like a near-duplicate of "
            f"{warning.get('of')!s} ({reason}, score {warning.get('score')!s})"
        )
    parts = [f"{k} {v}" for k, v in warning.items() if k not in ("line", "kind")]
    return where + str(warning.get("kind", "warning")).replace("_", " ") + ": " + ", ".join(parts)


def detect_format(name: str | None, content_type: str | None = None) -> str:
    """jsonl or csv from a file name or content type (jsonl when unsure)."""
    lowered = (name or "").lower()
    if lowered.endswith(".csv") or (content_type or "").startswith("text/csv"):
        return "csv"
    return "jsonl"


def read_records(
    stream: IO[bytes],
    fmt: str,
    list_fields: Iterable[str] = (),
    max_bytes: int = MAX_FILE_BYTES,
    columns: Iterable[str] | None = None,
    required: Iterable[str] = (),
    header: list[str] | None = None,
) -> Iterator[tuple[int, object]]:
    """Yield (line number, record) from a binary stream; unparsable lines yield a FileError.

    A file with no records at all and a CSV header that is wrong as a whole (another
    delimiter, a required column missing, an unknown column) raise one InvalidInput
    before any record is read. CSV list fields are split on ';'; empty cells are absent.
    A CSV's header is appended to `header` when one is given.
    """
    if fmt not in FORMATS:
        raise BadRequest(f"unknown format {fmt!r}; use jsonl or csv")
    text = _decode(stream, max_bytes)
    if not text.strip():
        raise InvalidInput("the file is empty: there is nothing to import", {"line": 0})
    if fmt == "jsonl":
        records = _read_jsonl(text)
    else:
        records = _read_csv(
            text,
            set(list_fields),
            None if columns is None else list(columns),
            list(required),
            header if header is not None else [],
        )
    for number, record in records:
        problem = None if isinstance(record, FileError) else value_problem(record)
        if problem is not None:
            path, reason = problem
            record = FileError(number, {path: [reason]})
        yield number, record


def check_header(header: list[str], columns: list[str] | None, required: list[str]) -> None:
    """One header-level error for a CSV whose columns are wrong, instead of one per line."""
    if len(header) == 1 and header[0] not in (columns or ()):
        for delimiter, name in OTHER_DELIMITERS.items():
            if delimiter in header[0]:
                raise InvalidInput(
                    f"line 1: wrong delimiter: the header is separated by {name}; "
                    "CSV files must be comma-separated (,) with a header line",
                    {"line": 1, "delimiter": delimiter},
                )
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise InvalidInput(
            f"line 1: column(s) {_names(repeated)} appear more than once in the header",
            {"line": 1, "repeated": repeated},
        )
    missing = [c for c in required if c not in header]
    unknown = [c for c in header if columns is not None and c not in columns]
    if missing or unknown:
        problems = []
        if missing:
            problems.append(f"missing required column(s) {_names(missing)}")
        if unknown:
            problems.append(f"unknown column(s) {_names(unknown)}")
        raise InvalidInput(
            f"line 1: the header has {' and '.join(problems)}; "
            f"the columns are {', '.join(columns or required)}",
            {"line": 1, "missing": missing, "unknown": unknown},
        )


def _names(names: list[str]) -> str:
    """Column names quoted and truncated for a one-line message."""
    return ", ".join(repr(n[:60]) for n in names[:20])


def _decode(stream: IO[bytes], max_bytes: int) -> str:
    """The whole stream as text; 413 past max_bytes, 400 when not UTF-8.

    Reads until the stream ends: one read() of a network stream may return only part of the
    body, and a prefix taken for the whole file would import a truncated file.
    """
    parts, size = [], 0
    while size <= max_bytes:
        chunk = stream.read(min(READ_CHUNK, max_bytes + 1 - size))
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    data = b"".join(parts)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"the file is larger than {max_bytes // (1024 * 1024)} MB")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BadRequest(f"the file is not UTF-8 (byte {e.start})") from None


def _read_jsonl(text: str) -> Iterator[tuple[int, object]]:
    # NOTE: JSON Lines separates records by \n (or \r\n) only: str.splitlines would also
    # split inside strings at U+2028, U+0085 and the like, which JSON writes unescaped.
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        if len(line) > MAX_LINE_BYTES:
            yield number, FileError(number, "line longer than 1 MB")
            continue
        try:
            record = json.loads(line, parse_constant=refuse_json_constant)
        except RecursionError:
            yield number, FileError(number, "not valid JSON: nested too deeply")
            continue
        except ValueError as e:
            yield number, FileError(number, f"not valid JSON: {e}")
            continue
        if not isinstance(record, dict):
            yield number, FileError(number, "each line must be a JSON object")
            continue
        yield number, record


def _read_csv(
    text: str, list_fields: set[str], columns: list[str] | None, required: list[str], out: list
) -> Iterator[tuple[int, object]]:
    """Records of a CSV file with a header line, after checking the header as a whole."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = reader.fieldnames or []
    except csv.Error as e:
        raise InvalidInput(f"line 1: not valid CSV: {e}", {"line": 1}) from None
    check_header(header, columns, required)
    out.extend(header)
    try:
        for row in reader:
            number = reader.line_num
            if None in row:
                yield number, FileError(number, "more cells than header columns")
                continue
            record = {}
            for key, value in row.items():
                if key is None or value is None or value == "":
                    continue
                value = csv_uncell(value)
                if key in list_fields:
                    record[key] = [p.strip() for p in value.split(LIST_SEPARATOR) if p.strip()]
                else:
                    record[key] = value
            yield number, record
    except csv.Error as e:
        yield reader.line_num, FileError(reader.line_num, f"not valid CSV: {e}")


def write_records(
    records: Iterable[dict],
    fmt: str,
    out: IO[str],
    columns: list[str],
    list_fields: Iterable[str] = (),
) -> int:
    """Write records as JSON Lines or CSV (lists joined by ';'); returns how many."""
    if fmt not in FORMATS:
        raise BadRequest(f"unknown format {fmt!r}; use jsonl or csv")
    list_fields = set(list_fields)
    count = 0
    if fmt == "jsonl":
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
            count += 1
        return count
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    # NOTE: with "\n" line ends, csv leaves a lone "\r" in a cell unquoted and readers then
    # split the row there; such rows are written with every cell quoted.
    quoted = csv.DictWriter(
        out, fieldnames=columns, extrasaction="ignore", lineterminator="\n", quoting=csv.QUOTE_ALL
    )
    writer.writeheader()
    for record in records:
        row = {}
        for key in columns:
            value = record.get(key)
            if key in list_fields and value is not None:
                value = LIST_SEPARATOR.join(str(v) for v in value)
            elif isinstance(value, (dict, list)):
                value = json.dumps(value, ensure_ascii=False)
            row[key] = csv_cell(value)
        has_cr = any(isinstance(v, str) and "\r" in v for v in row.values())
        (quoted if has_cr else writer).writerow(row)
        count += 1
    return count
