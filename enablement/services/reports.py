"""Reports: load the data, compute in the pure domain, cache while the tables read are unchanged.

The recommendations report is counted by the database instead (services.recommendations).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from enablement.config import Settings
from enablement.db import report_queries as q
from enablement.db.models import LinkView, RecommendationImpression, ReportCache, Share
from enablement.db.types import utcnow
from enablement.db.versioning import table_versions, version_text
from enablement.domain import coverage as coverage_domain
from enablement.domain.cycle_time import compute_cycle_time
from enablement.domain.effectiveness import compute_effectiveness, recommender_impact
from enablement.domain.episodes import build_episodes, to_days
from enablement.domain.timestamps import InvalidTimestamp, format_timestamp, parse_timestamp
from enablement.errors import InvalidInput

KINDS = ("coverage", "cycle-time", "effectiveness", "recommendations")
# A report for "now" (no as_of given) is reused while its tables are unchanged, up to this age.
LATEST_MAX_AGE = timedelta(hours=1)

_COMMON = {"stage_map": q.stage_map, "history": q.stage_history, "deals": q.deals}
# What each report loads (name -> query). Its cache is versioned by exactly the tables these
# queries read, so e.g. a buyer's click (link_views) refreshes coverage only, and a new share
# leaves cycle time alone.
LOADS = {
    "cycle-time": _COMMON,
    "effectiveness": {
        **_COMMON,
        "shares": q.shares,
        "titles": q.asset_titles,
        "published": q.asset_published,
    },
    "coverage": {**_COMMON, "shares": q.shares_with_views, "assets": q.assets},
    # Part of the effectiveness report, cached on its own: every recommendation answer adds an
    # impression, which must not throw away the per-asset effects (the expensive part).
    "recommender-impact": {**_COMMON, "impressions": q.impressions},
    "recommendations": {"titles": q.asset_titles},
}


def _recommendation_counts(sessions: sessionmaker[Session]) -> dict:
    """The funnel per asset and the deals per group, as services.recommendations counts them."""
    # NOTE: imported here because services.recommendations reads effects() from this module;
    # the queries belong in db/report_queries.py, which would remove this import altogether.
    from enablement.services.recommendations import holdout_counts, recommendation_funnel

    return {"funnel": recommendation_funnel(sessions), "groups": holdout_counts(sessions)}


# Parts counted by database queries rather than loaded rows: the counting function and the tables
# it reads. NOTE: recommendation_items are written only with their impression, so the
# impressions' fingerprint versions them too.
COUNTED = {
    "recommendations": (_recommendation_counts, (RecommendationImpression, Share, LinkView)),
}
RECOMMENDATIONS_METHOD = (
    "Counts of everything logged so far. Per asset: recommended = times it was listed in a "
    "recommendation answer; shared = shares made with the impression_id of an answer that listed "
    "it; opened = those shares a buyer opened at least once. groups: distinct deals that asked for "
    "recommendations and were shown them, and that were held out (RECOMMENDATION_HOLDOUT; a deal "
    "whose group changed with the fraction counts in both). Whether recommending shortens stages is "
    "the effectiveness report's recommender_impact."
)


def tables_read(kind: str) -> tuple:
    """The tables a report of this kind reads."""
    tables = {table for query in LOADS[kind].values() for table in query.tables}
    if kind in COUNTED:
        tables |= {model.__table__ for model in COUNTED[kind][1]}
    return tuple(tables)


def get_report(
    sessions: sessionmaker[Session],
    settings: Settings,
    kind: str,
    as_of: datetime | None = None,
    on_compute=None,
) -> dict:
    """The report of this kind at as_of (default now), from the cache while its tables are unchanged.

    Computes inline on a cache miss (the CLI, and the background jobs of request_report).
    on_compute(), when given, is called on a cache miss before the (possibly slow) computation.
    The effectiveness report carries the recommender's own impact beside the per-asset effects.
    """
    as_of = _checked(kind, as_of)
    report = _cached(sessions, settings, kind, as_of, on_compute)
    if kind == "effectiveness":
        impact = _cached(sessions, settings, "recommender-impact", as_of, on_compute)
        report = {**report, "recommender_impact": impact["rows"]}
    return report


@dataclass(frozen=True)
class ReportAnswer:
    """What a report request gets without waiting: the report (fresh or stale), or none yet.

    state is "fresh" (computed on the data as they are), "stale" (the last computed one, a
    newer one being computed) or "computing" (none yet: ask again in retry_after seconds).
    version and computed_at say which data the report was computed on, and when.
    """

    state: str
    report: dict | None = None
    version: str | None = None
    computed_at: datetime | None = None
    retry_after: int = 2


def request_report(
    sessions: sessionmaker[Session],
    settings: Settings,
    queue: Callable[[str, str, datetime | None], None] | None,
    kind: str,
    as_of: datetime | None = None,
) -> ReportAnswer:
    """The report as far as it is computed, queueing its computation when needed.

    queue(key, kind, as_of) asks the job engine for it (services.jobs.queue_report): however
    many callers (threads, processes, hosts) ask for the same report, it is computed once, in
    a worker. Without a queue (inline) it is get_report, in the caller's thread.
    """
    as_of = _checked(kind, as_of)
    if queue is None:
        return ReportAnswer("fresh", get_report(sessions, settings, kind, as_of))
    parts = [kind, "recommender-impact"] if kind == "effectiveness" else [kind]
    looks = [_look(sessions, settings, part, as_of) for part in parts]
    if not all(fresh for _, fresh in looks):
        queue(report_key(settings, kind, as_of), kind, as_of)
    rows = [row for row, _ in looks]
    if any(row is None for row in rows):
        return ReportAnswer("computing")
    report = rows[0].payload
    if kind == "effectiveness":
        report = {**report, "recommender_impact": rows[1].payload["rows"]}
    state = "fresh" if all(fresh for _, fresh in looks) else "stale"
    return ReportAnswer(state, report, rows[0].version, rows[0].created_at)


def _checked(kind: str, as_of) -> datetime | None:
    """InvalidInput for an unknown kind or an as_of outside the product's timestamp rule."""
    if kind not in KINDS:
        raise InvalidInput(f"unknown report {kind!r}; choose one of {', '.join(KINDS)}")
    if as_of is None:
        return None
    if kind in COUNTED:
        # NOTE: the counting queries have no time filter, so an as_of could not be honoured.
        raise InvalidInput(f"the {kind} report counts everything logged so far: no as_of")
    try:
        return parse_timestamp(as_of)
    except InvalidTimestamp as e:
        raise InvalidInput(f"as_of: {e}") from None


