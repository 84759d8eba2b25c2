"""Tags that look alike are one tag: on assets, in filters, in coverage and after the 0009 upgrade."""

from __future__ import annotations

from alembic import command
from sqlalchemy import delete, insert, select

from enablement import db
from enablement.db.models import AssetTag
from enablement.domain.tags import distinct_tags, mixes_scripts, tag_key
from tests.asset_data import asset_record
from tests.crm_data import insert_asset

LOOK_LIKE_CFO = [
    "CFO",
    "CFO\u200b",
    "\u0421FO",
    "\uff23\uff26\uff2f",
    "\u2066CFO\u2069",
    "cfo\u00ad",
]


def test_every_spelling_that_looks_like_cfo_is_one_tag():
    assert {tag_key(t) for t in LOOK_LIKE_CFO} == {"cfo"}
    assert distinct_tags(LOOK_LIKE_CFO) == ("CFO",)
    assert distinct_tags(["Caf\u00e9", "Cafe\u0301"]) == ("Caf\u00e9",)
    # Real words of other scripts keep their letters; only a mixed word is read as Latin.
    assert tag_key("\u041c\u043e\u0441\u043a\u0432\u0430") == "\u043c\u043e\u0441\u043a\u0432\u0430"
    assert mixes_scripts("\u0421FO") and not mixes_scripts("\u041c\u043e\u0441\u043a\u0432\u0430")
    assert not mixes_scripts("\u6771\u4eac\u30bf\u30ef\u30fc")


def test_an_asset_tagged_with_look_alikes_is_found_by_the_plain_tag(client, auth):
    record = asset_record(1, personas=LOOK_LIKE_CFO[1:], topics=["Caf\u00e9", "Cafe\u0301"])
    created = client.post("/api/v1/assets", json=record, headers=auth("marketing"))
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["personas"] == ["CFO"]
    assert body["topics"] == ["Caf\u00e9"]
    for persona in ("CFO", "cfo", "\u0421FO", "\uff23\uff26\uff2f"):
        found = client.get(
            "/api/v1/assets", query_string={"persona": persona}, headers=auth("sales")
        ).get_json()
        assert [a["id"] for a in found["items"]] == [body["id"]], persona


def test_a_look_alike_title_is_flagged_as_one(client, auth):
    first = client.post(
        "/api/v1/assets",
        json=asset_record(1, title="Why CFOs stall deals"),
        headers=auth("marketing"),
    )
    spoof = client.post(
        "/api/v1/assets",
        json=asset_record(2, title="Why \u0421FOs stall deals"),
        headers=auth("marketing"),
    )
    assert (first.status_code, spoof.status_code) == (201, 201)
    warnings = spoof.get_json()["warnings"]
    assert [(w["of"], w["reason"]) for w in warnings] == [
        (first.get_json()["id"], "look_alike_title")
    ]


def test_upgrading_to_0009_rekeys_tags_stored_by_the_older_key(container, sessions):
    insert_asset(sessions, "a1", personas=["CFO\u200b", "Caf\u00e9"])
    old_keys = ["cfo\u200b", "cafe\u0301", "caf\u00e9", "ops"]
    with sessions.begin() as session:
        session.execute(delete(AssetTag))
        session.execute(
            insert(AssetTag),
            [{"asset_id": "a1", "dimension": "persona", "value": v} for v in old_keys],
        )
    config = db.alembic_config(container.engine)
    try:
        command.downgrade(config, "0006")
    finally:
        command.upgrade(config, "head")
    with sessions() as session:
        values = sorted(session.scalars(select(AssetTag.value).where(AssetTag.asset_id == "a1")))
    assert values == ["caf\u00e9", "cfo", "ops"]
