"""Reports: load the data, compute in the pure domain, cache per data version, render."""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from enablement import TEMPLATES
from enablement.config import Settings
from enablement.db import report_queries as q
from enablement.db.models import ReportCache
from enablement.db.types import utcnow
from enablement.db.versioning import ENGAGEMENT, current_data_version
from enablement.domain import coverage as coverage_domain
from enablement.domain.cycle_time import compute_cycle_time
from enablement.domain.effectiveness import compute_effectiveness
from enablement.domain.episodes import build_episodes, to_days
from enablement.errors import InvalidInput

KINDS = ("coverage", "cycle-time", "effectiveness")
FORMATS = ("table", "json", "csv", "html")
# A report for "now" (no as_of given) is reused while the data version is unchanged, up to this age.
LATEST_MAX_AGE = timedelta(hours=1)


def get_report(
    sessions: sessionmaker[Session], settings: Settings, kind: str, as_of: datetime | None = None
) -> dict:
    """The report of this kind at as_of (default now), from the cache when the data are unchanged."""
    if kind not in KINDS:
        raise InvalidInput(f"unknown report {kind!r}; choose one of {', '.join(KINDS)}")
    if as_of is not None:
        if as_of.tzinfo is None:
            raise InvalidInput("as_of must carry a time zone (Z or an offset)")
        if not 1970 <= as_of.year <= 2200:
            raise InvalidInput("as_of must lie between the years 1970 and 2200")
        as_of = as_of.astimezone(UTC)
    now = utcnow()
    key = f"{kind}:{as_of.isoformat()}" if as_of is not None else f"{kind}:latest"
    if kind == "coverage":
        # The thin/ok threshold is a setting, so it is part of what the cached answer depends on.
        key += f":min{settings.coverage_min_assets}"
    with sessions.begin() as session:
        version = current_data_version(session)
        # Only coverage reads buyer views (never-opened assets); the others ignore clicks.
        engagement = current_data_version(session, ENGAGEMENT) if kind == "coverage" else 0
        cached = session.get(ReportCache, key)
        if (
            cached is not None
            and (cached.data_version, cached.engagement_version) == (version, engagement)
            and (as_of is not None or now - cached.created_at <= LATEST_MAX_AGE)
        ):
            return cached.payload
        data = _load(session, kind)
    report = _compute(kind, data, settings, as_of or now)
    _store(sessions, key, (version, engagement), report)
    return report


def _load(session: Session, kind: str) -> dict:
    """Everything the report needs, read in one transaction."""
    data = {"stage_map": q.stage_map(session), "history": q.stage_history(session)}
    data["deals"] = q.deals(session)
    if kind in ("coverage", "effectiveness"):
        data["shares"] = q.shares(session)
    if kind == "coverage":
        data["assets"] = q.assets(session)
    if kind == "effectiveness":
        data["titles"] = q.asset_titles(session)
    return data


def _compute(kind: str, data: dict, settings: Settings, as_of: datetime) -> dict:
    """Pure computation of one report from loaded data."""
    episodes, crm_episodes = build_episodes(data["history"], data["stage_map"], as_of)
    as_of_iso = as_of.isoformat()
    if kind == "effectiveness":
        return compute_effectiveness(
            episodes, data["deals"], data["shares"], data["titles"], as_of_iso
        )
    if kind == "cycle-time":
        return compute_cycle_time(
            episodes,
            crm_episodes,
            data["stage_map"],
            data["deals"],
            data["history"],
            as_of_iso,
            float(to_days(as_of)[0]),
        )
    return _coverage(data, episodes, crm_episodes, settings, as_of)


