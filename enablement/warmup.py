"""Warm a server process's caches before it answers, so its first request is not its slowest.

A recommendation ranks from a per-process prepared index (services.recommendations): every
live asset with its evidence, engagement, freshness and voice per buying stage, plus memoised
columns of how well each deal term (industry, persona, topic) fits each asset of a stage. Built
on demand, the first request of a process paid for all of it (the assets read, the share and
open counts over every share, the fuzzy fit of its terms), and a request after each rebuild
paid again. `warm` builds it all up front:

- the prepared index (the same one requests use and check for staleness);
- the term columns for every industry, persona and topic that live deals use, per stage, and
  the per-stage score and word columns;
- a rehearsal: a few open deals' recommendations computed by the request's own code, their
  impression inserts included, in transactions that are rolled back; their deal reads; the
  deal page's template compiled. So a pooled connection is open, every statement of the
  path is compiled and its code has run once.

It leaves nothing behind (no impression, no token touched). Under gunicorn it runs in each worker after
the app is loaded and before the worker accepts a connection (enablement.serving's
post_worker_init); `enablement serve` and the benchmarks call it before serving. `maintain`
then keeps the index from expiring under a request: a daemon thread per process that rebuilds
it shortly before its engagement counts reach their maximum age. It is cache maintenance of
this process only: no job, no shared state, nothing lost when the process dies.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from flask import Flask
from sqlalchemy import event, select

from enablement.db import make_sessions, reading
from enablement.db.models import Deal
from enablement.domain.stages import BUYING_STAGES
from enablement.domain.tags import tag_key

log = logging.getLogger(__name__)

# The index is rebuilt by `maintain` this long before a request would find it too old.
REBUILD_AHEAD = timedelta(minutes=2)
# The longest `maintain` waits between passes.
MAINTAIN_EVERY_SECONDS = 30.0
# Deals read for their terms: enough to see every term in use without reading a huge table.
MAX_DEALS_FOR_TERMS = 200_000
# Open deals whose recommendations are rehearsed (computed, then rolled back) at warm-up.
REHEARSED_DEALS = 10


def deal_terms(session) -> list[tuple[str, str]]:
    """Every (dimension, tag key) that open, live deals use (industry, persona, topic)."""
    terms: set[tuple[str, str]] = set()
    rows = session.execute(
        select(Deal.industry, Deal.personas, Deal.topics)
        .where(Deal.deleted_at.is_(None), Deal.closed_at.is_(None))
        .limit(MAX_DEALS_FOR_TERMS)
    )
    for industry, personas, topics in rows:
        if industry and industry.strip():
            terms.add(("industry", tag_key(industry)))
        for persona in personas or ():
            if isinstance(persona, str) and persona.strip():
                terms.add(("persona", tag_key(persona)))
        for topic in topics or ():
            if isinstance(topic, str) and topic.strip():
                terms.add(("topic", tag_key(topic)))
    return sorted(terms)


def fill_index(index, terms: list[tuple[str, str]]) -> int:
    """Compute the index's per-stage columns and its column for each term; how many columns."""
    filled = 0
    for stage in BUYING_STAGES:
        index.fixed_column(stage)
        index.name_reach(stage, "")
        for dimension, term in terms:
            index.term_column(stage, dimension, term)
            filled += 1
    return filled


def warm_recommendations(app: Flask, max_age=None, ahead: float = 1.0) -> dict:
    """Build (or reuse) the prepared index, its columns filled before requests see it; what was
    done, for the log. `max_age` and `ahead`: services.recommendations.warm_index."""
    from enablement.services.recommendations import ENGAGEMENT_MAX_AGE, warm_index

    container = app.extensions["enablement"]
    start = time.perf_counter()
    done = {"terms": 0, "columns": 0, "rebuilt": False}

    def fill(index) -> None:
        with reading(container.sessions) as session:
            terms = deal_terms(session)
        done.update(terms=len(terms), columns=fill_index(index, terms), rebuilt=True)

    warm_index(
        container.sessions,
        container.settings,
        max_age=max_age or ENGAGEMENT_MAX_AGE,
        ahead=ahead,
        fill=fill,
    )
    done["seconds"] = time.perf_counter() - start
    return done


class _Rehearsal(Exception):
    """Raised before a rehearsal's commit: everything it wrote is rolled back."""


def _refuse_commit(_session) -> None:
    raise _Rehearsal


