"""Cached reports and the deal-search candidates recompute after exactly the writes that change what they read."""

from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import delete, update

from enablement.context import Container
from enablement.db.models import Deal, Pipeline, ReportCache, Share
from enablement.db.versioning import table_versions
from enablement.services import deals as deal_search
from enablement.services.assets import create_asset, retire_asset, update_asset
from enablement.services.reports import KINDS, get_report, tables_read
from enablement.services.shares import create_share, follow_link
from enablement.services.stage_map import set_stage_mapping
from enablement.services.tokens import create_token
from tests.asset_data import asset_record
from tests.crm_data import T0, insert_deals, insert_pipeline, sample_deal
from tests.db.report_inputs import mark_reports

AS_OF = T0 + timedelta(days=30)
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0"
ALL = set(KINDS)
# The recommendations report counts impressions, shares and opens (and names the assets).
READS_DEALS = ALL - {"recommendations"}
READS_ASSETS_AND_SHARES = {"coverage", "effectiveness", "recommendations"}
READS_LINK_VIEWS = {"coverage", "recommendations"}


def as_of(kind: str):
    """AS_OF, except for the recommendations report, which counts everything so far (no as_of)."""
    return None if kind == "recommendations" else AS_OF


@dataclass
class World:
    """Two deals, two assets, one share of asset-1 to d1 (and its link token); every cache warm."""

    container: Container
    token: str

    @property
    def sessions(self):
        """The session factory."""
        return self.container.sessions

    @property
    def settings(self):
        """The settings."""
        return self.container.settings


def warm(world: World) -> None:
    """Compute every report and the search candidates, then mark the cached reports."""
    for kind in KINDS:
        get_report(world.sessions, world.settings, kind, as_of(kind))
    deal_search.search_deals(world.sessions, q="acme")
    with world.sessions.begin() as session:
        session.execute(mark_reports(update(ReportCache)))


def recomputed(world: World) -> set[str]:
    """The report kinds that no longer come from the marked cache."""
    return {
        kind
        for kind in KINDS
        if get_report(world.sessions, world.settings, kind, as_of(kind))["as_of"] != "marker"
    }


def candidates(world: World):
    """The deal-search candidate list cached for this engine (None before any search)."""
    # NOTE: white-box on purpose: whether a write rebuilds it is visible only in time taken.
    return deal_search._CANDIDATES.get(world.container.engine)


@pytest.fixture
def world(container) -> World:
    sessions, settings = container.sessions, container.settings
    insert_pipeline(sessions)
    insert_deals(sessions, sample_deal("d1"))
    # d2 goes in last, so its one stage change holds the highest id.
    insert_deals(sessions, sample_deal("d2", history=((3, "demo"),)))
    create_asset(sessions, settings, asset_record(1))
    create_asset(sessions, settings, asset_record(2))
    shared, _ = create_share(sessions, settings, "d1", "asset-1", shared_by="o1", actor="owner:o1")
    world = World(container, shared["link"].rsplit("/", 1)[1])
    warm(world)
    return world


def create_another_asset(w: World):
    create_asset(w.sessions, w.settings, asset_record(3))


def rename_an_asset(w: World):
    update_asset(w.sessions, w.settings, "asset-2", {"title": "Renamed field notes"})


def retire_an_asset(w: World):
    retire_asset(w.sessions, "asset-2")


def import_a_new_deal(w: World):
    insert_deals(w.sessions, sample_deal("d3", name="Soylent rollout"))


def correct_the_newest_stage_change(w: World):
    # Deletes the row with the highest id and inserts one: the count and (without AUTOINCREMENT
    # on SQLite) the highest id would be as before. The deal row itself does not change.
    insert_deals(w.sessions, sample_deal("d2", history=((4, "demo"),)))


def delete_a_deal_in_the_crm(w: World):
    # A deals file (or a sync) delivers the deal archived.
    insert_deals(w.sessions, sample_deal("d2", history=((3, "demo"),), deleted=True))


def remove_a_deal_row(w: World):
    with w.sessions.begin() as session:
        session.execute(delete(Deal).where(Deal.id == "d2"))