def report_key(settings: Settings, kind: str, as_of: datetime | None) -> str:
    """The report_cache key of one part (a LOADS kind) at as_of (None: "now")."""
    key = f"{kind}:{format_timestamp(as_of)}" if as_of is not None else f"{kind}:latest"
    if kind == "coverage":
        # The thin/ok threshold is a setting, so it is part of what the cached answer depends on.
        key += f":min{settings.coverage_min_assets}"
    if kind == "recommendations":
        # Likewise the holdout fraction, which the answer states.
        key += f":holdout{settings.recommendation_holdout}"
    return key


def _look(
    sessions: sessionmaker[Session], settings: Settings, kind: str, as_of: datetime | None
) -> tuple[ReportCache | None, bool]:
    """The cached part (or None) and whether it is current; reads two small things, computes nothing."""
    with sessions.begin() as session:
        version = version_text(table_versions(session, tables_read(kind)))
        cached = session.get(ReportCache, report_key(settings, kind, as_of))
        return cached, cached is not None and _current(cached, version, as_of, utcnow())


def _current(cached: ReportCache, version: str, as_of: datetime | None, now: datetime) -> bool:
    """True when a cached part was computed on the data as they are (and, for "now", recently)."""
    return cached.version == version and (
        as_of is not None or now - cached.created_at <= LATEST_MAX_AGE
    )


def _cached(
    sessions: sessionmaker[Session],
    settings: Settings,
    kind: str,
    as_of: datetime | None,
    on_compute,
) -> dict:
    """One cached part (a LOADS kind) at as_of, computed and stored on a miss."""
    now = utcnow()
    key = report_key(settings, kind, as_of)
    with sessions.begin() as session:
        # NOTE: fingerprint first: data committed between it and the loads below only makes
        # the stored report look older than it is, so it is recomputed sooner, never served stale.
        version = version_text(table_versions(session, tables_read(kind)))
        cached = session.get(ReportCache, key)
        if cached is not None and _current(cached, version, as_of, now):
            return cached.payload
        if on_compute is not None:
            on_compute()
        data = {name: query(session) for name, query in LOADS[kind].items()}
    if kind in COUNTED:
        data.update(COUNTED[kind][0](sessions))
    report = _compute(kind, data, settings, as_of or now)
    _store(sessions, key, version, report)
    return report


def _compute(kind: str, data: dict, settings: Settings, as_of: datetime) -> dict:
    """Pure computation of one report from loaded data."""
    as_of_iso = format_timestamp(as_of)
    if kind == "recommendations":
        return _recommendations(data, settings, as_of_iso)
    episodes, crm_episodes = build_episodes(data["history"], data["stage_map"], as_of)
    if kind == "effectiveness":
        return compute_effectiveness(
            episodes,
            data["deals"],
            data["shares"],
            data["titles"],
            as_of_iso,
            published=data["published"],
        )
    if kind == "recommender-impact":
        return {"rows": recommender_impact(episodes, data["deals"], data["impressions"])}
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


def _recommendations(data: dict, settings: Settings, as_of_iso: str) -> dict:
    """The recommendation funnel per asset (with its title) and the deals in each group."""
    titles = data["titles"]
    return {
        "as_of": as_of_iso,
        "method": RECOMMENDATIONS_METHOD,
        "holdout_fraction": settings.recommendation_holdout,
        "groups": data["groups"],
        "funnel": [{**row, "title": titles.get(row["asset_id"], "")} for row in data["funnel"]],
    }


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
            r.pipeline_label,
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


def _store(sessions: sessionmaker[Session], key: str, version: str, report: dict) -> None:
    """Keep the report with the fingerprint it was computed at; a concurrent writer of the key wins harmlessly."""
    try:
        with sessions.begin() as session:
            row = session.get(ReportCache, key)
            if row is None:
                session.add(ReportCache(key=key, version=version, payload=report))
            else:
                row.version, row.payload, row.created_at = version, report, utcnow()
    except IntegrityError:
        pass  # NOTE: another worker cached the same report at the same moment


_EFFECTS_MEMO: dict[tuple, dict] = {}


def effects(sessions: sessionmaker[Session]) -> dict[tuple[str, str], dict]:
    """(asset_id, buying_stage) -> effectiveness item from the cached report; never computes.

    Prefers the report for "now" (no as_of), else the most recently computed one. Cheap enough
    for ranking: one small row read, the payload parsed once per cached version (memoised).
    Empty when no effectiveness report was computed yet.
    """
    with sessions.begin() as session:
        row = session.execute(
            select(ReportCache.key, ReportCache.version, ReportCache.created_at)
            .where(ReportCache.key.like("effectiveness:%"))
            .order_by(
                (ReportCache.key == "effectiveness:latest").desc(),
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
