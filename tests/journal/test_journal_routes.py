"""The journal's routes: owner checks, sessions, CSRF, throttling, headers."""

from __future__ import annotations

import datetime as dt
import os
import urllib.parse

import pytest
from ums_local_store.journal import auth

from ums_core import db

from .conftest import PASSWORDS, csrf_of, login

PROTECTED_GETS = (
    "/messages",
    "/messages/{fax}",
    "/messages/{fax}/file/pdf",
    "/messages/{fax}/file/tiff",
    "/messages/{fax}/page/1.png",
    "/messages/{voice}/file/play",
    "/messages/{voice}/file/wav",
    "/messages/{sms}/file/txt",
    "/messages/{fax}/delete",
    "/password",
)
OWNED_GETS = tuple(path for path in PROTECTED_GETS if "{" in path)


def fill(path: str, ids: dict) -> str:
    return path.format(**ids)


@pytest.mark.parametrize("path", PROTECTED_GETS)
def test_no_session_redirects_to_login(client, mailbox, path):
    response = client.get(fill(path, mailbox))
    assert response.status_code == 302
    location = urllib.parse.urlsplit(response.headers["Location"])
    assert location.path == "/login"
    assert urllib.parse.parse_qs(location.query)["next"] == [fill(path, mailbox)]


@pytest.mark.parametrize("path", OWNED_GETS)
def test_another_users_message_is_404(client, mailbox, path):
    login(client, "bob@example.test")
    response = client.get(fill(path, mailbox))
    assert response.status_code == 404
    assert b"%PDF" not in response.data and b"RIFF" not in response.data
    assert "Grüße" not in response.text


@pytest.mark.parametrize("path", OWNED_GETS)
def test_own_message_is_served(client, mailbox, path):
    login(client)
    assert client.get(fill(path, mailbox)).status_code == 200


def test_guessed_ids_and_kinds_are_404(client, mailbox):
    login(client)
    for path in (
        f"/messages/{mailbox['nobody'] + 100}",
        f"/messages/{mailbox['fax']}/file/..%2F..%2Fums.db",
        f"/messages/{mailbox['fax']}/file/wav",
        f"/messages/{mailbox['sms']}/file/pdf",
        f"/messages/{mailbox['fax']}/page/3.png",
        f"/messages/{mailbox['fax']}/page/0.png",
        "/messages/-1",
    ):
        assert client.get(path).status_code == 404, path


def test_delete_of_another_users_message_is_404_and_keeps_it(client, mailbox):
    login(client, "bob@example.test")
    token = csrf_of(client)
    response = client.post(f"/messages/{mailbox['fax']}/delete", data={"csrf": token})
    assert response.status_code == 404
    assert db.Message.get_or_none(db.Message.id == mailbox["fax"]) is not None


@pytest.mark.parametrize("token", [None, "", "forged-token"])
@pytest.mark.parametrize("route", ["delete", "logout", "password"])
def test_post_without_csrf_token_is_400(client, mailbox, route, token):
    login(client)
    data = {} if token is None else {"csrf": token}
    path = {
        "delete": f"/messages/{mailbox['fax']}/delete",
        "logout": "/logout",
        "password": "/password",
    }[route]
    if route == "password":
        data.update(
            current=PASSWORDS["alice@example.test"], new="x" * 12, repeat="x" * 12
        )
    assert client.post(path, data=data).status_code == 400
    assert db.Message.get_or_none(db.Message.id == mailbox["fax"]) is not None
    assert client.get("/messages").status_code == 200  # still logged in
    assert login_works(client.application, PASSWORDS["alice@example.test"])


def login_works(web, password, email="alice@example.test") -> bool:
    fresh = web.test_client()
    return login(fresh, email, password).status_code == 302


def test_login_sets_a_hardened_cookie_and_a_new_id(client, mailbox):
    fixed = "attacker-chosen-session-id"
    client.set_cookie("ums_session", fixed)
    response = login(client)
    assert response.status_code == 302
    cookie = next(
        c
        for c in response.headers.getlist("Set-Cookie")
        if c.startswith("ums_session=")
    )
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http on loopback
    token = cookie.split(";")[0].split("=", 1)[1]
    assert token != fixed and len(token) >= 40
    stored = [row.token_hash for row in auth.JournalSession.select()]
    assert token not in stored and fixed not in stored


