"""`enablement import pipelines|deals|shares` and `enablement export deals|shares` on both engines."""

import json

from sqlalchemy import func, select

from enablement.db.models import CrmStage, Deal, Share, StageChange
from enablement.domain.links import link_token, token_hash
from enablement.files.crm_readers import read_deals
from enablement.services.crm_imports import import_deals
from tests.crm_data import (
    insert_asset,
    insert_deals,
    insert_pipeline,
    sample_deal,
    sample_pipeline,
    write_jsonl,
)
from tests.db.report_inputs import report_inputs


def count(sessions, model) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model))


def version(sessions) -> tuple:
    """What cached reports compare: unchanged means none is recomputed."""
    return report_inputs(sessions)


# ---------------------------------------------------------------- pipelines


def test_importing_pipelines_stores_stages_with_suggested_and_confirmed_mappings(
    runner, sessions, tmp_path
):
    path = write_jsonl(tmp_path / "p.jsonl", [sample_pipeline()])
    result = runner("import", "pipelines", str(path))
    assert result.exit_code == 0, result.stderr
    assert "1 created" in result.stdout
    with sessions() as session:
        stages = {s.id: s for s in session.scalars(select(CrmStage))}
    assert stages["prop"].mapping_source == "confirmed"
    assert stages["prop"].buying_stage == "closing"
    assert stages["disc"].mapping_source == "suggested"
    assert stages["won"].buying_stage is None


def test_reimporting_pipelines_changes_nothing(runner, sessions, tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [sample_pipeline()])
    runner("import", "pipelines", str(path))
    before = version(sessions)
    result = runner("import", "pipelines", str(path))
    assert result.exit_code == 0
    assert "0 created, 0 updated, 1 unchanged" in result.stdout
    assert version(sessions) == before


def test_invalid_pipelines_are_listed_with_line_numbers_and_nothing_is_imported(
    runner, sessions, tmp_path
):
    bad_stage = sample_pipeline("p2")
    bad_stage["stages"][0]["buying_stage"] = "negotiation"
    path = write_jsonl(
        tmp_path / "p.jsonl",
        [sample_pipeline(), bad_stage, "{not json", sample_pipeline(), '["a list"]'],
    )
    result = runner("import", "pipelines", str(path))
    assert result.exit_code == 1
    assert 'line 2, field "stages[1].buying_stage"' in result.stderr
    assert "line 3:" in result.stderr
    assert 'line 4, field "id": duplicate of line 1' in result.stderr
    assert "line 5:" in result.stderr
    assert "nothing imported" in result.stderr
    assert count(sessions, CrmStage) == 0


