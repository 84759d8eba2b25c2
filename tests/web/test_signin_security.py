"""Sign-in and sign-out as an attacker tries them: where `next` may send a rep, and sessions end."""

from __future__ import annotations

import pytest

from tests.web.test_pages import csrf_of

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def sign_in_to(client, token: str, target: str):
    """Open /signin?next=... as a crafted link does, then sign in with a valid token."""
    crafted = client.get("/signin", query_string={"next": target}, headers={"Accept": "text/html"})
    assert crafted.status_code in (200, 422)  # a NUL byte is refused at the door
    page = client.get("/signin", headers={"Accept": "text/html"})
    return client.post(
        "/signin", data={"token": token, "csrf_token": csrf_of(page.text), "next": target}
    )


# Every one of these becomes another site (or a header break) once a browser normalises it.
HOSTILE_NEXT = [
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r/evil.example",
    "/\r\nLocation: https://evil.example",
    "/\x0b/evil.example",
    "/\x0c/evil.example",
    "/\x00/evil.example",
    "/ /evil.example",
    "/\u00a0/evil.example",
    "/\u3000/evil.example",
    "/\u2028/evil.example",
    "/\u200b/evil.example",
    "/\ufeff/evil.example",
    "/\\evil.example",
    "\\/evil.example",
    "/\\/evil.example",
    "//evil.example",
    "///evil.example",
    "/%2Fevil.example",
    "/%2fevil.example",
    "/%5Cevil.example",
    "/%252Fevil.example",
    "/%09/evil.example",
    "/%0A/evil.example",
    "/%0D/evil.example",
    "/%0A/x",
    "/%0D/x",
    "/a%0Ab",
    "/a%0D%0ASet-Cookie:x=1",
    "https://evil.example",
    "javascript:alert(1)",
    " /deals",
    "/x%25252525252F",
    "",
]


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_next_never_leaves_the_site_or_breaks_the_answer(client, token_for, target):
    response = sign_in_to(client, token_for("sales", owner_id="o1"), target)
    if "\x00" in target:
        # A NUL byte in any form field is refused before sign-in, as everywhere (422).
        assert response.status_code == 422 and "Location" not in response.headers
        return
    assert response.status_code == 302
    # Only the start page: a doubtful next is dropped, not repaired into a guess.
    assert response.headers["Location"] == "/app"
    assert client.get("/deals").status_code == 200


@pytest.mark.parametrize(
    ("target", "location"),
    [
        ("/deals", "/deals"),
        ("/deals?q=acme&page=2", "/deals?q=acme&page=2"),
        ("/deals/d%201", "/deals/d%201"),
        ("/assets?q=caf%C3%A9", "/assets?q=caf%C3%A9"),
        ("/assets?q=café", "/assets?q=caf%C3%A9"),
    ],
)
def test_a_path_on_this_site_is_where_sign_in_returns(client, token_for, target, location):
    response = sign_in_to(client, token_for("sales", owner_id="o1"), target)
    assert response.status_code == 302
    assert response.headers["Location"] == location


def test_a_signed_out_visitor_returns_to_the_page_they_asked_for(client, token_for):
    asked = client.get("/deals?q=acme", headers={"Accept": "text/html"})
    target = asked.headers["Location"].split("next=", 1)[1]
    from urllib.parse import unquote

    response = sign_in_to(client, token_for("sales", owner_id="o1"), unquote(target))
    assert response.headers["Location"] == "/deals?q=acme"


def test_a_cookie_copied_before_sign_out_no_longer_works_after_it(app, client, token_for):
    assert sign_in_to(client, token_for("sales", owner_id="o1"), "/deals").status_code == 302
    copied = client.get_cookie("session").value
    thief = app.test_client()
    thief.set_cookie("session", copied)
    assert thief.get("/deals").status_code == 200
    page = client.get("/deals")
    assert client.post("/signout", data={"csrf_token": csrf_of(page.text)}).status_code == 302
    assert client.get("/deals").status_code == 302
    # The copy still carries a valid signature, but its server-side session has ended.
    thief.set_cookie("session", copied)
    answer = thief.get("/deals", headers={"Accept": "text/html"})
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/signin")


def test_signing_out_one_browser_leaves_the_other_signed_in(app, token_for):
    token = token_for("sales", owner_id="o1")
    laptop, phone = app.test_client(), app.test_client()
    sign_in_to(laptop, token, "/deals")
    sign_in_to(phone, token, "/deals")
    page = laptop.get("/deals")
    laptop.post("/signout", data={"csrf_token": csrf_of(page.text)})
    assert laptop.get("/deals").status_code == 302
    assert phone.get("/deals").status_code == 200


def test_revoking_the_token_ends_its_sessions(app, client, sessions, token_for):
    from sqlalchemy import func, select

    from enablement.db.models import ApiToken, WebSession
    from enablement.services.tokens import revoke_token

    token = token_for("sales", name="to revoke", owner_id="o1")
    sign_in_to(client, token, "/deals")
    assert client.get("/deals").status_code == 200
    with sessions() as session:
        token_id = session.scalar(select(ApiToken.id).where(ApiToken.name == "to revoke"))
    revoke_token(sessions, token_id)
    assert client.get("/deals").status_code == 302
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(WebSession)) == 0


def test_a_cookie_naming_a_token_id_as_the_old_cookies_did_is_signed_out(
    client, sessions, token_for
):
    from sqlalchemy import select

    from enablement.db.models import ApiToken

    token_for("admin", name="old cookie")
    with sessions() as session:
        token_id = session.scalar(select(ApiToken.id).where(ApiToken.name == "old cookie"))
    with client.session_transaction() as cookie:
        cookie["token_id"] = token_id
    assert client.get("/deals").status_code == 302
