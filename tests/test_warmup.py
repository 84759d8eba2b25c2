"""Warm-up at boot (enablement.warmup): a process's first recommendation is no slower than its tenth.

Judged by what a request has to do, not by timing: after `warm` the prepared index exists
and holds the term columns of every term open deals use, the first request reuses that very
index and sends exactly the statements the tenth sends, and the warm-up logged no impression.
"""

from __future__ import annotations

import logging

from sqlalchemy import event, func, select

from enablement.db.models import RecommendationImpression, RecommendationItem
from enablement.services import recommendations
from enablement.serving import post_worker_init
from enablement.warmup import deal_terms, warm
from tests.scale_data import load_scale


def statements(engine, request) -> int:
    seen = []

    def before(*_args):
        seen.append(1)

    event.listen(engine, "before_cursor_execute", before)
    try:
        response = request()
    finally:
        event.remove(engine, "before_cursor_execute", before)
    assert response.status_code == 200, response.get_json()
    return len(seen)


def impressions(sessions) -> int:
    with sessions() as session:
        return session.scalar(
            select(func.count()).select_from(RecommendationImpression)
        ) + session.scalar(select(func.count()).select_from(RecommendationItem))


def test_after_warm_up_the_first_request_does_what_the_tenth_does(
    app, container, sessions, token_for
):
    loaded = load_scale(container.engine, 40, 30, 60, secret_key=container.settings.secret_key)
    headers = {"Authorization": f"Bearer {token_for('sales')}"}
    client = app.test_client()
    client.get("/healthz")
    # The token's first use records last_used_at once: not part of a process's start.
    client.get(f"/api/v1/deals/{loaded.open_deals[0]}", headers=headers)
    done = warm(app)
    assert done is not None and done["rehearsed"] > 0
    assert impressions(sessions) == 0, "the warm-up logged an impression"
    prepared = recommendations._INDEXES[container.engine]
    with sessions() as session:
        terms = deal_terms(session)
    stage = "evaluation"
    assert terms and all((stage, *term) in prepared.index.term_columns for term in terms)
    counts = []
    for deal_id in loaded.open_deals[:10]:
        counts.append(
            statements(
                container.engine,
                lambda deal_id=deal_id: client.get(
                    f"/api/v1/deals/{deal_id}/recommendations", headers=headers
                ),
            )
        )
    assert recommendations._INDEXES[container.engine] is prepared, "the first request rebuilt it"
    assert counts[0] == counts[9], counts
    assert impressions(sessions) > 0  # the requests themselves are logged as always


def test_without_warm_up_the_first_request_builds_the_index(app, container, token_for):
    loaded = load_scale(container.engine, 40, 30, 60, secret_key=container.settings.secret_key)
    headers = {"Authorization": f"Bearer {token_for('sales')}"}
    client = app.test_client()
    client.get(f"/api/v1/deals/{loaded.open_deals[0]}", headers=headers)
    recommendations._INDEXES.pop(container.engine, None)
    counts = [
        statements(
            container.engine,
            lambda deal_id=deal_id: client.get(
                f"/api/v1/deals/{deal_id}/recommendations", headers=headers
            ),
        )
        for deal_id in loaded.open_deals[:10]
    ]
    # What the warm-up spares the first request: the fingerprint, assets and engagement reads.
    assert counts[0] > counts[9], counts


def test_gunicorn_warms_each_worker_before_it_accepts(app, container, monkeypatch):
    load_scale(container.engine, 10, 10, 10, secret_key=container.settings.secret_key)
    started = []
    monkeypatch.setattr("enablement.warmup.maintain", lambda app: started.append(app))
    frozen = []
    monkeypatch.setattr("gc.freeze", lambda: frozen.append(True))  # not this test runner's heap
    recommendations._INDEXES.pop(container.engine, None)

    class Worker:
        wsgi = app
        pid = 1
        log = logging.getLogger("gunicorn.error")

    post_worker_init(Worker())
    assert container.engine in recommendations._INDEXES
    assert started == [app] and frozen == [True]

    class Foreign:
        wsgi = object()

    post_worker_init(Foreign())  # a foreign wsgi callable: nothing to warm, no error