def _coverage(data, episodes, crm_episodes, settings: Settings, as_of: datetime) -> dict:
    """Adapt loaded rows to the coverage domain's facts and compute."""
    d = data["deals"]
    context = {
        deal_id: (industry, personas, topics)
        for deal_id, industry, personas, topics in zip(
            d["deal_id"], d["industry"], d["personas"], d["topics"], strict=True
        )
    }
    open_eps = episodes[episodes["outcome"] == "open"]
    open_deals = []
    for deal_id, stage in zip(open_eps["deal_id"], open_eps["buying_stage"], strict=True):
        if deal_id in context:
            industry, personas, topics = context[deal_id]
            open_deals.append(
                coverage_domain.OpenDeal(
                    deal_id,
                    stage,
                    industry if isinstance(industry, str) else None,
                    list(personas or []),
                    list(topics or []),
                )
            )
    open_crm = crm_episodes[crm_episodes["outcome"] == "open"]
    open_in_stage = open_crm.groupby(["pipeline_id", "stage_id"]).size().to_dict()
    stages = [
        coverage_domain.StageFacts(
            r.pipeline_id,
            r.stage_id,
            r.label,
            r.buying_stage,
            bool(r.is_closed),
            r.mapping_source,
            r.mapping_confidence if _finite(r.mapping_confidence) else None,
            int(open_in_stage.get((r.pipeline_id, r.stage_id), 0)),
        )
        for r in data["stage_map"].itertuples(index=False)
    ]
    shares = data["shares"]
    share_facts = [
        coverage_domain.ShareFacts(
            a, t.to_pydatetime() if hasattr(t, "to_pydatetime") else t, int(v)
        )
        for a, t, v in zip(shares["asset_id"], shares["shared_at"], shares["views"], strict=True)
    ]
    assets = [
        coverage_domain.AssetFacts(
            asset_id=a["id"],
            title=a["title"],
            author=a["author"] or "",
            status=a["status"],
            review_by=a["review_by"],
            retired=a["retired_at"] is not None or a["status"] == "retired",
            stages=list(a["stages"] or []),
            personas=list(a["personas"] or []),
            industries=list(a["industries"] or []),
            topics=list(a["topics"] or []),
            pitch_score=a["pitch_score"],
            pitch_flag=bool(a["pitch_flag"]),
        )
        for a in data["assets"]
    ]
    return coverage_domain.compute_coverage(
        assets, open_deals, share_facts, stages, as_of, settings.coverage_min_assets
    )


def _finite(x) -> bool:
    return x is not None and isinstance(x, float | int) and math.isfinite(x)


def _store(
    sessions: sessionmaker[Session], key: str, versions: tuple[int, int], report: dict
) -> None:
    """Keep the report for its (data, engagement) versions; a concurrent writer of the key wins harmlessly."""
    version, engagement = versions
    try:
        with sessions.begin() as session:
            row = session.get(ReportCache, key)
            if row is None:
                session.add(
                    ReportCache(
                        key=key, data_version=version, engagement_version=engagement, payload=report
                    )
                )
            else:
                row.data_version, row.engagement_version = version, engagement
                row.payload, row.created_at = report, utcnow()
    except IntegrityError:
        pass  # NOTE: another worker cached the same report at the same moment


_EFFECTS_MEMO: dict[tuple, dict] = {}


def effects(sessions: sessionmaker[Session]) -> dict[tuple[str, str], dict]:
    """(asset_id, buying_stage) -> effectiveness item from the cached report; never computes.

    Prefers the report for "now" (no as_of), else the newest cached one. Cheap enough for
    ranking: one small row read, the payload parsed once per cached version (memoised).
    Empty when no effectiveness report was computed yet.
    """
    with sessions.begin() as session:
        row = session.execute(
            select(ReportCache.key, ReportCache.data_version, ReportCache.created_at)
            .where(ReportCache.key.like("effectiveness:%"))
            .order_by(
                (ReportCache.key == "effectiveness:latest").desc(),
                ReportCache.data_version.desc(),
                ReportCache.created_at.desc(),
            )
            .limit(1)
        ).first()
        if row is None:
            return {}
        memo_key = (id(sessions), *row)
        if memo_key not in _EFFECTS_MEMO:
            payload = session.get(ReportCache, row.key).payload
            _EFFECTS_MEMO.clear()  # NOTE: keep only the newest; old versions are never asked again
            _EFFECTS_MEMO[memo_key] = {
                (it["asset_id"], it["buying_stage"]): it for it in payload.get("items", [])
            }
        return _EFFECTS_MEMO[memo_key]


