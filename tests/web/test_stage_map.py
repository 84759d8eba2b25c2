"""GET/PUT /api/v1/stage-map and `enablement stage-map`."""

import pytest
from sqlalchemy import select

from enablement.db.models import CrmStage
from tests.crm_data import insert_pipeline, sample_pipeline
from tests.db.report_inputs import report_inputs


@pytest.fixture
def pipeline(sessions):
    data = sample_pipeline()
    data["stages"].append({"id": "odd", "label": "Zzzz", "display_order": 5, "is_closed": False})
    data["stages"].append(
        {"id": "meh", "label": "Engaged-ish", "display_order": 6, "probability": 0.6}
    )
    insert_pipeline(sessions, data)
    return data


def version(sessions):
    """What cached reports compare: a change means they are recomputed."""
    return report_inputs(sessions)


def test_the_stage_map_lists_every_stage_with_its_source_and_confidence(client, auth, pipeline):
    response = client.get("/api/v1/stage-map", headers=auth("marketing"))
    assert response.status_code == 200
    body = response.get_json()
    items = {i["stage_id"]: i for i in body["items"]}
    assert list(items) == ["disc", "demo", "prop", "won", "lost", "odd", "meh"]
    assert items["prop"]["source"] == "confirmed"
    assert items["prop"]["buying_stage"] == "closing"
    assert items["disc"]["source"] == "suggested"
    assert items["disc"]["pipeline_label"] == "Sales"
    assert items["won"]["buying_stage"] is None and not items["won"]["unmapped"]
    assert items["odd"]["unmapped"] is True
    assert items["meh"]["low_confidence"] is True
    assert items["meh"]["reason"]
    review = {r["stage_id"]: r["problem"] for r in body["needs_review"]}
    assert review["odd"] == "unmapped"
    assert review["meh"] == "low_confidence"
    assert "prop" not in review and "won" not in review
    low = [i["stage_id"] for i in body["items"] if i["low_confidence"]]
    assert all(review[s] == "low_confidence" for s in low)


def test_an_admin_confirms_a_mapping_and_cached_reports_see_it(client, auth, sessions, pipeline):
    before = version(sessions)
    response = client.put(
        "/api/v1/stage-map/p1/odd", json={"buying_stage": "evaluation"}, headers=auth("admin")
    )
    assert response.status_code == 200
    assert response.get_json()["source"] == "confirmed"
    assert response.get_json()["buying_stage"] == "evaluation"
    assert version(sessions) != before
    with sessions() as session:
        stage = session.get(CrmStage, ("p1", "odd"))
        assert (stage.buying_stage, stage.mapping_source) == ("evaluation", "confirmed")
        assert stage.mapped_by == "test admin"
    body = client.get("/api/v1/stage-map", headers=auth("admin")).get_json()
    assert "odd" not in {r["stage_id"] for r in body["needs_review"]}


def test_null_confirms_a_stage_as_no_buying_stage(client, auth, sessions, pipeline):
    response = client.put(
        "/api/v1/stage-map/p1/disc", json={"buying_stage": None}, headers=auth("admin")
    )
    assert response.status_code == 200
    item = response.get_json()
    assert item["buying_stage"] is None and item["source"] == "confirmed"
    assert item["unmapped"] is False


def test_confirming_the_same_mapping_twice_writes_it_once(client, auth, sessions, pipeline):
    headers = auth("admin")
    client.put("/api/v1/stage-map/p1/odd", json={"buying_stage": "interest"}, headers=headers)
    before = version(sessions)
    client.put("/api/v1/stage-map/p1/odd", json={"buying_stage": "interest"}, headers=headers)
    assert version(sessions) == before


def test_a_confirmed_mapping_survives_a_pipeline_reimport(client, auth, sessions, pipeline):
    client.put(
        "/api/v1/stage-map/p1/disc", json={"buying_stage": "awareness"}, headers=auth("admin")
    )
    insert_pipeline(sessions, pipeline)
    with sessions() as session:
        assert session.get(CrmStage, ("p1", "disc")).buying_stage == "awareness"


