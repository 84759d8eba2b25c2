"""`enablement import assets` and `enablement export assets`: exit codes, line numbers, round trips."""

import json

import pytest
from sqlalchemy import delete, func, select

from enablement.db.models import Asset, AssetTag
from enablement.domain.assets import FIELDS
from enablement.errors import Conflict
from enablement.services.assets import write_transaction
from tests.asset_data import asset_record, jsonl


def count_assets(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Asset))


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_import_reports_counts_and_exits_0(runner, tmp_path, sessions):
    path = write(tmp_path, "a.jsonl", jsonl([asset_record(1), asset_record(2)]))
    result = runner("import", "assets", path)
    assert result.exit_code == 0, result.stderr
    assert "assets: 2 created, 0 updated, 0 unchanged, 0 skipped" in result.stdout
    assert count_assets(sessions) == 2


def test_reimporting_an_idless_file_changes_nothing(runner, tmp_path, sessions):
    records = [asset_record(i, id=None) for i in range(3)]
    path = write(tmp_path, "a.jsonl", jsonl(records))
    runner("import", "assets", path)
    with sessions() as session:
        first = sorted(session.scalars(select(Asset.id)))
        version = session.scalar(select(func.max(Asset.updated_at)))
    result = runner("import", "assets", path)
    assert result.exit_code == 0
    assert "0 created, 0 updated, 3 unchanged" in result.stdout
    with sessions() as session:
        assert sorted(session.scalars(select(Asset.id))) == first
        assert session.scalar(select(func.max(Asset.updated_at))) == version


def test_an_invalid_file_exits_1_lists_every_line_and_imports_nothing(runner, tmp_path, sessions):
    text = (
        jsonl([asset_record(1)])
        + "not json\n"
        + jsonl([asset_record(3, url="ftp://x.example.com/a", published_at="2025-01-01T00:00")])
        + jsonl([asset_record(1)])
    )
    result = runner("import", "assets", write(tmp_path, "bad.jsonl", text))
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("line ")]
    by_line: dict[str, list[str]] = {}
    for line in lines:
        by_line.setdefault(line.split(",")[0].split(":")[0], []).append(line)
    assert list(by_line) == ["line 1", "line 2", "line 3", "line 4"]
    assert {line.split(": ")[0] for line in by_line["line 3"]} == {
        'line 3, field "published_at"',
        'line 3, field "url"',
    }, "every problem of a line, each on its own line"
    assert "duplicate id" in by_line["line 1"][0] and "duplicate id" in by_line["line 4"][0]
    assert "nothing imported" in result.stderr
    assert count_assets(sessions) == 0


def test_skip_invalid_imports_the_valid_records_and_still_lists_the_rest(
    runner, tmp_path, sessions
):
    text = jsonl([asset_record(1), asset_record(2, kind="tweet"), asset_record(3)])
    result = runner("import", "assets", write(tmp_path, "a.jsonl", text), "--skip-invalid")
    assert result.exit_code == 0
    assert 'line 2, field "kind":' in result.stderr
    assert "2 created, 0 updated, 0 unchanged, 1 skipped" in result.stdout
    assert count_assets(sessions) == 2


def test_near_duplicates_are_warned_on_stderr_and_imported(runner, tmp_path, sessions):
    text = jsonl([asset_record(1), asset_record(2, url="https://insights.example.com/notes/1/")])
    result = runner("import", "assets", write(tmp_path, "a.jsonl", text))
    assert result.exit_code == 0
    assert "possible duplicate" in result.stderr and "has the same URL as" in result.stderr
    assert "{" not in result.stderr  # words, not a dict
    assert count_assets(sessions) == 2


def test_bad_usage_exits_2(runner, tmp_path):
    path = write(tmp_path, "a.jsonl", jsonl([asset_record()]))
    assert runner("import", "widgets", path).exit_code == 2
    assert runner("import", "assets", str(tmp_path / "missing.jsonl")).exit_code == 2
    assert runner("import", "assets").exit_code == 2
    assert runner("export", "assets", "--format", "xml").exit_code == 2


def test_a_file_that_is_not_utf8_exits_1(runner, tmp_path, sessions):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"title": "caf\xe9"}\n')
    result = runner("import", "assets", str(path))
    assert result.exit_code == 1
    assert "not UTF-8" in result.stderr
    assert count_assets(sessions) == 0


