"""What a new user's own files run into: optional fields left out, empty files, wrong headers."""

import json

import pytest
from sqlalchemy import func, select

from enablement.db.models import Asset, CrmStage, Deal, Pipeline, Share
from tests.asset_data import asset_record
from tests.crm_data import sample_deal, sample_pipeline, write_jsonl

AS_OF = "2026-12-31T00:00:00Z"


def count(sessions, model) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model))


def without_orders(pipeline: dict) -> dict:
    stages = [{k: v for k, v in s.items() if k != "display_order"} for s in pipeline["stages"]]
    return {**pipeline, "stages": stages}


def test_stages_without_display_order_keep_the_order_of_the_file(runner, sessions, tmp_path):
    path = write_jsonl(
        tmp_path / "p.jsonl",
        [without_orders(sample_pipeline("p1")), without_orders(sample_pipeline("p2"))],
    )
    result = runner("import", "pipelines", str(path))
    assert result.exit_code == 0, result.stderr
    with sessions() as session:
        orders = dict(
            session.execute(
                select(CrmStage.id, CrmStage.display_order).where(CrmStage.pipeline_id == "p1")
            ).all()
        )
        pipelines = dict(session.execute(select(Pipeline.id, Pipeline.display_order)).all())
    assert orders == {"disc": 0, "demo": 1, "prop": 2, "won": 3, "lost": 4}
    assert pipelines == {"p1": 0, "p2": 1}


def test_cycle_time_counts_advances_after_an_import_without_display_order(
    runner, sessions, tmp_path
):
    runner(
        "import",
        "pipelines",
        str(write_jsonl(tmp_path / "p.jsonl", [without_orders(sample_pipeline())])),
    )
    deals = [
        sample_deal(f"d{i}", history=((0, "disc"), (2 + i, "demo"), (9 + i, "prop")))
        for i in range(6)
    ]
    assert runner("import", "deals", str(write_jsonl(tmp_path / "d.jsonl", deals))).exit_code == 0
    result = runner("report", "cycle-time", "--format", "json", "--as-of", AS_OF)
    report = json.loads(result.stdout)
    disc = next(r for r in report["crm_stages"] if r["stage_id"] == "disc")
    assert disc["entered"] == 6 and disc["advanced"] == 6


def test_a_pipeline_that_would_make_reports_quietly_wrong_is_warned_about(runner, tmp_path):
    pipeline = sample_pipeline()
    pipeline["stages"][1]["display_order"] = 0  # same as the first stage
    for stage in pipeline["stages"]:
        stage["is_closed"] = stage["is_won"] = False
    result = runner("import", "pipelines", str(write_jsonl(tmp_path / "p.jsonl", [pipeline])))
    assert result.exit_code == 0, result.stderr
    assert "warning: line 1: two stages share a display_order" in result.stderr
    assert "warning: line 1: no stage has is_closed: true" in result.stderr


@pytest.mark.parametrize("kind", ["pipelines", "deals", "assets", "shares"])
@pytest.mark.parametrize("content", [b"", b"\n  \n", b"\xef\xbb\xbf"])
def test_an_empty_file_is_an_error_and_imports_nothing(runner, tmp_path, kind, content):
    path = tmp_path / f"{kind}.jsonl"
    path.write_bytes(content)
    result = runner("import", kind, str(path))
    assert result.exit_code == 1
    assert "the file is empty" in result.stderr


@pytest.mark.parametrize("kind", ["deals", "assets", "shares"])
def test_an_empty_csv_is_an_error(runner, tmp_path, kind):
    path = tmp_path / f"{kind}.csv"
    path.write_bytes(b"")
    result = runner("import", kind, str(path))
    assert result.exit_code == 1
    assert "the file is empty" in result.stderr


def test_a_missing_csv_column_is_one_header_error(runner, sessions, tmp_path):
    rows = ["title,url,kind"] + [f"Title {i},https://e.example/{i},article" for i in range(50)]
    path = tmp_path / "assets.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = runner("import", "assets", str(path), "--skip-invalid")
    assert result.exit_code == 1
    assert result.stderr.count("\n") <= 4, result.stderr
    assert "line 1:" in result.stderr and "missing required column(s) 'author'" in result.stderr
    assert count(sessions, Asset) == 0


