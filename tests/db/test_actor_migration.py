"""Migration 0006 gives existing shares and impressions their actor wherever it can be known."""

from alembic import command
from sqlalchemy import select

from enablement import db
from enablement.db.models import ApiToken, RecommendationImpression, Share
from enablement.db.types import utcnow
from enablement.services.shares import NewShare, store_shares
from tests.crm_data import insert_asset, insert_deals, insert_pipeline, sample_deal


def _share(client, token, asset_id):
    headers = {"Authorization": f"Bearer {token}"}
    response = client.post("/api/v1/deals/d1/shares", json={"asset_id": asset_id}, headers=headers)
    assert response.status_code == 201
    return response.get_json()["id"]


def _token_id(sessions, name):
    with sessions() as session:
        return session.scalars(select(ApiToken.id).where(ApiToken.name == name)).first()


def test_upgrading_to_0006_attributes_old_rows_by_what_they_stored(
    client, container, sessions, settings, token_for
):
    insert_pipeline(sessions)
    insert_deals(sessions, sample_deal("d1"))
    for asset_id in ("a1", "a2", "a3", "a4"):
        insert_asset(sessions, asset_id)
    by_owner = _share(client, token_for("sales", "Rita", owner_id="o1"), "a1")
    by_alex = _share(client, token_for("sales", "Alex"), "a2")
    by_sam = _share(client, token_for("sales", "Sam"), "a3")
    token_for("marketing", "Sam")  # a second "Sam": that name no longer says which token
    alex, rita = _token_id(sessions, "Alex"), _token_id(sessions, "Rita")
    rows = [("api", alex), ("api", rita), ("hubspot_card", None)]
    with sessions.begin() as session:
        (imported,) = store_shares(
            session, settings, [NewShare("d1", "a4", utcnow(), "Alex Morgan")], "import"
        )
        for n, (source, token_id) in enumerate(rows):
            requested_by = "owner:o1" if token_id is None else None
            session.add(
                RecommendationImpression(
                    id=f"{n:032d}",
                    deal_id="d1",
                    source=source,
                    token_id=token_id,
                    requested_by=requested_by,
                    created_at=utcnow(),
                )
            )
    config = db.alembic_config(container.engine)
    try:
        command.downgrade(config, "0005")
    finally:
        # NOTE: upgraded again whatever happens: the PostgreSQL test database is shared.
        command.upgrade(config, "head")
    with sessions() as session:
        actors = dict(session.execute(select(Share.id, Share.actor)).all())
        asked = dict(
            session.execute(
                select(RecommendationImpression.id, RecommendationImpression.requested_by)
            ).all()
        )
    assert actors == {
        by_owner: "owner:o1",
        by_alex: f"token:{alex}",
        by_sam: None,
        imported: None,
    }
    assert asked == {f"{0:032d}": f"token:{alex}", f"{1:032d}": "owner:o1", f"{2:032d}": "owner:o1"}
