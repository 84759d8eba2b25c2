"""Asset records: validation and normalisation of one record, derived ids, near-duplicate matching.

Pure: records in, clean values or field errors out. The same rules serve the API and
files (JSON Lines, CSV), so an asset the API accepts is one a file can carry and back.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from rapidfuzz import fuzz, process, utils

from enablement.domain.stages import BUYING_STAGES
from enablement.domain.tags import (
    compare_text,
    distinct_tags,
    mixes_scripts,
    normalise_tag,
    tag_problem,
)
from enablement.domain.timestamps import (
    InvalidTimestamp,
    format_timestamp,
    parse_date,
    parse_timestamp,
)

KINDS: tuple[str, ...] = (
    "article",
    "whitepaper",
    "webinar",
    "case_study",
    "podcast",
    "video",
    "report",
    "roadmap",
    "framework",
)
STATUSES: tuple[str, ...] = ("draft", "approved", "retired")

MAX_ID = 64
MAX_TITLE = 500
MAX_URL = 2048
MAX_AUTHOR = 255
MAX_SUMMARY = 5_000
MAX_BODY = 200_000
MAX_SERIES = 255
MAX_TAGS = 50
MAX_TAG = 100
MAX_SERIES_ORDER = 100_000


@dataclass(frozen=True)
class AssetField:
    """One field of the asset record: its type, limit and whether it is required.

    `type` is one of: id, text, long_text (tabs and newlines allowed), url, choice,
    tags, timestamp, date, order. The API schemas, the file formats (JSON Lines and CSV
    columns) and the exports are all derived from ASSET_FIELDS.
    """

    name: str
    type: str
    limit: int | None = None
    required: bool = False
    choices: tuple[str, ...] = ()
    default: object = None


# The asset record, in file-column order (body last: it is long).
ASSET_FIELDS: tuple[AssetField, ...] = (
    AssetField("id", "id", MAX_ID),
    AssetField("title", "text", MAX_TITLE, required=True),
    AssetField("url", "url", MAX_URL, required=True),
    AssetField("kind", "choice", required=True, choices=KINDS),
    AssetField("author", "text", MAX_AUTHOR, required=True),
    AssetField("summary", "long_text", MAX_SUMMARY),
    AssetField("topics", "tags", MAX_TAGS),
    AssetField("industries", "tags", MAX_TAGS),
    AssetField("personas", "tags", MAX_TAGS),
    AssetField("stages", "tags", MAX_TAGS, choices=BUYING_STAGES),
    AssetField("published_at", "timestamp"),
    AssetField("review_by", "date"),
    AssetField("status", "choice", choices=STATUSES, default="approved"),
    AssetField("series", "text", MAX_SERIES),
    AssetField("series_order", "order", MAX_SERIES_ORDER),
    AssetField("body", "long_text", MAX_BODY),
)
FIELDS: tuple[str, ...] = tuple(f.name for f in ASSET_FIELDS)
LIST_FIELDS: tuple[str, ...] = tuple(f.name for f in ASSET_FIELDS if f.type == "tags")
# Tag dimension in the AssetTag index for each list field.
TAG_DIMENSIONS: dict[str, str] = {
    "stages": "stage",
    "personas": "persona",
    "industries": "industry",
    "topics": "topic",
}

# Titles this similar (token_sort_ratio, 0..100) to a live asset's are near-duplicates.
TITLE_THRESHOLD = 90.0
# At most this many similar-title warnings per asset (the best scoring).
SIMILAR_TITLE_MATCHES = 3

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
# Path segments under /api/v1/assets/ that are routes of their own, never an asset's id.
RESERVED_IDS = frozenset({"import"})
_INT = re.compile(r"^-?[0-9]{1,9}$")  # ASCII digits only: int() also reads "١٢" or "１２"
# Control characters (NUL included: PostgreSQL refuses it); tab and newlines allowed in long text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_LINE = re.compile(r"[\x00-\x1f\x7f]")
_NUMBER = re.compile(r"\d+")
_TRACKING = re.compile(
    r"^(utm_.*|fbclid|gclid|dclid|msclkid|mc_cid|mc_eid|_hsenc|_hsmi|hsctatracking)$"
)


class _Invalid(ValueError):
    """One field's message."""