def test_an_unknown_csv_column_is_one_header_error(runner, sessions, tmp_path):
    path = tmp_path / "shares.csv"
    path.write_text(
        "deal_id,asset_id,shared_at,colour\n" + "d1,a1,2026-01-05T09:00:00Z,red\n" * 3,
        encoding="utf-8",
    )
    result = runner("import", "shares", str(path))
    assert result.exit_code == 1
    assert "unknown column(s) 'colour'" in result.stderr
    assert result.stderr.count("line ") == 1


@pytest.mark.parametrize(("delimiter", "name"), [(";", "semicolons"), ("\t", "tabs")])
def test_a_csv_with_another_delimiter_says_wrong_delimiter(
    runner, sessions, tmp_path, delimiter, name
):
    header = delimiter.join(["title", "url", "kind", "author"])
    row = delimiter.join(["A title", "https://e.example/1", "article", "Ann"])
    path = tmp_path / "assets.csv"
    path.write_text(f"{header}\n{row}\n", encoding="utf-8")
    result = runner("import", "assets", str(path))
    assert result.exit_code == 1
    assert f"wrong delimiter: the header is separated by {name}" in result.stderr
    assert count(sessions, Asset) == 0


def test_a_deals_csv_missing_a_column_names_it_once(runner, sessions, tmp_path):
    runner("import", "pipelines", str(write_jsonl(tmp_path / "p.jsonl", [sample_pipeline()])))
    path = tmp_path / "deals.csv"
    path.write_text("id,name,pipeline,amount\nd1,Acme,p1,10\nd2,Beta,p1,20\n", encoding="utf-8")
    result = runner("import", "deals", str(path))
    assert result.exit_code == 1
    assert "missing required column(s) 'created_at';" in result.stderr
    assert count(sessions, Deal) == 0


def test_the_api_import_answers_a_header_error_once(client, auth, sessions):
    response = client.post(
        "/api/v1/assets/import",
        data="title;url;kind;author\nT;https://e.example/1;article;A\n",
        content_type="text/csv",
        headers=auth("marketing"),
    )
    assert response.status_code == 422
    assert "wrong delimiter" in response.get_json()["error"]["message"]
    empty = client.post(
        "/api/v1/assets/import", data="", content_type="text/csv", headers=auth("marketing")
    )
    assert empty.status_code == 422
    assert "empty" in empty.get_json()["error"]["message"]


def test_pipelines_export_round_trips_with_confirmed_mappings(runner, sessions, tmp_path):
    source = write_jsonl(tmp_path / "p.jsonl", [sample_pipeline("p1"), sample_pipeline("p2")])
    assert runner("import", "pipelines", str(source)).exit_code == 0
    assert runner("stage-map", "set", "p2", "disc", "none").exit_code == 0
    out = tmp_path / "export.jsonl"
    result = runner("export", "pipelines", "--output", str(out))
    assert result.exit_code == 0, result.stderr
    assert "exported 2 pipelines" in result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [p["id"] for p in lines] == ["p1", "p2"]
    p2 = {s["id"]: s for s in lines[1]["stages"]}
    assert p2["disc"]["buying_stage"] is None and p2["prop"]["buying_stage"] == "closing"
    assert "buying_stage" not in p2["demo"]  # a suggestion stays a suggestion
    assert runner("import", "pipelines", str(out)).exit_code == 0
    again = runner("import", "pipelines", str(out))
    assert "0 created, 0 updated, 2 unchanged" in again.stdout
    second = tmp_path / "second.jsonl"
    runner("export", "pipelines", "--output", str(second))
    assert second.read_text() == out.read_text()
    assert runner("export", "pipelines", "--format", "csv").exit_code == 2


def test_tokens_list_has_a_header_and_hides_revoked_tokens(runner):
    runner("tokens", "create", "--role", "sales", "--name", "Alex", "--owner-id", "o1")
    runner("tokens", "create", "--role", "admin", "--name", "Old admin")
    listed = runner("tokens", "list").stdout.splitlines()
    assert listed[0].split() == [
        "id",
        "role",
        "name",
        "owner_id",
        "prefix",
        "state",
        "created",
        "last_used",
    ]
    old_id = next(line.split()[0] for line in listed if "Old admin" in line)
    assert runner("tokens", "revoke", old_id).exit_code == 0
    active = runner("tokens", "list").stdout
    assert "Old admin" not in active and "Alex" in active
    everything = runner("tokens", "list", "--all").stdout
    assert "Old admin" in everything and "revoked" in everything
    created = everything.splitlines()[1].split()[6]
    assert created.endswith("Z") and "." not in created


