"""`POST /api/v1/deals/import`: the same importers, messages and dry run as the CLI."""

import io
import re
from pathlib import Path

from sqlalchemy import func, select

from enablement.db.models import Deal, Pipeline

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
URL = "/api/v1/deals/import"


def count(sessions, model) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model))


def upload(name: str, data: bytes | None = None) -> tuple:
    return (io.BytesIO(data if data is not None else (SAMPLES / name).read_bytes()), name)


def test_salesforce_report_and_history_import_over_the_api(client, auth, sessions):
    response = client.post(
        f"{URL}?from=salesforce&timezone=America/New_York",
        data={
            "file": upload("salesforce_opportunities.csv"),
            "history": upload("salesforce_opportunity_history.csv"),
        },
        headers=auth("admin"),
    )
    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert (answer["created"], answer["check"]) == (3, False)
    assert any("created stage 'Closed Won'" in w["message"] for w in answer["warnings"])
    assert count(sessions, Deal) == 3


def test_a_day_first_export_over_the_api(client, auth, sessions):
    day_first = re.sub(
        rb"\b(\d{1,2})/(\d{1,2})/(\d{4})",
        rb"\2/\1/\3",
        (SAMPLES / "salesforce_opportunities.csv").read_bytes(),
    )
    refused = client.post(
        f"{URL}?from=salesforce&timezone=UTC",
        data={"file": upload("sf.csv", day_first)},
        headers=auth("admin"),
    )
    assert refused.status_code == 422
    assert "(--day-first)" in refused.text and count(sessions, Deal) == 0
    read = client.post(
        f"{URL}?from=salesforce&timezone=UTC&day_first=true",
        data={"file": upload("sf.csv", day_first)},
        headers=auth("admin"),
    )
    assert read.status_code == 200, read.get_json()
    with sessions() as session:
        won = session.get(Deal, "0065g00000AbCdEAAV")
    assert (won.closed_at.month, won.closed_at.day) == (4, 1), "1/4/2026 read day first"
    assert (won.created_at.month, won.created_at.day) == (3, 4)


def test_every_problem_comes_back_as_a_sentence_in_422_details(client, auth, sessions):
    bad = (
        b"Record ID,Deal Name,Deal Stage,Pipeline,Amount,Create Date,Close Date\n"
        b"1,Bad,Closed Won,Sales,-5,2026-03-04,31/02/2026\n"
    )
    response = client.post(
        f"{URL}?from=hubspot&timezone=UTC",
        data={"file": upload("hs.csv", bad)},
        headers=auth("admin"),
    )
    assert response.status_code == 422
    (error,) = response.get_json()["error"]["details"]["errors"]
    assert (
        "line 2, column \"Amount\": '-5' is negative; an amount is at least 0" in error["messages"]
    )
    assert any(
        m.startswith("line 2, column \"Close Date\": '31/02/2026' is not a date")
        for m in error["messages"]
    )
    assert count(sessions, Deal) == 0 and count(sessions, Pipeline) == 0


def test_a_check_over_the_api_writes_nothing(client, auth, sessions):
    response = client.post(
        f"{URL}?from=hubspot&timezone=Europe/Berlin&check=true",
        data={"file": upload("hubspot_deals.csv")},
        headers=auth("admin"),
    )
    assert response.status_code == 200
    assert response.get_json()["check"] is True and response.get_json()["created"] == 3
    assert count(sessions, Deal) == 0


def test_a_deals_import_needs_an_admin_token(client, auth):
    response = client.post(
        URL, data={"file": upload("hubspot_deals.csv")}, headers=auth("marketing")
    )
    assert response.status_code == 403


def test_an_unknown_source_is_a_422(client, auth):
    response = client.post(
        f"{URL}?from=pipedrive", data={"file": upload("hubspot_deals.csv")}, headers=auth("admin")
    )
    assert response.status_code == 422


def test_bad_deal_imports_answer_a_clear_4xx_never_a_500(client, auth, sessions):
    cases = [
        ("?from=salesforce", {"file": upload("x.csv", b"\x00\xff garbage")}),
        ("?from=salesforce", {"file": upload("x.csv", b"Opportunity ID\n1\n")}),
        (
            "?from=hubspot",
            {"file": upload("hubspot_deals.csv"), "history": upload("h.csv", b"a\n")},
        ),
        ("", {"file": upload("p.csv", b"a,b\n1,2\n"), "mapping": upload("m.json", b"{nope")}),
        (
            "",
            {
                "file": upload("p.csv", b"a,b\n1,2\n"),
                "mapping": upload("m.json", b'{"columns": {"a": ["x"]}}'),
            },
        ),
        (
            "?from=salesforce&timezone=UTC",
            {
                "file": upload("salesforce_opportunities.csv"),
                "history": upload("h.csv", b"Opportunity ID,Nothing\n1,2\n"),
            },
        ),
        ("?from=hubspot&timezone=Nowhere/City", {"file": upload("hubspot_deals.csv")}),
        ("?day_first=maybe&from=salesforce", {"file": upload("salesforce_opportunities.csv")}),
        ("?day_first=true", {"file": upload("d.csv", b"id,name\n")}),
    ]
    for query, data in cases:
        response = client.post(f"{URL}{query}", data=data, headers=auth("admin"))
        assert 400 <= response.status_code < 500, (query, response.status_code, response.text)
        assert response.get_json()["error"]["message"]
    assert count(sessions, Deal) == 0 and count(sessions, Pipeline) == 0
