"""POST /api/v1/assets/import: JSON arrays, uploaded JSONL/CSV files, raw bodies; same rules as the CLI."""

import io
import json

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from enablement.db.models import Asset
from tests.asset_data import asset_record, jsonl

URL = "/api/v1/assets/import"
CSV = (
    "id,title,url,kind,author,topics,stages,series_order\n"
    "c1,Roadmap for 2026,https://example.com/roadmap,roadmap,Ada,ai adoption;security,"
    "evaluation;closing,2\n"
    "c2,Vendor scorecard,https://example.com/scorecard,framework,Ada,,evaluation,\n"
)


def count_assets(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Asset))


def post_json(client, auth, items, query=""):
    return client.post(f"{URL}{query}", json=items, headers=auth("marketing"))


def test_a_json_array_imports_and_answers_counts(client, auth, sessions):
    response = post_json(client, auth, [asset_record(1), asset_record(2)])
    assert response.status_code == 200
    assert response.get_json() == {
        "kind": "assets",
        "check": False,
        "created": 2,
        "updated": 0,
        "unchanged": 0,
        "skipped": 0,
        "errors": [],
        "warnings": [],
    }
    assert count_assets(sessions) == 2


def test_reimporting_the_same_array_changes_nothing(client, auth):
    items = [asset_record(1), asset_record(2, id=None)]
    post_json(client, auth, items)
    before = client.get("/api/v1/assets", headers=auth("sales")).get_json()
    answer = post_json(client, auth, items).get_json()
    assert (answer["created"], answer["updated"], answer["unchanged"]) == (0, 0, 2)
    assert client.get("/api/v1/assets", headers=auth("sales")).get_json() == before


def test_a_changed_record_is_updated_in_place(client, auth):
    post_json(client, auth, [asset_record(1)])
    answer = post_json(client, auth, [asset_record(1, title="A new title")]).get_json()
    assert answer["updated"] == 1
    asset = client.get("/api/v1/assets/asset-1", headers=auth("sales")).get_json()
    assert asset["title"] == "A new title"


def test_invalid_records_reject_the_whole_array_with_every_error_by_position(
    client, auth, sessions
):
    items = [
        asset_record(1),
        asset_record(2, url="javascript:alert(1)"),
        asset_record(3, published_at="2025-01-01T00:00:00"),
        "not an object",
    ]
    response = post_json(client, auth, items)
    assert response.status_code == 422
    errors = response.get_json()["error"]["details"]["errors"]
    assert [e["line"] for e in errors] == [2, 3, 4]
    assert "url" in errors[0]["errors"] and "published_at" in errors[1]["errors"]
    assert count_assets(sessions) == 0


def test_skip_invalid_imports_the_valid_records_and_lists_the_rest(client, auth, sessions):
    items = [asset_record(1), asset_record(2, kind="tweet"), asset_record(3)]
    response = post_json(client, auth, items, "?skip_invalid=true")
    assert response.status_code == 200
    answer = response.get_json()
    assert (answer["created"], answer["skipped"]) == (2, 1)
    assert [e["line"] for e in answer["errors"]] == [2]
    assert count_assets(sessions) == 2


def test_duplicate_ids_in_one_array_are_errors_on_both_positions(client, auth, sessions):
    response = post_json(client, auth, [asset_record(1), asset_record(2), asset_record(1)])
    assert response.status_code == 422
    errors = response.get_json()["error"]["details"]["errors"]
    assert [e["line"] for e in errors] == [1, 3]
    assert "line(s) 3" in errors[0]["errors"]["id"][0]
    assert "line(s) 1" in errors[1]["errors"]["id"][0]
    assert count_assets(sessions) == 0


def test_two_idless_records_with_the_same_url_are_duplicates(client, auth):
    items = [
        asset_record(1, id=None, url="https://example.com/a"),
        asset_record(2, id=None, url="https://EXAMPLE.com/a/#intro"),
    ]
    response = post_json(client, auth, items)
    assert response.status_code == 422
    assert "same URL" in response.get_json()["error"]["details"]["errors"][0]["errors"]["id"][0]


def test_near_duplicates_in_an_import_are_warnings_not_errors(client, auth, sessions):
    post_json(client, auth, [asset_record(1, title="The CFO guide to vendor evaluation")])
    items = [
        asset_record(2, title="The CFO's guide to vendor evaluation"),
        asset_record(3, url="https://insights.example.com/notes/1?utm_campaign=x"),
    ]
    answer = post_json(client, auth, items).get_json()
    assert answer["created"] == 2
    pairs = {(w["asset_id"], w["of"], w["reason"]) for w in answer["warnings"]}
    assert pairs == {("asset-2", "asset-1", "similar_title"), ("asset-3", "asset-1", "same_url")}
    assert count_assets(sessions) == 3