def test_a_second_login_replaces_the_session(client, mailbox):
    login(client)
    first = client.get_cookie("ums_session").value
    data = {"email": "alice@example.test", "password": PASSWORDS["alice@example.test"]}
    assert client.post("/login", data=data).status_code == 302
    second = client.get_cookie("ums_session").value
    assert first != second
    assert auth.find_session(first, dt.timedelta(hours=1)) is None


def test_cookie_is_secure_behind_tls(client, journal_app, mailbox):
    journal_app.config.set("journal.https", "true")
    response = login(client)
    cookie = next(
        c
        for c in response.headers.getlist("Set-Cookie")
        if c.startswith("ums_session=")
    )
    assert "Secure" in cookie


def test_wrong_password_and_unknown_user_are_refused_alike(client, mailbox):
    wrong = login(client, "alice@example.test", "not-her-password")
    unknown = login(client, "nobody@example.test", "whatever-pass")
    assert wrong.status_code == unknown.status_code == 401
    assert client.get_cookie("ums_session") is None
    assert "E-mail address or password is wrong." in wrong.text
    assert wrong.text == unknown.text
    assert "ums_session" not in "".join(wrong.headers.getlist("Set-Cookie"))


def test_disabled_user_cannot_log_in_and_loses_the_session(client, mailbox):
    from ums_core.users import disable_user

    login(client)
    assert client.get("/messages").status_code == 200
    disable_user("alice@example.test")
    assert client.get("/messages").status_code == 302
    assert login(client).status_code == 401


def test_login_is_throttled_per_account(client, mailbox):
    for _ in range(auth.ACCOUNT_LIMIT):
        assert login(client, "alice@example.test", "guess-wrong").status_code == 401
    response = login(client)
    assert response.status_code == 429
    assert client.get_cookie("ums_session") is None
    # bob from the same address is not locked out by alice's failures
    assert login(client, "bob@example.test").status_code == 302


def test_login_is_throttled_per_address(client, mailbox):
    for number in range(auth.ADDRESS_LIMIT - 1):
        auth.record_failure(f"user{number}@example.test", "127.0.0.1")
    assert login(client, "user99@example.test", "guess-wrong").status_code == 401
    assert login(client, "bob@example.test").status_code == 429
    assert auth.throttled("bob@example.test", "127.0.0.1")
    assert not auth.throttled("bob@example.test", "127.0.0.2")


def test_throttle_ends_after_the_window(client, mailbox):
    for _ in range(auth.ACCOUNT_LIMIT):
        login(client, "alice@example.test", "guess-wrong")
    assert login(client).status_code == 429
    past = db.utcnow() - auth.THROTTLE_WINDOW - dt.timedelta(seconds=1)
    with db.write_transaction():
        auth.LoginFailure.update(failed_at=past).execute()
    assert login(client).status_code == 302


def test_script_login_without_token_works_but_cross_site_does_not(client, mailbox):
    data = {"email": "alice@example.test", "password": PASSWORDS["alice@example.test"]}
    assert client.post("/login", data=data).status_code == 302
    other = client.application.test_client()
    evil = other.post("/login", data=data, headers={"Origin": "http://evil.example"})
    assert evil.status_code == 400
    forged = other.post("/login", data={**data, "csrf": "not-the-cookie"})
    assert forged.status_code == 400


@pytest.mark.parametrize(
    "target", ["//evil.example/x", "http://evil.example/", "/\\evil.example", ""]
)
def test_login_never_redirects_off_site(client, mailbox, target):
    page = client.get("/login")
    import re

    token = re.search(r'name="csrf" value="([^"]+)"', page.text)[1]
    response = client.post(
        "/login",
        data={
            "email": "alice@example.test",
            "password": PASSWORDS["alice@example.test"],
            "csrf": token,
            "next": target,
        },
    )
    assert response.headers["Location"] == "/messages"


def test_logout_ends_the_session_on_the_server(client, mailbox):
    login(client)
    token = client.get_cookie("ums_session").value
    response = client.post("/logout", data={"csrf": csrf_of(client)})
    assert response.status_code == 302
    client.set_cookie("ums_session", token)  # a copied cookie is useless now
    assert client.get("/messages").status_code == 302