def test_csv_export_has_the_documented_columns(runner, tmp_path):
    runner("import", "assets", write(tmp_path, "a.jsonl", jsonl([asset_record(1)])))
    result = runner("export", "assets", "--format", "csv")
    assert result.exit_code == 0
    header = result.stdout.splitlines()[0]
    assert header.split(",") == [*FIELDS, "retired_at"]
    assert list(FIELDS)[:15] == (
        "id,title,url,kind,author,summary,topics,industries,personas,stages,"
        "published_at,review_by,status,series,series_order"
    ).split(",")


def varied_records():
    return [
        asset_record(1, body="Full text.\nSecond line, with a comma."),
        asset_record(
            2,
            id=None,
            title='Quotes "and" commas, <b>tags</b>',
            personas=["CFO", "Head of IT"],
            stages=["awareness", "closing"],
            review_by="2030-01-31",
            series="Season 1",
            series_order=2,
            status="draft",
            published_at="2025-06-01T11:30:00.250000+02:00",
        ),
        asset_record(3, summary=None, topics=[], industries=[], personas=[], stages=[]),
        asset_record(4, status="retired"),
    ]


def export(runner, tmp_path, fmt, name):
    out = tmp_path / name
    result = runner("export", "assets", "--format", fmt, "--output", str(out))
    assert result.exit_code == 0, result.stderr
    assert "exported 4 assets" in result.stderr
    return out.read_text(encoding="utf-8")


def wipe(sessions):
    with sessions.begin() as session:
        session.execute(delete(AssetTag))
        session.execute(delete(Asset))


def test_jsonl_and_csv_exports_round_trip_exactly(runner, tmp_path, sessions):
    runner("import", "assets", write(tmp_path, "in.jsonl", jsonl(varied_records())))
    first_jsonl = export(runner, tmp_path, "jsonl", "1.jsonl")
    first_csv = export(runner, tmp_path, "csv", "1.csv")
    # Importing the export into the same database changes nothing.
    same = runner("import", "assets", str(tmp_path / "1.csv"))
    assert "0 created, 0 updated, 4 unchanged" in same.stdout
    # Into an empty one, each format rebuilds the same library.
    for source in ("1.csv", "1.jsonl"):
        wipe(sessions)
        result = runner("import", "assets", str(tmp_path / source))
        assert "4 created" in result.stdout, result.stderr
        assert export(runner, tmp_path, "jsonl", "2.jsonl") == first_jsonl
        assert export(runner, tmp_path, "csv", "2.csv") == first_csv
    record = json.loads(first_jsonl.splitlines()[0])
    assert record["body"] == "Full text.\nSecond line, with a comma."
    draft = next(json.loads(line) for line in first_jsonl.splitlines() if "Season 1" in line)
    assert draft["published_at"] == "2025-06-01T09:30:00.250000Z"
    assert draft["status"] == "draft" and draft["series_order"] == 2


def test_export_to_stdout_writes_jsonl_by_default(runner, tmp_path):
    runner("import", "assets", write(tmp_path, "a.jsonl", jsonl([asset_record(1)])))
    result = runner("export", "assets")
    assert result.exit_code == 0
    (line,) = result.stdout.splitlines()
    assert json.loads(line)["id"] == "asset-1"


def test_the_tag_index_follows_imports(runner, tmp_path, sessions):
    runner("import", "assets", write(tmp_path, "a.jsonl", jsonl([asset_record(1)])))
    changed = asset_record(1, personas=["CTO"], stages=["closing"], topics=[], industries=[])
    runner("import", "assets", write(tmp_path, "b.jsonl", jsonl([changed])))
    with sessions() as session:
        tags = {(t.dimension, t.value) for t in session.scalars(select(AssetTag))}
    assert tags == {("persona", "cto"), ("stage", "closing")}


def test_a_concurrent_insert_of_the_same_id_becomes_a_conflict(sessions):
    def asset():
        return Asset(id="same", title="t", url="https://e.com", kind="article", author="a")

    with sessions.begin() as session:
        session.add(asset())
    with pytest.raises(Conflict):
        with write_transaction(sessions) as session:
            session.add(asset())
    assert count_assets(sessions) == 1


def test_an_import_names_both_pieces_of_a_possible_duplicate(runner, tmp_path):
    first = asset_record(1, title="Why pipelines stall", url="https://example.com/stall")
    second = asset_record(2, title="Pipelines: the stall", url="https://www.example.com/stall/")
    result = runner("import", "assets", write(tmp_path, "a.jsonl", jsonl([first, second])))
    assert result.exit_code == 0, result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("warning:")]
    assert line == (
        f"warning: possible duplicate: “Pipelines: the stall” ({second['id']}) has the same URL "
        f"as “Why pipelines stall” ({first['id']})"
    )
