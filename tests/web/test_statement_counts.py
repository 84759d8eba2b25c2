"""Statements per request on the paths a rep waits on do not grow with assets, deals or shares.

Each route is asked at a small data set and again after five times as much data was added
(assets, deals, shares with buyer views); the statements sent to the database (BEGIN
included, counted by a cursor event on the app's engine) must be the same at both sizes and
at most a fixed ceiling per engine. The ceilings are the counts this code has; a change that
adds a round trip to a route has to raise them here, on purpose.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import event

from tests.scale_data import load_scale

# (sqlite, postgresql): SQLite counts its explicit BEGIN per transaction; psycopg sends BEGIN
# and COMMIT itself (not seen by the event), and read-only sessions there send neither.
CEILINGS = {
    "recommendations": (6, 3),
    "share": (7, 5),
    "deal_view": (6, 4),
    "deal_page": (12, 7),
    "link": (3, 2),
}
SMALL = {"assets": 12, "deals": 10, "shares": 30}


@pytest.fixture
def settings(settings):
    """The recommender's caches held for the whole test (their re-checks are time-based, so a
    count would otherwise depend on how long the test took); the index is rebuilt by hand."""
    return settings.with_overrides(
        recommendation_assets_check_every=timedelta(hours=1),
        recommendation_effects_max_age=timedelta(hours=1),
    )


class Counter:
    """Statements the app's engine sends while `count` runs a request."""

    def __init__(self, engine):
        self.engine = engine

    def count(self, request) -> tuple[int, object]:
        statements = []

        def before(_conn, _cursor, statement, *_args):
            statements.append(statement)

        event.listen(self.engine, "before_cursor_execute", before)
        try:
            response = request()
        finally:
            event.remove(self.engine, "before_cursor_execute", before)
        return len(statements), response


def sign_in(client, token: str) -> None:
    page = client.get("/signin", headers={"Accept": "text/html"})
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    client.post("/signin", data={"token": token, "csrf_token": csrf, "next": ""})


def counts(app, client, headers, loaded, round_no: int) -> dict[str, int]:
    """Statements per route, each asked once to warm and once counted."""
    from enablement.services.recommendations import _INDEXES
    from enablement.warmup import warm

    container = app.extensions["enablement"]
    counter = Counter(container.engine)
    # NOTE: the data changed under a cache held for an hour: rebuild it as its next check would.
    _INDEXES.pop(container.engine, None)
    warm(app)
    deal = loaded.open_deals[0]
    found: dict[str, int] = {}
    routes = {
        "recommendations": lambda: client.get(
            f"/api/v1/deals/{deal}/recommendations?limit=5", headers=headers
        ),
        "deal_view": lambda: client.get(f"/api/v1/deals/{deal}", headers=headers),
        "deal_page": lambda: client.get(f"/deals/{deal}", headers={"Accept": "text/html"}),
        "link": lambda: client.get(f"/l/{loaded.link_tokens[round_no]}"),
    }
    for name, request in routes.items():
        request()
        found[name], response = counter.count(request)
        assert response.status_code in (200, 302), (name, response.status_code)
    shares = iter(loaded.assets[2 * round_no : 2 * round_no + 2])
    post = lambda: client.post(  # noqa: E731
        f"/api/v1/deals/{deal}/shares", json={"asset_id": next(shares)}, headers=headers
    )
    post()
    found["share"], response = counter.count(post)
    assert response.status_code == 201, response.get_json()
    return found


def test_statements_per_request_do_not_grow_with_assets_deals_or_shares(
    app, client, container, token_for, database_url
):
    engine = container.engine
    settings = container.settings
    small = load_scale(engine, **SMALL, secret_key=settings.secret_key)
    token = token_for("sales", "Rita")
    headers = {"Authorization": f"Bearer {token}"}
    sign_in(client, token)
    # A share by a person first: the deal page then looks up who shared (as it does from now on).
    shared = client.post(
        f"/api/v1/deals/{small.open_deals[0]}/shares",
        json={"asset_id": small.assets[-1]},
        headers=headers,
    )
    assert shared.status_code == 201
    at_small = counts(app, client, headers, small, 0)
    more = {k: 4 * v for k, v in SMALL.items()}
    load_scale(engine, **more, secret_key=settings.secret_key, offset=1000)
    at_large = counts(app, client, headers, small, 1)
    assert at_large == at_small
    column = 0 if database_url.startswith("sqlite") else 1
    over = {k: (n, CEILINGS[k][column]) for k, n in at_small.items() if n > CEILINGS[k][column]}
    assert not over, f"statements over the ceiling (count, ceiling): {over}"


def test_the_recommendations_read_of_a_deal_and_its_shares_goes_through_indexes(
    container, database_url
):
    """SQLite's plan (rule-based, so stable at any size): the deal by its key, its shares by
    ix_shares_deal, no materialised join of every share (as a parenthesised join once was)."""
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL's plans depend on table statistics (benchmarks --plans)")
    from sqlalchemy.dialects import sqlite

    from enablement.services.recommendations import _DEAL_AND_SENT

    sql = str(_DEAL_AND_SENT.compile(dialect=sqlite.dialect()))
    with container.engine.connect() as conn:
        plan = [row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, ("d1",))]
    assert any("SEARCH shares USING INDEX ix_shares_deal" in line for line in plan), plan
    assert not any(line.startswith(("MATERIALIZE", "SCAN")) for line in plan), plan