def rehearse(app: Flask, deals: int = REHEARSED_DEALS) -> int:
    """Answer a few open deals' recommendations and deal reads as requests do, writing nothing.

    Each recommendation runs the request's own code, its impression inserts included, in a
    transaction whose commit is refused (so it is rolled back): its statements are compiled
    and its code paths run once, and no impression is logged. Also a 401 through the API
    route and /healthz through Flask, and the deal page's template compiled. How many deals.
    """
    from enablement.errors import EnablementError
    from enablement.services.deals import get_deal
    from enablement.services.recommendations import recommend_for_deal, share_effects
    from enablement.services.tokens import authenticate

    container = app.extensions["enablement"]
    rehearsal = make_sessions(container.engine)
    event.listen(rehearsal, "before_commit", _refuse_commit)
    share_effects(container.sessions, rehearsal)
    try:
        # NOTE: an unknown token: the lookup statement is compiled and run, nothing is touched.
        authenticate(container.sessions, "Bearer warm-up-token-that-matches-no-token")
    except EnablementError:
        pass
    with reading(container.sessions) as session:
        ids = list(
            session.scalars(
                select(Deal.id)
                .where(Deal.deleted_at.is_(None), Deal.closed_at.is_(None))
                .order_by(Deal.id)
                .limit(deals)
            )
        )
    for deal_id in ids:
        try:
            recommend_for_deal(
                rehearsal, container.settings, deal_id, 5, requested_by="warm-up", source="api"
            )
        except (_Rehearsal, EnablementError):
            pass
        get_deal(container.sessions, container.settings, deal_id)
    client = app.test_client()
    client.get("/healthz")
    if ids:
        client.get(f"/api/v1/deals/{ids[0]}/recommendations")  # 401: no token
    app.jinja_env.get_template("pages/deal.html")
    return len(ids)


# Pooled connections opened at warm-up: a request may hold two at once (its token check and its
# work), and the threads of a worker serve several requests together.
WARM_CONNECTIONS = 4
# What a request reads or writes: each warmed connection plans a query on every one of them,
# so its server session has their catalog entries (and the indexes') cached.
_HOT_TABLES = (
    "api_tokens",
    "web_sessions",
    "deals",
    "crm_stages",
    "pipelines",
    "owners",
    "stage_changes",
    "assets",
    "asset_tags",
    "shares",
    "link_views",
    "recommendation_impressions",
    "recommendation_items",
    "idempotency_keys",
    "webhook_events",
    "report_cache",
    "nudges",
    "jobs",
)


def warm_connections(engine, count: int = WARM_CONNECTIONS) -> int:
    """Open up to `count` pooled connections at once (no more than the pool keeps) and have each
    plan a read of every hot table; returns how many. A new connection's first statements pay
    for the connection and for its server session's cold catalog, so requests should not."""
    from sqlalchemy import false
    from sqlalchemy.pool import QueuePool

    from enablement.db.models import Base

    pool = engine.pool
    if isinstance(pool, QueuePool):
        count = min(count, pool.size())
    opened = []
    try:
        for _ in range(count):
            connection = engine.connect()
            opened.append(connection)
            for table in _HOT_TABLES:
                connection.execute(select(Base.metadata.tables[table]).where(false()))
            connection.rollback()
    finally:
        for connection in opened:
            connection.close()
    return len(opened)


def warm(app: Flask) -> dict | None:
    """Warm the process's caches (see the module doc); never raises (a cold start is not an error)."""
    try:
        done = warm_recommendations(app)
        done["rehearsed"] = rehearse(app)
        done["connections"] = warm_connections(app.extensions["enablement"].engine)
    except Exception:  # noqa: BLE001
        # NOTE: a database not reachable at boot must not stop the server: requests build the
        # caches on demand as before, and answer 503 while the database is away.
        log.warning(
            "warm-up skipped: the caches will be built by the first requests", exc_info=True
        )
        return None
    log.info(
        "warm-up: prepared index with %d term columns (%d terms) in %.2f s, %d deals rehearsed",
        done["columns"],
        done["terms"],
        done["seconds"],
        done["rehearsed"],
    )
    return done


def maintain(app: Flask, every: float | None = None) -> threading.Thread:
    """Start this process's cache-maintenance thread (daemon).

    Every `every` seconds (by default half the shorter of RECOMMENDATION_ASSETS_CHECK_EVERY
    and RECOMMENDATION_EFFECTS_MAX_AGE, at least 0.2 s) it re-reads the effects and the
    assets' fingerprint when half their time has passed, so requests find them fresh and do
    not read them; rebuilds the index (columns filled first) when the assets or the report
    changed, and REBUILD_AHEAD before its engagement counts reach their maximum age. The
    staleness bounds stay as documented: requests still re-check after the full time.
    """
    from enablement.services.recommendations import ENGAGEMENT_MAX_AGE

    settings = app.extensions["enablement"].settings
    if every is None:
        shorter = min(
            settings.recommendation_assets_check_every, settings.recommendation_effects_max_age
        )
        every = min(max(shorter.total_seconds() / 2, 0.2), MAINTAIN_EVERY_SECONDS)

    def loop() -> None:
        while True:
            time.sleep(every)
            try:
                warm_recommendations(app, max_age=ENGAGEMENT_MAX_AGE - REBUILD_AHEAD, ahead=0.5)
            except Exception:  # noqa: BLE001
                log.debug("cache maintenance pass failed; the next one tries again", exc_info=True)

    thread = threading.Thread(target=loop, name="enablement-cache-maintenance", daemon=True)
    thread.start()
    return thread
