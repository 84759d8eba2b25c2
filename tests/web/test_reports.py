"""Reports over HTTP and the command line: roles, formats, as_of, bad input."""

import csv
import io
import json

import pytest

from tests.simulator import insert, simulate

AS_OF = "2026-06-30T00:00:00Z"


@pytest.fixture
def data(sessions):
    simulated = simulate(150, seed=5)
    insert(sessions, simulated)
    return simulated


@pytest.mark.parametrize("kind", ["coverage", "cycle-time", "effectiveness"])
def test_marketing_gets_every_report_as_json(client, auth, data, kind):
    response = client.get(f"/api/v1/reports/{kind}?as_of={AS_OF}", headers=auth("marketing"))
    assert response.status_code == 200
    body = response.get_json()
    assert body["as_of"] == "2026-06-30T00:00:00Z"
    assert "NaN" not in response.get_data(as_text=True)


def test_the_effectiveness_report_answers_as_csv_with_a_header(client, auth, data):
    response = client.get(
        f"/api/v1/reports/effectiveness?format=csv&as_of={AS_OF}", headers=auth("admin")
    )
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert rows and {"asset_id", "verdict", "hazard_ratio", "q_value"} <= set(rows[0])


def test_sales_may_not_read_reports(client, auth, data):
    response = client.get("/api/v1/reports/coverage", headers=auth("sales"))
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"


def test_reports_need_a_token(client):
    assert client.get("/api/v1/reports/effectiveness").status_code == 401


@pytest.mark.parametrize(
    "query",
    [
        "format=html",
        "format=xml",
        "as_of=2026-06-30T00:00:00",  # no zone
        "as_of=yesterday",
        "as_of=" + "9" * 500,
        "as_of=0001-01-01T00:00:00Z",
        "as_of=9999-12-31T23:59:59Z",
        "unknown=1",
    ],
)
def test_bad_report_queries_are_422(client, auth, query):
    response = client.get(f"/api/v1/reports/cycle-time?{query}", headers=auth("marketing"))
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "invalid_input"


def test_the_cli_prints_the_effectiveness_report_as_json(runner, data):
    result = runner("report", "effectiveness", "--format", "json", "--as-of", AS_OF)
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    assert {it["verdict"] for it in body["items"]} <= {
        "shortens",
        "lengthens",
        "no_evidence",
        "insufficient_data",
    }


def test_the_cli_prints_a_table_by_default(runner, data):
    result = runner("report", "cycle-time", "--as-of", AS_OF)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0].split()[:3] == ["section", "pipeline_id", "stage"]
    assert "buying_stage" in result.stdout and "won_by_month" in result.stdout


def test_the_cli_writes_the_coverage_html_to_a_file(runner, data, tmp_path):
    out = tmp_path / "coverage.html"
    result = runner("report", "coverage", "--format", "html", "--output", str(out))
    assert result.exit_code == 0, result.stderr
    text = out.read_text(encoding="utf-8")
    assert '<table class="heat">' in text and "https:" not in text


def test_the_cli_refuses_html_for_other_reports_as_bad_usage(runner, data):
    result = runner("report", "effectiveness", "--format", "html")
    assert result.exit_code == 2
    assert "coverage report only" in result.stderr


@pytest.mark.parametrize("value", ["2026-06-30T00:00:00", "next tuesday", ""])
def test_the_cli_refuses_an_as_of_without_a_zone_or_not_a_time(runner, value):
    result = runner("report", "coverage", "--as-of", value)
    assert result.exit_code == 1
    assert "--as-of" in result.stderr


def test_the_cli_refuses_an_as_of_out_of_range(runner):
    result = runner("report", "coverage", "--as-of", "1066-10-14T09:00:00Z")
    assert result.exit_code == 1
    assert "between 1970 and 2100" in result.stderr


def test_an_as_of_with_an_offset_is_reported_in_utc(client, auth, data):
    response = client.get(
        "/api/v1/reports/cycle-time?as_of=2026-06-30T02:00:00%2B02:00", headers=auth("marketing")
    )
    assert response.get_json()["as_of"] == "2026-06-30T00:00:00Z"


def test_csv_cells_that_look_like_formulas_are_defused():
    from enablement.render import render

    report = {"as_of": "x", "items": [{"asset_id": "a", "title": "=HYPERLINK(1)", "verdict": "x"}]}
    text = render("effectiveness", report, "csv")
    assert "'=HYPERLINK(1)" in text


def test_the_cli_reports_an_unwritable_output_as_an_error(runner, data, tmp_path):
    result = runner("report", "coverage", "--output", str(tmp_path / "missing" / "x.csv"))
    assert result.exit_code == 1
    assert "cannot write" in result.stderr