def _text(value, field: str, limit: int, *, multiline: bool = False, required: bool = False):
    """A trimmed string within the limit, or None for empty optional text."""
    if value is None:
        if required:
            raise _Invalid("Missing data for required field.")
        return None
    if not isinstance(value, str):
        raise _Invalid("Not a valid string.")
    value = value.strip()
    if not value:
        if required:
            raise _Invalid("Must not be empty.")
        return None
    if (_CONTROL if multiline else _CONTROL_LINE).search(value):
        raise _Invalid("Contains control characters.")
    if len(value) > limit:
        raise _Invalid(f"Longer than {limit} characters.")
    return value


def check_url(value) -> str:
    """An absolute http(s) URL with a host, trimmed; raises ValueError with the reason."""
    if not isinstance(value, str):
        raise _Invalid("Not a valid string.")
    url = value.strip()
    if not url:
        raise _Invalid("Must not be empty.")
    if len(url) > MAX_URL:
        raise _Invalid(f"Longer than {MAX_URL} characters.")
    if _CONTROL_LINE.search(url) or " " in url:
        raise _Invalid("Contains spaces or control characters.")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise _Invalid("Not a valid URL.") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise _Invalid("Must be an http or https URL.")
    if not host:
        raise _Invalid("Must have a host.")
    if parts.username is not None or parts.password is not None:
        raise _Invalid("Must not contain a user name or password.")
    reason = internal_host(host)
    if reason:
        raise _Invalid(f"Must point to a public address, not {reason}.")
    return url


# Names that always mean this machine, the local network or a cloud metadata service.
_INTERNAL_NAMES = frozenset(
    {"localhost", "localhost.localdomain", "ip6-localhost", "metadata", "instance-data"}
)
_INTERNAL_SUFFIXES = (".localhost", ".local", ".internal", ".home.arpa")
_NUMERIC_HOST = re.compile(r"[0-9a-fx.]+")
_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")


def internal_host(host: str) -> str | None:
    """Why a URL host is internal (loopback, private, link-local, metadata), or None when public.

    Literal addresses (also the short and numeric forms browsers accept: 127.1, 2130706433,
    0x7f000001) and the obvious names only: no DNS lookup happens at validation time, so a
    public name that resolves to a private address is not caught here.
    """
    name = host.lower().rstrip(".")
    if name in _INTERNAL_NAMES or name.endswith(_INTERNAL_SUFFIXES):
        return f"the internal host {name!r}"
    address = _literal_address(name)
    if address is None or not is_internal_address(address):
        return None
    carried = embedded_ipv4(address)
    return f"the internal address {carried[0] if len(carried) == 1 else address}"


def is_internal_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for an address the service must never reach for a user: loopback, private,
    link-local, unspecified, reserved, multicast, shared (100.64/10), or anything not global.

    The one classification of addresses: asset URLs (literal hosts) and page fetches (every
    address a name resolves to) both ask it. An IPv6 address that carries an IPv4 address
    (embedded_ipv4) is judged by what it carries: 2002:7f00:1:: is 127.0.0.1.
    """
    if address in _NAT64_LOCAL_USE:
        return True
    embedded = embedded_ipv4(address)
    if embedded:
        return any(_is_internal(v4) for v4 in embedded)
    return _is_internal(address)


# NOTE: NAT64's local-use prefix (RFC 8215) is for one network only: internal whatever it
# carries (where a network puts the IPv4 address inside it depends on its prefix length).
# The IPv4-compatible range leaves out :: and ::1, which are IPv6's own.
_NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")


def embedded_ipv4(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address leads to, or () when it carries none.

    IPv4-mapped (::ffff:a.b.c.d), IPv4-translated (::ffff:0:a.b.c.d), IPv4-compatible
    (::a.b.c.d), 6to4 (2002::/16), NAT64 (64:ff9b::/96) and Teredo (2001::/32: its server and
    its client both).
    """
    if address.version != 6 or int(address) <= 1:
        return ()
    last32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.ipv4_mapped:
        return (address.ipv4_mapped,)
    if address in _IPV4_TRANSLATED or address in _IPV4_COMPATIBLE or address in _NAT64_WELL_KNOWN:
        return (last32,)
    if address.sixtofour:
        return (address.sixtofour,)
    if address.teredo:
        return address.teredo
    return ()