def test_assets_filter_by_series_and_stage_in_any_case_and_show_views(
    client, auth, sessions, runner, tmp_path
):
    records = [
        asset_record(1, series="Earned, Not Published", series_order=1, stages=["closing"]),
        asset_record(2, series="Earned, Not Published", series_order=2),
        asset_record(3),
    ]
    path = tmp_path / "a.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    assert runner("import", "assets", str(path)).exit_code == 0
    headers = auth("sales")
    got = client.get("/api/v1/assets?series=earned,%20not%20published", headers=headers).get_json()
    assert sorted(a["id"] for a in got["items"]) == ["asset-1", "asset-2"]
    closing = client.get("/api/v1/assets?stage=Closing", headers=headers)
    assert closing.status_code == 200
    assert [a["id"] for a in closing.get_json()["items"]] == ["asset-1"]
    assert client.get("/api/v1/assets?kind=ARTICLE", headers=headers).get_json()["total"] == 3

    runner("import", "pipelines", str(write_jsonl(tmp_path / "p.jsonl", [sample_pipeline()])))
    runner("import", "deals", str(write_jsonl(tmp_path / "d.jsonl", [sample_deal("d1")])))
    shares = [
        {"deal_id": "d1", "asset_id": "asset-1", "shared_at": f"2026-01-0{i}T09:00:00Z"}
        for i in (5, 6)
    ]
    assert runner("import", "shares", str(write_jsonl(tmp_path / "s.jsonl", shares))).exit_code == 0
    with sessions() as session:
        share_ids = session.scalars(select(Share.id)).all()
    from datetime import UTC, datetime

    from enablement.db.models import LinkView

    with sessions.begin() as session:
        for share_id in share_ids + share_ids[:1]:
            session.add(LinkView(share_id=share_id, viewed_at=datetime(2026, 1, 7, tzinfo=UTC)))
    one = client.get("/api/v1/assets/asset-1", headers=headers).get_json()
    assert (one["share_count"], one["view_count"]) == (2, 3)
    listed = {a["id"]: a for a in client.get("/api/v1/assets", headers=headers).get_json()["items"]}
    assert (listed["asset-1"]["share_count"], listed["asset-1"]["view_count"]) == (2, 3)
    assert (listed["asset-3"]["share_count"], listed["asset-3"]["view_count"]) == (0, 0)


@pytest.mark.parametrize(
    "args",
    [
        ["report", "effectiveness", "--format", "html"],
        ["report", "coverage", "--stage", "closing"],
        ["report", "effectiveness", "--verdict", "great"],
        ["export", "pipelines", "--format", "csv"],
        ["tokens", "revoke", "abc"],
        ["tokens", "list", "--bogus"],
        ["stage-map", "set", "p1", "disc", "onboarding"],
        ["serve", "--port", "0"],
        ["demo", "--deals", "0"],
        ["no-such-command"],
    ],
)
def test_bad_usage_exits_2_everywhere(runner, args):
    result = runner(*args)
    assert result.exit_code == 2, (args, result.output)


def test_importing_pipelines_from_csv_is_bad_usage(runner, tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("id,label\np1,Sales\n")
    assert runner("import", "pipelines", str(path)).exit_code == 2


@pytest.mark.parametrize(
    ("host", "given", "expected"),
    [
        ("127.0.0.1", False, "http://127.0.0.1:8123"),
        ("0.0.0.0", False, "http://127.0.0.1:8123"),  # noqa: S104 (an address to serve on)
        ("::1", False, "http://[::1]:8123"),
        ("127.0.0.1", True, "http://testserver"),
    ],
)
def test_trackable_links_follow_the_address_served(
    client, auth, container, sessions, host, given, expected
):
    from dataclasses import replace

    from enablement.cli.admin import use_served_address
    from tests.crm_data import insert_asset, insert_deals, insert_pipeline

    container.settings = replace(container.settings, public_base_url_set=given)
    use_served_address(container, host, 8123)
    insert_pipeline(sessions)
    insert_deals(sessions, sample_deal("d1"))
    insert_asset(sessions, "a1")
    response = client.post(
        "/api/v1/deals/d1/shares", json={"asset_id": "a1"}, headers=auth("sales")
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["link"].startswith(f"{expected}/l/")