def test_a_multipart_jsonl_upload_imports(client, auth, sessions):
    data = {"file": (io.BytesIO(jsonl([asset_record(1), asset_record(2)]).encode()), "a.jsonl")}
    response = client.post(
        URL, data=data, content_type="multipart/form-data", headers=auth("marketing")
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["created"] == 2


def test_a_multipart_csv_upload_splits_lists_on_semicolons(client, auth):
    data = {"file": (io.BytesIO(CSV.encode()), "assets.csv")}
    response = client.post(
        URL, data=data, content_type="multipart/form-data", headers=auth("marketing")
    )
    assert response.status_code == 200, response.get_json()
    asset = client.get("/api/v1/assets/c1", headers=auth("sales")).get_json()
    assert asset["topics"] == ["ai adoption", "security"]
    assert asset["stages"] == ["evaluation", "closing"]
    assert asset["series_order"] == 2


def test_raw_ndjson_and_csv_bodies_import(client, auth, sessions):
    ndjson = client.post(
        URL,
        data=jsonl([asset_record(1)]),
        content_type="application/x-ndjson",
        headers=auth("marketing"),
    )
    csv = client.post(URL, data=CSV, content_type="text/csv", headers=auth("marketing"))
    assert (ndjson.status_code, csv.status_code) == (200, 200)
    assert count_assets(sessions) == 3


def test_file_errors_carry_file_line_numbers(client, auth, sessions):
    text = jsonl([asset_record(1)]) + "\n{not json\n" + jsonl([asset_record(3, stages=["x"])])
    response = client.post(
        URL, data=text, content_type="application/x-ndjson", headers=auth("marketing")
    )
    assert response.status_code == 422
    errors = response.get_json()["error"]["details"]["errors"]
    assert [e["line"] for e in errors] == [3, 4]
    assert count_assets(sessions) == 0


def test_csv_with_an_unknown_column_is_rejected_once_for_the_header(client, auth, sessions):
    text = "id,title,url,kind,author,colour\nx,T,https://e.com,article,A,red\n" * 1
    text += "y,U,https://e.com/2,article,A,blue\n"
    response = client.post(URL, data=text, content_type="text/csv", headers=auth("marketing"))
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["details"] == {"line": 1, "missing": [], "unknown": ["colour"]}
    assert error["message"].startswith("line 1: the header has unknown column(s) 'colour'")
    assert count_assets(sessions) == 0


def test_multipart_without_a_file_field_answers_400(client, auth):
    response = client.post(
        URL, data={"other": "x"}, content_type="multipart/form-data", headers=auth("marketing")
    )
    assert response.status_code == 400


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", None])
def test_other_content_types_answer_415(client, auth, sessions, content_type):
    response = client.post(
        URL, data=jsonl([asset_record()]), content_type=content_type, headers=auth("marketing")
    )
    assert response.status_code == 415
    assert count_assets(sessions) == 0


def test_malformed_json_answers_400(client, auth):
    response = client.post(
        URL, data="[{", content_type="application/json", headers=auth("marketing")
    )
    assert response.status_code == 400


def test_a_json_object_instead_of_an_array_answers_422(client, auth):
    assert post_json(client, auth, asset_record()).status_code == 422


def test_a_file_that_is_not_utf8_answers_400(client, auth, sessions):
    response = client.post(
        URL,
        data=b'{"title": "caf\xe9"}\n',
        content_type="application/x-ndjson",
        headers=auth("marketing"),
    )
    assert response.status_code == 400
    assert count_assets(sessions) == 0


@pytest.mark.parametrize("mode", ["raw", "multipart", "json"])
def test_an_oversized_import_answers_413_and_imports_nothing(
    client, auth, sessions, settings, mode
):
    filler = "x" * 4000
    records = [asset_record(i, summary=None, body=filler) for i in range(1400)]
    text = jsonl(records)
    assert len(text) > settings.max_body_bytes
    if mode == "raw":
        response = client.post(
            URL, data=text, content_type="application/x-ndjson", headers=auth("marketing")
        )
    elif mode == "multipart":
        # Encoded in memory: the test client's own temporary file would outlive a 413.
        boundary, body = encode_multipart(
            MultiDict({"file": FileStorage(io.BytesIO(text.encode()), "big.jsonl")})
        )
        response = client.post(
            URL,
            data=body,
            content_type=f"multipart/form-data; boundary={boundary}",
            headers=auth("marketing"),
        )
    else:
        response = client.post(
            URL,
            data=json.dumps(records),
            content_type="application/json",
            headers=auth("marketing"),
        )
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"
    assert count_assets(sessions) == 0


def test_sales_cannot_import_and_a_missing_token_is_401(client, auth, sessions):
    assert post_json(client, auth, [asset_record()], "").status_code == 200
    sales = client.post(URL, json=[asset_record(2)], headers=auth("sales"))
    anonymous = client.post(URL, json=[asset_record(3)])
    assert (sales.status_code, anonymous.status_code) == (403, 401)
    assert count_assets(sessions) == 1


def test_hostile_strings_import_as_data(client, auth):
    title = '"><script>alert(1)</script>'
    post_json(client, auth, [asset_record(1, title=title, author="x'; DROP TABLE assets;--")])
    asset = client.get("/api/v1/assets/asset-1", headers=auth("sales")).get_json()
    assert asset["title"] == title and asset["author"] == "x'; DROP TABLE assets;--"


def test_imported_assets_get_pitch_scores_retired_at_and_tag_filters(client, auth, container):
    container.settings = container.settings.with_overrides(product_terms=("Acme Cloud",))
    items = [
        asset_record(1, title="Acme Cloud pricing", summary="Acme Cloud features. Buy now."),
        asset_record(2, status="retired", personas=["Head of IT"]),
    ]
    assert post_json(client, auth, items).status_code == 200
    pitch = client.get("/api/v1/assets/asset-1", headers=auth("sales")).get_json()
    retired = client.get("/api/v1/assets/asset-2", headers=auth("sales")).get_json()
    assert pitch["pitch_flag"] is True and pitch["pitch_score"] >= 0.35
    assert retired["retired_at"] is not None and retired["live"] is False
    found = client.get(
        "/api/v1/assets?persona=HEAD%20OF%20IT&status=retired", headers=auth("sales")
    ).get_json()
    assert [a["id"] for a in found["items"]] == ["asset-2"]