def test_pipelines_from_csv_are_refused(runner, tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("id,label\np1,Sales\n")
    result = runner("import", "pipelines", str(path))
    assert result.exit_code == 2  # bad usage
    assert "JSON Lines" in result.stderr


# ---------------------------------------------------------------- deals


def test_importing_deals_stores_the_exact_history(runner, sessions, tmp_path):
    insert_pipeline(sessions)
    history = ((0, "disc"), (2, "demo"), (4, "disc"), (9, "won"))
    path = write_jsonl(tmp_path / "d.jsonl", [sample_deal("d1", history), sample_deal("d2")])
    result = runner("import", "deals", str(path))
    assert result.exit_code == 0, result.stderr
    assert "2 created" in result.stdout
    with sessions() as session:
        deal = session.get(Deal, "d1")
        assert deal.current_stage_id == "won"
        assert deal.company == "Acme Corp"
        stages = session.scalars(
            select(StageChange.stage_id)
            .where(StageChange.deal_id == "d1")
            .order_by(StageChange.entered_at)
        ).all()
    assert stages == ["disc", "demo", "disc", "won"]


def test_reimporting_deals_changes_nothing(runner, sessions, tmp_path):
    insert_pipeline(sessions)
    path = write_jsonl(tmp_path / "d.jsonl", [sample_deal("d1"), sample_deal("d2")])
    runner("import", "deals", str(path))
    before = version(sessions)
    result = runner("import", "deals", str(path))
    assert result.exit_code == 0
    assert "0 created, 0 updated, 2 unchanged" in result.stdout
    assert version(sessions) == before


def test_invalid_deals_are_all_listed_and_nothing_is_imported(runner, sessions, tmp_path):
    insert_pipeline(sessions)
    naive = sample_deal("d2", created_at="2026-01-05T09:00:00")
    unknown_stage = sample_deal("d3", history=((0, "nope"),))
    no_history = sample_deal("d4", history=())  # valid: a deal whose stage is not known
    negative = sample_deal("d5", amount=-1)
    infinite = '{"id": "d6", "amount": Infinity}'
    unknown_pipeline = sample_deal("d7", pipeline="p9")
    unknown_field = sample_deal("d8", colour="red")
    duplicate = sample_deal("d1")
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [
            sample_deal("d1"),
            naive,
            unknown_stage,
            no_history,
            negative,
            infinite,
            unknown_pipeline,
            unknown_field,
            duplicate,
        ],
    )
    result = runner("import", "deals", str(path))
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("line ")]
    by_line = {}
    for line in lines:
        by_line.setdefault(int(line.split(",")[0].split(":")[0].split()[1]), []).append(line)
    assert sorted(by_line) == [2, 3, 5, 6, 7, 8, 9]
    assert 'field "created_at": the timestamp has no zone' in by_line[2][0]
    assert 'field "stage_history[1].stage": unknown stage' in by_line[3][0]
    assert 'field "amount"' in by_line[5][0]
    assert "unknown pipeline" in by_line[7][0]
    assert 'field "colour"' in by_line[8][0]
    assert "duplicate of line 1" in by_line[9][0]
    assert not any("{" in line for line in lines), "messages are sentences, never dicts"
    assert count(sessions, Deal) == 0


def test_skip_invalid_imports_the_valid_deals_and_still_lists_the_rest(runner, sessions, tmp_path):
    insert_pipeline(sessions)
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [sample_deal("d1"), sample_deal("d2", amount="lots"), sample_deal("d3")],
    )
    result = runner("import", "deals", str(path), "--skip-invalid")
    assert result.exit_code == 0
    assert 'line 2, field "amount": an amount must be plain digits' in result.stderr
    assert "2 created" in result.stdout and "1 skipped" in result.stdout
    with sessions() as session:
        assert set(session.scalars(select(Deal.id))) == {"d1", "d3"}


def test_hostile_strings_are_stored_as_plain_data(runner, sessions, tmp_path):
    insert_pipeline(sessions)
    hostile = "Robert'); DROP TABLE deals;-- <script>alert(1)</script> \u202e"
    path = write_jsonl(tmp_path / "d.jsonl", [sample_deal("d1", name=hostile, company=hostile)])
    assert runner("import", "deals", str(path)).exit_code == 0
    with sessions() as session:
        assert session.get(Deal, "d1").name == hostile


def test_an_overlong_id_is_an_error(runner, sessions, tmp_path):
    insert_pipeline(sessions)
    path = write_jsonl(tmp_path / "d.jsonl", [sample_deal("x" * 65)])
    result = runner("import", "deals", str(path))
    assert result.exit_code == 1
    assert 'line 1, field "id": Length must be between 1 and 64.' in result.stderr


def test_deals_are_written_in_batches_within_one_import(container, sessions, tmp_path):
    insert_pipeline(sessions)
    deals = [sample_deal(f"d{i:02d}") for i in range(10)]
    path = write_jsonl(tmp_path / "d.jsonl", deals)
    progress = []
    with path.open("rb") as stream:
        result = import_deals(
            container.sessions,
            container.settings,
            read_deals(stream, "jsonl"),
            False,
            on_progress=lambda *p: progress.append(p),
            batch=3,
        )
    assert result.created == 10 and not result.errors
    assert progress == [(3, 10), (6, 10), (9, 10), (10, 10)]
    assert count(sessions, StageChange) == 20