@pytest.mark.parametrize("path", ["/api/v1/stage-map/p1/nope", "/api/v1/stage-map/p9/disc"])
def test_an_unknown_stage_is_404(client, auth, pipeline, path):
    response = client.put(path, json={"buying_stage": "interest"}, headers=auth("admin"))
    assert response.status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"buying_stage": "negotiation"},
        {"buying_stage": 3},
        {"buying_stage": ""},
        {},
        {"buying_stage": "interest", "extra": 1},
        [{"buying_stage": "interest"}],
    ],
)
def test_bad_mappings_are_422(client, auth, pipeline, body):
    response = client.put("/api/v1/stage-map/p1/disc", json=body, headers=auth("admin"))
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "invalid_input"


def test_malformed_json_is_400_and_another_content_type_415(client, auth, pipeline):
    headers = {**auth("admin"), "Content-Type": "application/json"}
    assert client.put("/api/v1/stage-map/p1/disc", data="{", headers=headers).status_code == 400
    response = client.put(
        "/api/v1/stage-map/p1/disc",
        data="buying_stage=interest",
        headers={**auth("admin"), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415


def test_an_oversized_body_is_413(client, auth, pipeline):
    body = '{"buying_stage": "' + "x" * (6 * 1024 * 1024) + '"}'
    response = client.put(
        "/api/v1/stage-map/p1/disc",
        data=body,
        headers={**auth("admin"), "Content-Type": "application/json"},
    )
    assert response.status_code == 413


def test_roles(client, auth, pipeline):
    assert client.get("/api/v1/stage-map").status_code == 401
    bad = {"Authorization": "Bearer enb_not-a-token"}
    assert client.get("/api/v1/stage-map", headers=bad).status_code == 401
    assert client.get("/api/v1/stage-map", headers=auth("sales")).status_code == 403
    put = {"buying_stage": "interest"}
    assert client.put("/api/v1/stage-map/p1/disc", json=put).status_code == 401
    for role in ("sales", "marketing"):
        response = client.put("/api/v1/stage-map/p1/disc", json=put, headers=auth(role))
        assert response.status_code == 403


# ---------------------------------------------------------------- CLI


def test_stage_map_show_is_the_default_and_marks_stages_to_review(runner, pipeline):
    result = runner("stage-map")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    odd = next(line for line in lines if " odd " in line)
    prop = next(line for line in lines if " prop " in line)
    assert odd.startswith("!")
    assert not prop.startswith(("!", "?"))
    assert "need review" in result.stdout
    assert runner("stage-map", "show").stdout == result.stdout


def test_stage_map_set_confirms_a_mapping(runner, sessions, pipeline):
    result = runner("stage-map", "set", "p1", "odd", "evaluation")
    assert result.exit_code == 0
    assert "evaluation (confirmed)" in result.stdout
    result = runner("stage-map", "set", "p1", "demo", "none")
    assert result.exit_code == 0
    with sessions() as session:
        stages = {s.id: s for s in session.scalars(select(CrmStage))}
    assert stages["odd"].buying_stage == "evaluation"
    assert (stages["demo"].buying_stage, stages["demo"].mapping_source) == (None, "confirmed")


def test_stage_map_set_refuses_an_unknown_stage_and_a_bad_value(runner, pipeline):
    unknown = runner("stage-map", "set", "p1", "nope", "interest")
    assert unknown.exit_code == 1
    assert "no stage" in unknown.stderr
    assert runner("stage-map", "set", "p1", "disc", "negotiation").exit_code == 2


def test_stage_map_show_on_an_empty_database_says_what_to_do(runner):
    result = runner("stage-map")
    assert result.exit_code == 0
    assert "import pipelines" in result.stdout


def test_the_api_accepts_a_buying_stage_in_any_case_like_the_cli(client, auth, sessions, pipeline):
    response = client.put(
        "/api/v1/stage-map/p1/disc", json={"buying_stage": " Evaluation"}, headers=auth("admin")
    )
    assert response.status_code == 200
    assert response.get_json()["buying_stage"] == "evaluation"


def test_stage_map_show_names_pipelines_by_label_next_to_their_id(runner, sessions, pipeline):
    with sessions() as session:
        from enablement.db.models import Pipeline

        label = session.get(Pipeline, "p1").label
    result = runner("stage-map")
    header, first = result.stdout.splitlines()[:2]
    assert header.split()[:4] == ["pipeline", "pipeline", "id", "stage"]
    assert label in first and " p1 " in first