def effect_for(sessions: sessionmaker[Session], asset_id: str, buying_stage: str) -> dict | None:
    """The cached effectiveness item of one (asset, stage), or None when unknown."""
    return effects(sessions).get((asset_id, buying_stage))


# ---- rendering -------------------------------------------------------------------------------

TABLES = {
    "coverage": (
        "cells",
        [
            "stage",
            "dimension",
            "value",
            "live_assets",
            "stale_assets",
            "shares_90d",
            "open_deals",
            "status",
        ],
    ),
    "effectiveness": (
        "items",
        [
            "asset_id",
            "title",
            "buying_stage",
            "exposed_episodes",
            "exposed_advances",
            "hazard_ratio",
            "ci_low",
            "ci_high",
            "p_value",
            "q_value",
            "median_days_exposed",
            "median_days_unexposed",
            "verdict",
            "reason",
        ],
    ),
}
CYCLE_COLUMNS = [
    "section",
    "pipeline_id",
    "stage",
    "label",
    "buying_stage",
    "entered",
    "advanced",
    "lost",
    "open",
    "other",
    "median_days",
    "p25_days",
    "p75_days",
    "won",
]


def _cycle_rows(report: dict) -> list[dict]:
    """Cycle-time report flattened into one table with a section column."""
    rows = []
    for r in report["crm_stages"]:
        rows.append({"section": "crm_stage", "stage": r["stage_id"], **r})
    for r in report["buying_stages"]:
        rows.append({"section": "buying_stage", "stage": r["buying_stage"], **r})
    for r in report["won_cycle_by_month"]:
        rows.append({"section": "won_by_month", "stage": r["month"], "entered": r["created"], **r})
    return [{c: r.get(c) for c in CYCLE_COLUMNS} for r in rows]


def table_rows(kind: str, report: dict) -> tuple[list[str], list[dict]]:
    """The report's main table: column names and rows."""
    if kind == "cycle-time":
        return CYCLE_COLUMNS, _cycle_rows(report)
    field, columns = TABLES[kind]
    return columns, [{c: item.get(c) for c in columns} for item in report[field]]


def render(kind: str, report: dict, fmt: str) -> str:
    """The report as json, csv, a text table, or (coverage only) a self-contained HTML page."""
    if fmt == "json":
        return json.dumps(report, ensure_ascii=False, indent=2, allow_nan=False) + "\n"
    if fmt == "html":
        if kind != "coverage":
            raise InvalidInput("--format html is available for the coverage report only")
        return render_coverage_html(report)
    columns, rows = table_rows(kind, report)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows([{c: _csv_cell(r[c]) for c in columns} for r in rows])
        return out.getvalue()
    if fmt == "table":
        return _text_table(columns, rows) + f"\nas of {report['as_of']}\n"
    raise InvalidInput(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _csv_cell(value):
    """Empty for null; formula-looking text prefixed so spreadsheets do not run it."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _text_table(columns: list[str], rows: list[dict]) -> str:
    """A plain aligned table; long text cut at 40 characters."""
    cells = [[("" if r[c] is None else str(r[c]))[:40] for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def render_coverage_html(report: dict) -> str:
    """One self-contained HTML file (inline CSS, no external URL) with stage x persona/industry heatmaps."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    matrices = []
    for dim, title in (("persona", "Persona"), ("industry", "Industry"), ("topic", "Topic")):
        cells = [c for c in report["cells"] if c["dimension"] == dim]
        values = sorted({c["value"] for c in cells})
        grid = {(c["value"], c["stage"]): c for c in cells}
        peak = max([c["live_assets"] for c in cells] + [1])
        matrices.append(
            {"dimension": dim, "title": title, "values": values, "grid": grid, "peak": peak}
        )
    stages = [s["stage"] for s in report["stages"]]
    return env.get_template("report_coverage.html").render(
        report=report, matrices=matrices, stages=stages
    )