def test_export_deals_writes_what_import_reads_and_round_trips(runner, sessions, tmp_path):
    insert_pipeline(sessions)
    first = sample_deal("d1", history=((0, "disc"), (2, "demo"), (5, "won")))
    first["closed_at"] = "2026-01-10T11:00:00+02:00"  # an offset: exported as UTC
    second = sample_deal("d2", amount=0, company=None, currency=None, deleted=True)
    second.pop("company")
    second.pop("currency")
    path = write_jsonl(tmp_path / "d.jsonl", [second, first])
    assert runner("import", "deals", str(path)).exit_code == 0
    out = tmp_path / "out.jsonl"
    result = runner("export", "deals", "--output", str(out))
    assert result.exit_code == 0
    assert "exported 2 deals" in result.stderr
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    expected_first = {**first, "closed_at": "2026-01-10T09:00:00Z"}
    deleted_at = exported[1].pop("deleted_at")
    assert deleted_at.endswith("Z"), "a deleted deal carries when it was deleted"
    assert exported == [expected_first, {**second, "amount": 0.0}]
    before = version(sessions)
    again = runner("import", "deals", str(out))
    assert "0 created, 0 updated, 2 unchanged" in again.stdout
    assert version(sessions) == before
    out2 = tmp_path / "out2.jsonl"
    runner("export", "deals", "--output", str(out2))
    assert out2.read_text() == out.read_text()


def test_deals_round_trip_through_csv(runner, sessions, tmp_path):
    insert_pipeline(sessions)
    insert_deals(sessions, sample_deal("d1"), sample_deal("d2", personas=["cfo", "cto"]))
    out = tmp_path / "deals.csv"
    assert runner("export", "deals", "--format", "csv", "--output", str(out)).exit_code == 0
    assert out.read_text().splitlines()[0].startswith("id,name,company,pipeline")
    before = version(sessions)
    result = runner("import", "deals", str(out))
    assert result.exit_code == 0, result.stderr
    assert "2 unchanged" in result.stdout
    assert version(sessions) == before


def test_a_broken_history_cell_in_csv_is_an_error_with_its_line(runner, sessions, tmp_path):
    insert_pipeline(sessions)
    path = tmp_path / "d.csv"
    path.write_text(
        "id,name,pipeline,amount,created_at,stage_history\n"
        'd1,Acme,p1,10,2026-01-05T09:00:00Z,"[{""stage"": ""disc"", ""entered_at"": ""2026-01-05T09:00:00Z""}]"\n'
        "d2,Beta,p1,10,2026-01-05T09:00:00Z,[oops\n"
    )
    result = runner("import", "deals", str(path))
    assert result.exit_code == 1
    assert 'line 3, column "stage_history": not valid JSON' in result.stderr
    assert count(sessions, Deal) == 0


def test_a_missing_file_and_an_unknown_kind_are_usage_errors(runner, tmp_path):
    assert runner("import", "deals", str(tmp_path / "nope.jsonl")).exit_code == 2
    assert runner("import", "contacts", str(tmp_path / "nope.jsonl")).exit_code == 2


def test_a_file_that_is_not_utf8_is_an_error(runner, sessions, tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"id": "\xff\xfe"}\n')
    result = runner("import", "deals", str(path))
    assert result.exit_code == 1
    assert "UTF-8" in result.stderr


# ---------------------------------------------------------------- shares


def _share(deal_id="d1", asset_id="a1", at="2026-02-01T10:00:00Z", **extra):
    return {"deal_id": deal_id, "asset_id": asset_id, "shared_at": at, **extra}


def _with_deals_and_assets(sessions):
    insert_pipeline(sessions)
    insert_deals(sessions, sample_deal("d1"), sample_deal("d2"))
    insert_asset(sessions, "a1")
    insert_asset(sessions, "a2", status="retired")


def test_importing_shares_stores_them_with_a_link_token_hash(runner, sessions, tmp_path, settings):
    _with_deals_and_assets(sessions)
    path = write_jsonl(
        tmp_path / "s.jsonl",
        [_share(), _share("d2", "a2", shared_by="o1", channel="email")],
    )
    result = runner("import", "shares", str(path))
    assert result.exit_code == 0, result.stderr
    assert "2 created" in result.stdout
    with sessions() as session:
        shares = session.scalars(select(Share).order_by(Share.id)).all()
    assert shares[0].link_token_hash == token_hash(link_token(settings.secret_key, shares[0].id))
    assert shares[1].channel == "email"
    assert shares[0].source == "import"


