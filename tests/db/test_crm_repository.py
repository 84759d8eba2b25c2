"""Writing pipelines and deals with exact stage histories, idempotently, on both engines."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from enablement.db.crm import upsert_deals, upsert_pipelines
from enablement.db.models import CrmStage, Deal, StageChange
from enablement.domain.crm import DealRecord, PipelineRecord, StageEntry, StageRecord
from tests.db.report_inputs import report_inputs

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def pipeline(**overrides) -> PipelineRecord:
    stages = (
        StageRecord("disc", "Discovery call", 0, 0.2),
        StageRecord("demo", "Demo / proof of concept", 1, 0.5),
        StageRecord("prop", "Proposal sent", 2, 0.8, buying_stage="closing"),
        StageRecord("won", "Closed won", 3, 1.0, is_closed=True, is_won=True),
        StageRecord("lost", "Closed lost", 4, 0.0, is_closed=True),
    )
    return PipelineRecord(**{"id": "p1", "label": "Sales", "stages": stages, **overrides})


def deal(history, **overrides) -> DealRecord:
    entries = tuple(StageEntry(T0 + timedelta(days=d), s) for d, s in history)
    return DealRecord(
        **{
            "id": "d1",
            "name": "Acme",
            "pipeline_id": "p1",
            "created_at": T0,
            "stage_history": entries,
            "amount": 1000.0,
            **overrides,
        }
    )


def stored_history(sessions, deal_id="d1"):
    with sessions() as session:
        rows = session.execute(
            select(StageChange.stage_id, StageChange.entered_at)
            .where(StageChange.deal_id == deal_id)
            .order_by(StageChange.entered_at)
        ).all()
    return [(s, t) for s, t in rows]


def test_pipelines_get_suggestions_and_keep_confirmed_mappings(sessions):
    with sessions.begin() as session:
        upsert_pipelines(session, [pipeline()])
    with sessions.begin() as session:
        stage = session.get(CrmStage, ("p1", "demo"))
        stage.buying_stage, stage.mapping_source = "interest", "confirmed"
    with sessions.begin() as session:
        counts = upsert_pipelines(session, [pipeline()])
    with sessions() as session:
        stages = {s.id: s for s in session.scalars(select(CrmStage))}
    assert stages["disc"].buying_stage == "interest"
    assert stages["disc"].mapping_source == "suggested"
    assert stages["demo"].buying_stage == "interest"  # the person's choice survives re-import
    assert stages["prop"].mapping_source == "confirmed"
    assert stages["won"].buying_stage is None
    assert counts.unchanged == 1


def test_deal_history_is_stored_exactly_including_re_entries(sessions):
    history = [(0, "disc"), (3, "demo"), (5, "disc"), (9, "demo"), (12, "won")]
    with sessions.begin() as session:
        upsert_pipelines(session, [pipeline()])
        upsert_deals(session, [deal(history)], source="import")
    assert [s for s, _ in stored_history(sessions)] == ["disc", "demo", "disc", "demo", "won"]
    with sessions() as session:
        assert session.get(Deal, "d1").current_stage_id == "won"


def test_reapplying_the_same_deal_changes_nothing(sessions):
    with sessions.begin() as session:
        upsert_pipelines(session, [pipeline()])
        upsert_deals(session, [deal([(0, "disc"), (2, "demo")])], source="import")
    before = report_inputs(sessions)
    with sessions.begin() as session:
        counts = upsert_deals(session, [deal([(2, "demo"), (0, "disc")])], source="import")
    assert (counts.created, counts.updated, counts.unchanged) == (0, 0, 1)
    assert report_inputs(sessions) == before


def test_a_changed_history_replaces_only_the_difference(sessions):
    with sessions.begin() as session:
        upsert_pipelines(session, [pipeline()])
        upsert_deals(session, [deal([(0, "disc"), (2, "demo")])], source="import")
    with sessions.begin() as session:
        counts = upsert_deals(
            session, [deal([(0, "disc"), (4, "demo"), (6, "lost")])], source="sync"
        )
    assert counts.updated == 1
    assert (counts.stage_changes_added, counts.stage_changes_removed) == (2, 1)
    assert [s for s, _ in stored_history(sessions)] == ["disc", "demo", "lost"]


def test_a_deleted_deal_keeps_its_history(sessions):
    with sessions.begin() as session:
        upsert_pipelines(session, [pipeline()])
        upsert_deals(session, [deal([(0, "disc")])], source="import")
    with sessions.begin() as session:
        counts = upsert_deals(session, [deal([(0, "disc")], deleted=True)], source="sync")
    assert counts.deleted == 1
    with sessions() as session:
        assert session.get(Deal, "d1").deleted_at is not None
    assert len(stored_history(sessions)) == 1