def _is_internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """The classification of one address as it stands (no embedded forms)."""
    return (
        not address.is_global
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_reserved
        or address.is_multicast
        or address in _SHARED_ADDRESS_SPACE
    )


def _literal_address(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address a host literally is, in any notation a browser reads, or None for a name."""
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        pass
    if not _NUMERIC_HOST.fullmatch(name) or not any(c.isdigit() for c in name):
        return None
    try:
        # inet_aton reads the legacy forms (127.1, 0x7f.0.0.1, 2130706433) as browsers do.
        return ipaddress.IPv4Address(socket.inet_aton(name))
    except OSError:
        return None


def _url(value) -> str:
    if value is None:
        raise _Invalid("Missing data for required field.")
    return check_url(value)


def _tags(value, spec: AssetField) -> list[str]:
    """A list of distinct tags (case-insensitively), display form kept, first spelling wins.

    With choices (stages), each tag must be one of them, compared in lower case.
    """
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise _Invalid("Not a valid list.")
    if len(value) > spec.limit:
        raise _Invalid(f"More than {spec.limit} values.")
    tags: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise _Invalid("Every value must be a string.")
        tag = normalise_tag(item)
        if not tag:
            continue
        if len(tag) > MAX_TAG:
            raise _Invalid(f"A value is longer than {MAX_TAG} characters.")
        problem = tag_problem(tag)
        if problem:
            raise _Invalid(problem)
        if spec.choices:
            tag = tag.lower()
            if tag not in spec.choices:
                raise _Invalid(f"{item!r} is not a buying stage ({', '.join(spec.choices)}).")
        tags.append(tag)
    return list(distinct_tags(tags))


def _from_rule(error: InvalidTimestamp) -> _Invalid:
    """The shared timestamp rule's message as a field error sentence."""
    text = str(error)
    return _Invalid(f"{text[0].upper()}{text[1:]}.")


def _timestamp(value) -> datetime | None:
    """An aware datetime in UTC by the product's one timestamp rule (None when empty)."""
    if value is None or value == "":
        return None
    try:
        return parse_timestamp(value)
    except InvalidTimestamp as e:
        raise _from_rule(e) from None


def _date(value) -> date | None:
    """A calendar date from YYYY-MM-DD (None when empty)."""
    if value is None or value == "":
        return None
    try:
        return parse_date(value)
    except InvalidTimestamp as e:
        raise _from_rule(e) from None


def _order(value, from_text: bool) -> int | None:
    """A series position (0..MAX_SERIES_ORDER)."""
    if value is None or value == "":
        return None
    if from_text and isinstance(value, str) and _INT.match(value.strip()):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid("Not a valid integer.")
    if not 0 <= value <= MAX_SERIES_ORDER:
        raise _Invalid(f"Must be between 0 and {MAX_SERIES_ORDER}.")
    return value


def _choice(value, choices: tuple[str, ...], *, required: bool) -> str | None:
    if value is None:
        if required:
            raise _Invalid("Missing data for required field.")
        return None
    if not isinstance(value, str) or value.strip().lower() not in choices:
        raise _Invalid(f"Must be one of: {', '.join(choices)}.")
    return value.strip().lower()


def _asset_id(value) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _Invalid("Not a valid string.")
    value = value.strip()
    if len(value) > MAX_ID or not _ID.match(value):
        raise _Invalid(f"Must be 1-{MAX_ID} letters, digits, '.', '_', ':' or '-'.")
    if value in RESERVED_IDS:
        raise _Invalid(f"{value!r} is reserved (it names a route, /api/v1/assets/{value}).")
    return value


def _check_for(spec: AssetField, from_text: bool):
    """The check of one field of the record, by its type in ASSET_FIELDS."""
    if spec.type == "id":
        return _asset_id
    if spec.type in ("text", "long_text"):
        multiline = spec.type == "long_text"
        return lambda v: _text(
            v, spec.name, spec.limit, multiline=multiline, required=spec.required
        )
    if spec.type == "url":
        return _url
    if spec.type == "choice":
        return lambda v: _choice(v, spec.choices, required=spec.required) or spec.default
    if spec.type == "tags":
        return lambda v: _tags(v, spec)
    if spec.type == "timestamp":
        return _timestamp
    if spec.type == "date":
        return _date
    if spec.type == "order":
        return lambda v: _order(v, from_text)
    raise ValueError(f"unknown field type {spec.type!r}")


# The checks of every field, built once (numbers as text are accepted only from CSV cells).
_CHECKS: dict[bool, dict] = {
    from_text: {spec.name: _check_for(spec, from_text) for spec in ASSET_FIELDS}
    for from_text in (False, True)
}


def validate_asset(
    record: Mapping, *, partial: bool = False, from_text: bool = False
) -> tuple[dict, dict[str, list[str]]]:
    """Clean the fields of one asset record; returns (values, errors by field).

    `partial` (an update) checks only the fields given; otherwise absent optional
    fields get their defaults (empty lists, status approved). `from_text` accepts a
    number written as text (CSV cells). Unknown fields are errors.
    """
    errors: dict[str, list[str]] = {}
    values: dict = {}
    for key in record:
        if key not in FIELDS:
            errors.setdefault(str(key)[:100], []).append("Unknown field.")
    checks = _CHECKS[from_text]
    for field, check in checks.items():
        if partial and field not in record:
            continue
        try:
            values[field] = check(record.get(field))
        except _Invalid as e:
            errors.setdefault(field, []).append(str(e))
    if partial and "status" in record and record["status"] is None:
        errors.setdefault("status", []).append("Field may not be null.")
    return values, errors


def normalise_url(url: str) -> str:
    """The URL as compared for duplicates: lower-case scheme and host, no www., default port,
    fragment, tracking parameters (utm_*, gclid, ...) or trailing slash; query sorted."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower().removeprefix("www.")
    port = parts.port
    if port and (parts.scheme.lower(), port) not in (("http", 80), ("https", 443)):
        host = f"{host}:{port}"
    query = sorted(
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING.match(k)
    )
    path = parts.path.rstrip("/")
    # NOTE: http and https of the same page are the same piece of content.
    return urlunsplit(("https", host, path, urlencode(query), ""))


def derived_id(url: str) -> str:
    """A deterministic id for a record without one: the same page always gets the same id."""
    return "u-" + hashlib.sha256(normalise_url(url).encode()).hexdigest()[:24]


def normalise_title(title: str) -> str:
    """The title's words as the tag rule compares text (compare_text), without punctuation, sorted.

    So "Café" composed and decomposed, full-width letters, zero-width characters and a
    Cyrillic "С" inside a Latin word all compare as the title they look like.
    """
    return " ".join(sorted(utils.default_process(compare_text(title or "")).split()))


def _numbers(title: str) -> list[str]:
    """The numbers in a title: 'part 1' and 'part 2', or the 2025 and 2026 reports, differ."""
    return _NUMBER.findall(title or "")


@dataclass(frozen=True)
class DuplicateCandidate:
    """The fields near-duplicate matching looks at."""

    id: str
    title: str
    url: str


def find_near_duplicates(
    new: Sequence[DuplicateCandidate],
    existing: Sequence[DuplicateCandidate],
    threshold: float = TITLE_THRESHOLD,
    block: int = 512,
) -> list[dict]:
    """Warnings for each new asset whose URL or title matches an earlier asset.

    `existing` are the live assets not among `new`; new assets are also compared with
    the new assets before them (a pair reported once, on the later one). Each new asset
    gets at most one same-URL warning (the earliest asset with that URL), one for an
    identical title (the earliest) and SIMILAR_TITLE_MATCHES similar titles (the best
    scoring), so the work and the answer grow linearly with the import, whatever the
    titles: 10,000 copies of one title are 10,000 warnings, not fifty million. Titles
    with different numbers in them (part 1, part 2) are not similar. Distinct titles are
    scored once each with token_sort_ratio in blocks (rapidfuzz.cdist).
    """
    import numpy as np  # NOTE: loaded on first use, so starting the CLI does not pay for it

    pool = [*existing, *new]
    offset = len(existing)
    warnings: list[dict] = []
    reported: set[tuple[str, str]] = set()

    def add(i: int, j: int, reason: str, score: float) -> None:
        a, b = pool[i], pool[j]
        if a.id == b.id or (a.id, b.id) in reported:
            return
        reported.add((a.id, b.id))
        if reason == "similar_title" and (mixes_scripts(a.title) or mixes_scripts(b.title)):
            # NOTE: said apart, so a reviewer looks twice: it may be a spoof of the other title.
            reason = "look_alike_title"
        warnings.append(
            {
                "kind": "near_duplicate",
                "asset_id": a.id,
                "of": b.id,
                "reason": reason,
                "score": round(score / 100.0, 3),
            }
        )

    first_with_url: dict[str, int] = {}
    # A title group: the same normalised words and the same numbers in the same order.
    group_of: list[int] = []
    groups: dict[tuple[str, tuple[str, ...]], int] = {}
    group_first: list[int] = []
    group_title: list[str] = []
    for index, item in enumerate(pool):
        url = normalise_url(item.url)
        j = first_with_url.setdefault(url, index)
        if index >= offset and j < index:
            add(index, j, "same_url", 100.0)
        key = (normalise_title(item.title), tuple(_numbers(item.title)))
        group = groups.setdefault(key, len(groups))
        if group == len(group_first):
            group_first.append(index)
            group_title.append(key[0])
        group_of.append(group)
        if index >= offset and key[0] and group_first[group] < index:
            add(index, group_first[group], "similar_title", 100.0)

    codes: dict[tuple[str, ...], int] = {}
    numbers_code = np.array(
        [codes.setdefault(key[1], len(codes)) for key in groups], dtype=np.int64
    )
    firsts = np.array(group_first, dtype=np.int64)
    # Only groups that first appear among the new assets need scoring, against earlier groups.
    new_groups = [g for g in range(len(group_first)) if group_first[g] >= offset and group_title[g]]
    members: dict[int, list[int]] = {}
    for index in range(offset, len(pool)):
        members.setdefault(group_of[index], []).append(index)
    for start in range(0, len(new_groups), block):
        rows = new_groups[start : start + block]
        width = max(rows) + 1  # a group can only match groups that appeared before it
        scores = process.cdist(
            [group_title[g] for g in rows],
            group_title[:width],
            scorer=fuzz.ratio,
            processor=None,
            score_cutoff=threshold,
            dtype=np.float32,
            workers=-1,
        )
        for r, g in enumerate(rows):
            row = scores[r]
            valid = (row > 0) & (firsts[:width] < group_first[g])
            valid &= numbers_code[:width] == numbers_code[g]
            candidates = np.flatnonzero(valid)
            if len(candidates) > SIMILAR_TITLE_MATCHES:
                best = np.argpartition(-row[candidates], SIMILAR_TITLE_MATCHES - 1)
                candidates = candidates[best[:SIMILAR_TITLE_MATCHES]]
            for c in sorted(candidates, key=lambda c: (-row[c], c)):
                for index in members.get(g, ()):
                    add(index, int(firsts[c]), "similar_title", float(row[c]))
    warnings.sort(key=lambda w: (w["asset_id"], w["reason"] != "same_url", -w["score"]))
    return warnings


def is_stale(status: str, review_by: date | None, today: date) -> bool:
    """Approved but past its review-by date."""
    return status == "approved" and review_by is not None and review_by < today


def is_live(status: str, review_by: date | None, today: date) -> bool:
    """Offered to sales: approved, not past review-by (retired and drafts are not live)."""
    return status == "approved" and not is_stale(status, review_by, today)


def to_record(values: Mapping) -> dict:
    """The asset in its file form (what an import reads back): fields of ASSET_FIELDS in order,
    timestamps as UTC ISO 8601 with Z, dates as YYYY-MM-DD, absent values left out."""
    record: dict = {}
    for spec in ASSET_FIELDS:
        value = values.get(spec.name)
        if spec.type == "tags":
            value = list(value or [])
        elif spec.type == "timestamp":
            value = format_timestamp(value)
        elif spec.type == "date" and value is not None:
            value = value.isoformat()
        if value is not None:
            record[spec.name] = value
    return record