def test_reimporting_shares_changes_nothing(runner, sessions, tmp_path):
    _with_deals_and_assets(sessions)
    path = write_jsonl(tmp_path / "s.jsonl", [_share(), _share(at="2026-02-01T13:00:00+02:00")])
    runner("import", "shares", str(path))
    before = version(sessions)
    result = runner("import", "shares", str(path))
    assert "0 created, 0 updated, 2 unchanged" in result.stdout
    assert version(sessions) == before
    assert count(sessions, Share) == 2


def test_invalid_shares_are_listed_and_nothing_is_imported(runner, sessions, tmp_path):
    _with_deals_and_assets(sessions)
    path = write_jsonl(
        tmp_path / "s.jsonl",
        [
            _share(),
            _share("d9"),
            _share(asset_id="a9"),
            _share(at="2026-02-01T10:00:00"),
            _share(at="2026-02-01T11:00:00+01:00"),  # the same instant as line 1
            _share(extra_field=1),
        ],
    )
    result = runner("import", "shares", str(path))
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("line ")]
    assert [line.split(",")[0] for line in lines] == [f"line {n}" for n in range(2, 7)]
    assert "unknown deal" in lines[0]
    assert "unknown asset" in lines[1]
    assert "duplicate of line 1" in lines[3]
    assert count(sessions, Share) == 0


def test_shares_round_trip_through_csv(runner, sessions, tmp_path):
    _with_deals_and_assets(sessions)
    path = write_jsonl(tmp_path / "s.jsonl", [_share(shared_by="o1; x", channel="email")])
    runner("import", "shares", str(path))
    out = tmp_path / "s.csv"
    assert runner("export", "shares", "--format", "csv", "--output", str(out)).exit_code == 0
    assert out.read_text().splitlines() == [
        "deal_id,asset_id,shared_at,shared_by,channel",
        "d1,a1,2026-02-01T10:00:00Z,o1; x,email",
    ]
    result = runner("import", "shares", str(out))
    assert "1 unchanged" in result.stdout
    jsonl = tmp_path / "s2.jsonl"
    runner("export", "shares", "--output", str(jsonl))
    assert json.loads(jsonl.read_text()) == _share(shared_by="o1; x", channel="email")


def test_an_export_to_standard_output_prints_records(runner, sessions):
    _with_deals_and_assets(sessions)
    result = runner("export", "deals")
    assert result.exit_code == 0
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["d1", "d2"]


def test_bad_history_entries_are_reported_per_entry(runner, sessions, tmp_path):
    insert_pipeline(sessions)
    deal = sample_deal("d1")
    deal["stage_history"] = [
        {"stage": "disc", "entered_at": "2026-01-05T09:00:00"},
        {"stage": "demo", "entered_at": "2026-01-06T09:00:00Z", "note": "x"},
        "disc",
        {"entered_at": "2026-01-07 09:00"},
    ]
    path = write_jsonl(tmp_path / "d.jsonl", [deal])
    result = runner("import", "deals", str(path))
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert 'line 1, field "stage_history[1].entered_at": the timestamp has no zone' in lines[0]
    assert 'line 1, field "stage_history[2].note": unknown field' in lines
    assert any(
        line.startswith('line 1, field "stage_history[3]": must be an object') for line in lines
    )
    assert 'line 1, field "stage_history[4].stage": missing' in lines
    assert any('"stage_history[4].entered_at"' in line for line in lines)
    assert count(sessions, Deal) == 0


def test_check_of_every_kind_reports_and_writes_nothing(runner, sessions, tmp_path):
    from enablement.db.models import Asset, Pipeline
    from tests.asset_data import asset_record

    path = write_jsonl(tmp_path / "p.jsonl", [sample_pipeline()])
    result = runner("import", "pipelines", str(path), "--check")
    assert result.exit_code == 0, result.stderr
    assert "pipelines: check only, nothing written: 1 would be created" in result.stdout
    assert count(sessions, Pipeline) == 0
    assets = tmp_path / "a.jsonl"
    assets.write_text(json.dumps(asset_record(1)) + "\n")
    result = runner("import", "assets", str(assets), "--check")
    assert "assets: check only, nothing written: 1 would be created" in result.stdout
    assert count(sessions, Asset) == 0