def confirm_a_stage_mapping(w: World):
    set_stage_mapping(w.sessions, "p1", "disc", "awareness", "tester")


def rename_a_pipeline(w: World):
    with w.sessions.begin() as session:
        session.execute(update(Pipeline).values(label="Renamed"))


def share_an_asset(w: World):
    create_share(w.sessions, w.settings, "d2", "asset-2", shared_by="o1", actor="owner:o1")


def open_a_link(w: World):
    follow_link(w.sessions, w.token, BROWSER)


def open_a_link_as_a_bot(w: World):
    follow_link(w.sessions, w.token, "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)")


def record_a_crm_write_back(w: World):
    with w.sessions.begin() as session:
        session.execute(update(Share).values(writeback_state="done", writeback_note_id="n1"))


def create_an_api_token(w: World):
    create_token(w.sessions, "sales", "another rep")


def reimport_the_same_deal(w: World):
    insert_deals(w.sessions, sample_deal("d1"))


@pytest.mark.parametrize(
    ("write", "reports", "search_rebuilt"),
    [
        (create_another_asset, READS_ASSETS_AND_SHARES, False),
        (rename_an_asset, READS_ASSETS_AND_SHARES, False),
        (retire_an_asset, READS_ASSETS_AND_SHARES, False),
        (import_a_new_deal, READS_DEALS, True),
        (correct_the_newest_stage_change, READS_DEALS, False),
        (delete_a_deal_in_the_crm, READS_DEALS, True),
        (confirm_a_stage_mapping, READS_DEALS, True),
        (rename_a_pipeline, READS_DEALS, False),
        (share_an_asset, READS_ASSETS_AND_SHARES, False),
        (open_a_link, READS_LINK_VIEWS, False),
        (open_a_link_as_a_bot, set(), False),
        (record_a_crm_write_back, set(), False),
        (create_an_api_token, set(), False),
        (reimport_the_same_deal, set(), False),
    ],
    ids=lambda value: value.__name__ if callable(value) else None,
)
def test_a_write_recomputes_exactly_the_caches_that_read_what_it_changed(
    world, write, reports, search_rebuilt
):
    before = candidates(world)
    write(world)
    assert recomputed(world) == reports
    deal_search.search_deals(world.sessions, q="acme")
    assert (candidates(world) is not before) == search_rebuilt


def test_a_recomputed_report_is_cached_again_under_the_new_fingerprint(world):
    share_an_asset(world)
    assert recomputed(world) == READS_ASSETS_AND_SHARES
    with world.sessions.begin() as session:
        session.execute(mark_reports(update(ReportCache)))
    assert recomputed(world) == set()


def test_deleting_rows_outright_recomputes_every_report_that_reads_them(world):
    with world.sessions.begin() as session:
        session.execute(delete(Share))
    assert recomputed(world) == READS_ASSETS_AND_SHARES
    warm(world)
    remove_a_deal_row(world)
    assert recomputed(world) == READS_DEALS


def test_each_report_reads_only_the_tables_it_needs():
    names = {kind: {table.name for table in tables_read(kind)} for kind in KINDS}
    # NOTE: the stage map carries its pipeline's label (coverage names pipelines by it).
    assert names["cycle-time"] == {"crm_stages", "pipelines", "deals", "stage_changes"}
    assert names["effectiveness"] == names["cycle-time"] | {"shares", "assets"}
    assert names["coverage"] == names["effectiveness"] | {"link_views"}
    assert names["recommendations"] == {
        "assets",
        "shares",
        "link_views",
        "recommendation_impressions",
    }


def test_a_table_without_a_fingerprint_is_refused(sessions):
    from enablement.db.models import ApiToken

    with sessions() as session, pytest.raises(ValueError, match="api_tokens"):
        table_versions(session, [ApiToken])


def test_fingerprints_of_an_empty_database_are_zero_counts(sessions):
    with sessions() as session:
        versions = table_versions(session, tables_read("coverage"))
    assert [(name, count) for name, count, _ in versions] == [
        ("assets", 0),
        ("crm_stages", 0),
        ("deals", 0),
        ("link_views", 0),
        ("pipelines", 0),
        ("shares", 0),
        ("stage_changes", 0),
    ]