def test_idle_session_expires(client, mailbox, journal_app):
    login(client)
    idle = journal_app.config.get("journal.idle_timeout")
    old = db.utcnow() - dt.timedelta(seconds=idle + 5)
    with db.write_transaction():
        auth.JournalSession.update(seen_at=old).execute()
    assert client.get("/messages").status_code == 302
    assert auth.JournalSession.select().count() == 0


def test_change_password(client, mailbox):
    other = client.application.test_client()
    login(other)
    login(client)
    token = csrf_of(client, "/password")
    current = PASSWORDS["alice@example.test"]
    cases = [
        ({"current": "wrong-one-xx", "new": "n" * 12, "repeat": "n" * 12}, "falsch"),
        ({"current": current, "new": "n" * 12, "repeat": "m" * 12}, "verschieden"),
        ({"current": current, "new": "short", "repeat": "short"}, "mindestens"),
        ({"current": current, "new": current, "repeat": current}, "unterscheiden"),
    ]
    for data, words in cases:
        response = client.post("/password", data={**data, "csrf": token})
        assert response.status_code == 400 and words in response.text
    response = client.post(
        "/password",
        data={"current": current, "new": "brand-new-pw", "repeat": "brand-new-pw"},
        headers={},
        query_string={},
    )
    assert response.status_code == 400  # no CSRF token
    response = client.post(
        "/password",
        data={
            "current": current,
            "new": "brand-new-pw",
            "repeat": "brand-new-pw",
            "csrf": token,
        },
    )
    assert response.status_code == 200 and "geändert" in response.text
    assert client.get("/messages").status_code == 200  # this browser stays in
    assert other.get("/messages").status_code == 302  # other sessions end
    assert not login_works(client.application, current)
    assert login_works(client.application, "brand-new-pw")
    row = db.User.get(db.User.email == "alice@example.test")
    assert "brand-new-pw" not in row.password_hash
    assert row.password_hash.startswith("$argon2")


def test_security_headers_on_pages_and_files(client, mailbox):
    login(client)
    for path, frames in (
        ("/messages", "'none'"),
        (f"/messages/{mailbox['fax']}", "'none'"),
        (f"/messages/{mailbox['fax']}/file/pdf", "'self'"),
        ("/login", "'none'"),
    ):
        headers = client.get(path).headers
        csp = headers["Content-Security-Policy"]
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert f"frame-ancestors {frames}" in csp
        assert "script-src" not in csp or "script-src 'none'" in csp
        assert "default-src 'none'" in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] in ("DENY", "SAMEORIGIN")
        assert headers["Cache-Control"] == "no-store"


def test_pages_have_no_inline_script_or_style(client, mailbox):
    login(client)
    for path in ("/messages", f"/messages/{mailbox['fax']}", "/password"):
        text = client.get(path).text
        assert "<script" not in text.replace("&lt;script", "")
        assert "style=" not in text and "<style" not in text
        assert "http://" not in text and "https://" not in text  # no external assets


def test_events_are_logged_without_passwords(client, mailbox, caplog):
    caplog.set_level("INFO")
    login(client, "alice@example.test", "wrong-guess-77")
    login(client)
    client.get(f"/messages/{mailbox['fax']}/file/pdf?download=1")
    client.post(f"/messages/{mailbox['sms']}/delete", data={"csrf": csrf_of(client)})
    text = caplog.text
    assert "login failed for alice@example.test" in text
    assert "login ok for alice@example.test" in text
    assert f"msg {mailbox['fax']}: pdf downloaded by alice@example.test" in text
    assert f"msg {mailbox['sms']}: deleted by alice@example.test" in text
    assert "wrong-guess-77" not in text
    assert PASSWORDS["alice@example.test"] not in text


def test_journal_tables_hold_no_clear_text_tokens(client, mailbox, journal_app):
    login(client)
    token = client.get_cookie("ums_session").value
    journal_app.close()
    data = b""
    for name in os.listdir(journal_app.home):
        if name.startswith("ums.db"):
            with open(os.path.join(journal_app.home, name), "rb") as handle:
                data += handle.read()
    assert token.encode() not in data
    assert PASSWORDS["alice@example.test"].encode() not in data