def test_the_server_answers_the_coverage_html_page_like_the_cli(
    client, auth, runner, data, tmp_path
):
    assert client.get("/api/v1/reports/coverage?format=html").status_code == 401
    response = client.get(
        f"/api/v1/reports/coverage?format=HTML&as_of={AS_OF}", headers=auth("marketing")
    )
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    out = tmp_path / "coverage.html"
    assert (
        runner(
            "report", "coverage", "--format", "html", "--as-of", AS_OF, "--output", str(out)
        ).exit_code
        == 0
    )
    assert response.get_data(as_text=True) == out.read_text(encoding="utf-8")
    # A readable UTC time in a <time> element (app.js localises it on the live page).
    assert (
        'As of <time datetime="2026-06-30T00:00:00Z">30 Jun 2026, 00:00 UTC</time>.'
        in out.read_text(encoding="utf-8")
    )


def test_the_effectiveness_report_hides_insufficient_rows_behind_a_count(client, auth, data):
    url = f"/api/v1/reports/effectiveness?as_of={AS_OF}"
    shown = client.get(url, headers=auth("marketing")).get_json()
    everything = client.get(
        url + "&include_insufficient=true", headers=auth("marketing")
    ).get_json()
    insufficient = [i for i in everything["items"] if i["verdict"] == "insufficient_data"]
    assert insufficient, "the simulated data should leave some pairs with too few deals"
    assert all(i["verdict"] != "insufficient_data" for i in shown["items"])
    assert shown["hidden_insufficient_data"] == len(insufficient)
    assert len(shown["items"]) + len(insufficient) == len(everything["items"])
    assert everything["hidden_insufficient_data"] == 0


def test_the_effectiveness_report_filters_by_verdict_stage_and_asset(client, auth, data):
    base = f"/api/v1/reports/effectiveness?as_of={AS_OF}&include_insufficient=true"
    items = client.get(base, headers=auth("marketing")).get_json()["items"]
    first = next(i for i in items if i["verdict"] != "insufficient_data")
    for query, keep in (
        (f"verdict={first['verdict'].upper()}", lambda i: i["verdict"] == first["verdict"]),
        (
            f"stage={first['buying_stage'].title()}",
            lambda i: i["buying_stage"] == first["buying_stage"],
        ),
        (f"asset={first['asset_id']}", lambda i: i["asset_id"] == first["asset_id"]),
    ):
        got = client.get(f"{base}&{query}", headers=auth("marketing")).get_json()["items"]
        assert got == [i for i in items if keep(i)], query
    csv_text = client.get(
        f"{base}&format=csv&asset={first['asset_id']}", headers=auth("marketing")
    ).get_data(as_text=True)
    assert len(csv_text.strip().splitlines()) == 1 + sum(
        i["asset_id"] == first["asset_id"] for i in items
    )


@pytest.mark.parametrize(
    "query", ["verdict=great", "stage=onboarding", "asset=", "include_insufficient=perhaps"]
)
def test_bad_effectiveness_filters_are_422(client, auth, query):
    response = client.get(f"/api/v1/reports/effectiveness?{query}", headers=auth("marketing"))
    assert response.status_code == 422


def test_the_cli_filters_the_effectiveness_report(runner, data):
    everything = json.loads(
        runner(
            "report",
            "effectiveness",
            "--format",
            "json",
            "--as-of",
            AS_OF,
            "--include-insufficient",
        ).stdout
    )
    result = runner("report", "effectiveness", "--as-of", AS_OF, "--verdict", "NO_EVIDENCE")
    assert result.exit_code == 0, result.stderr
    body = result.stdout.splitlines()
    expected = [i for i in everything["items"] if i["verdict"] == "no_evidence"]
    assert len([line for line in body[1:] if "no_evidence" in line]) == len(expected)
    hidden = sum(i["verdict"] == "insufficient_data" for i in everything["items"])
    table = runner("report", "effectiveness", "--as-of", AS_OF).stdout
    assert f"{hidden} row(s) with insufficient data hidden" in table


def test_report_filters_on_another_report_are_bad_usage(runner):
    result = runner("report", "coverage", "--verdict", "shortens")
    assert result.exit_code == 2


def test_the_cli_says_it_is_computing_only_on_a_cache_miss(runner, data):
    first = runner("report", "cycle-time", "--as-of", AS_OF)
    assert "computing the cycle-time report" in first.stderr
    again = runner("report", "cycle-time", "--as-of", AS_OF)
    assert again.exit_code == 0
    assert "computing" not in again.stderr


def test_report_tables_print_times_without_microseconds(runner, data):
    result = runner("report", "cycle-time")
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("as of ") and last.endswith("Z")
    assert "." not in last.removeprefix("as of ")


def test_the_coverage_table_has_every_section_of_the_html_page(runner, data):
    result = runner("report", "coverage", "--as-of", AS_OF)
    assert result.exit_code == 0, result.stderr
    for title in (
        "By buying stage",
        "Gaps (",
        "CRM stages without a reliable mapping (",
        "Product pitches, not point of view (",
        "Assets with no buying stage (",
        "Shared but never opened (",
        "Live but never shared (",
        "Voices: named authors per stage (",
    ):
        assert title in result.stdout, title
