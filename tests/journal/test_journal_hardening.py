"""What a hostile user tried on the journal, kept as tests."""

from __future__ import annotations

import io
import logging
import os
import threading
import urllib.error
import urllib.parse
import urllib.request

import peewee as pw
import pytest
from ums_local_store.journal import auth, files
from ums_local_store.retention import delete_message

from tests.conftest import PG_MODE, corpus_path, free_port
from ums_core import db, users
from ums_core.context import PluginContext

from .conftest import ALICE_FAX, ALICE_SMS, PASSWORDS, csrf_of, login, receive


def test_a_reused_message_id_never_shows_the_deleted_content(
    client, journal_app, samples, tmp_path
):
    first = receive(journal_app, "fax", ALICE_FAX, content_path=samples["fax"])
    row = db.Message.get_by_id(first)
    stale = os.path.join(files.cache_folder(journal_app.home), files.cache_key(row))
    delete_message(journal_app.home, first, "test")
    with open(stale + ".p1.png", "wb") as handle:  # a conversion that ended late
        handle.write(b"alice's old page")
    second = receive(journal_app, "fax", "+4989999999", content_path=samples["fax"])
    if isinstance(db.database.obj, pw.SqliteDatabase):
        assert second == first  # SQLite hands the id out again
    login(client, "fallback@example.test")
    page = client.get(f"/messages/{second}/page/1.png")
    assert page.status_code == 200 and page.data != b"alice's old page"
    assert page.data[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "change",
    ["reset-password", "remove-and-add"],
)
def test_admin_changes_end_journal_sessions(client, journal_app, mailbox, change):
    login(client)
    assert client.get("/messages").status_code == 200
    if change == "reset-password":
        users.set_password("alice@example.test", "admin-gave-a-new-one")
    else:
        users.remove_user("alice@example.test")
        users.add_user("alice@example.test", rules=journal_app.site_rules)
        users.set_password("alice@example.test", PASSWORDS["alice@example.test"])
    assert client.get("/messages").status_code == 302
    assert auth.JournalSession.select().count() == 0


@pytest.mark.parametrize(
    "path",
    [
        "/messages/99999999999999999999",
        "/messages/9223372036854775808/file/pdf",
        "/messages/9223372036854775808/delete",
    ],
)
def test_ids_beyond_the_database_are_404(client, mailbox, path):
    login(client)
    assert client.get(path).status_code == 404


@pytest.mark.parametrize(
    "query",
    [
        "before=99999999999999999999",
        "after=-99999999999999999999",
        "to=9999-12-31",
        "from=0001-01-01",
        "from=0001-01-01&to=9999-12-31",
    ],
)
def test_extreme_list_arguments_are_not_errors(client, mailbox, query):
    login(client)
    assert client.get(f"/messages?{query}").status_code == 200


def test_next_with_a_line_break_goes_to_the_list(client, mailbox):
    data = {
        "email": "alice@example.test",
        "password": PASSWORDS["alice@example.test"],
        "next": "/messages\r\nX-Injected: 1",
    }
    response = client.post("/login", data=data)
    assert response.status_code == 302 and response.headers["Location"] == "/messages"


def test_gsm_voice_message_is_decoded_for_the_browser(client, journal_app):
    import soundfile

    path = corpus_path("voice", "gsm_6_10.wav")
    message_id = receive(journal_app, "voice", "+4989123457", content_path=path)
    login(client)
    play = client.get(f"/messages/{message_id}/file/play")
    info = soundfile.info(io.BytesIO(play.data))
    assert info.subtype == "PCM_16" and info.frames > 0


def test_pdf_fax_has_page_images_for_phones(client, journal_app, samples, tmp_path):
    from ums_core.helpers import fax_to_pdf

    pdf = str(tmp_path / "fax.pdf")
    fax_to_pdf(samples["fax"], pdf)
    message_id = receive(journal_app, "fax", ALICE_FAX, content_path=pdf)
    login(client)
    page = client.get(f"/messages/{message_id}").text
    assert page.count(f"/messages/{message_id}/page/") == 2
    image = client.get(f"/messages/{message_id}/page/2.png")
    assert image.status_code == 200 and image.data[:4] == b"\x89PNG"


def test_alphanumeric_sms_sender_is_shown(client, journal_app):
    receive(journal_app, "sms", ALICE_SMS, sender=None, text="Ihr Paket kommt")
    with db.write_transaction():
        db.Message.update(sender_raw="DHL").where(db.Message.kind == "sms").execute()
    login(client)
    text = client.get("/messages").text
    assert "DHL" in text and "Unbekannter Anrufer" not in text


def test_login_log_lines_cannot_be_forged(client, mailbox, caplog):
    caplog.set_level(logging.INFO)
    forged = "evil@example.test\n2026-12-04 INFO journal: login ok for alice@x"
    client.post("/login", data={"email": forged, "password": "whatever-1"})
    lines = [r.getMessage() for r in caplog.records if "journal:" in r.getMessage()]
    assert lines and all("\n" not in line and "\r" not in line for line in lines)


def test_token_does_not_excuse_a_foreign_origin(client, mailbox):
    client.set_cookie("ums_login", "chosen", path="/login")
    data = {
        "email": "alice@example.test",
        "password": PASSWORDS["alice@example.test"],
        "csrf": "chosen",
    }
    response = client.post("/login", data=data, headers={"Origin": "http://evil.test"})
    assert response.status_code == 400


def test_new_password_of_spaces_is_refused(client, mailbox):
    login(client)
    token = csrf_of(client, "/password")
    current = PASSWORDS["alice@example.test"]
    response = client.post(
        "/password",
        data={"current": current, "new": " " * 12, "repeat": " " * 12, "csrf": token},
    )
    assert response.status_code == 400
    assert login(client.application.test_client()).status_code == 302


def test_guessing_the_current_password_is_throttled(client, mailbox):
    login(client)
    token = csrf_of(client, "/password")
    data = {"new": "n" * 12, "repeat": "n" * 12, "csrf": token}
    for number in range(auth.ACCOUNT_LIMIT):
        response = client.post("/password", data={**data, "current": f"guess-{number}"})
        assert "falsch" in response.text
    response = client.post(
        "/password", data={**data, "current": PASSWORDS["alice@example.test"]}
    )
    assert response.status_code == 400 and "Zu viele" in response.text


def test_active_sessions_survive_a_short_idle_timeout(client, journal_app, mailbox):
    import datetime as dt

    journal_app.config.set("journal.idle_timeout", "60s")
    login(client)
    for seconds_ago in (40, 40, 40):
        past = db.utcnow() - dt.timedelta(seconds=seconds_ago)
        with db.write_transaction():
            auth.JournalSession.update(seen_at=past).execute()
        assert client.get("/messages").status_code == 200


@pytest.fixture
def live_journal(journal_app, mailbox):
    from ums_local_store.journal.service import JournalService

    journal_app.config.set("journal.trusted_proxy", "127.0.0.1")
    service = JournalService(PluginContext(journal_app), f"127.0.0.1:{free_port()}")
    service.start()
    yield f"http://{service.address}"
    service.stop()


def post_login(base, email, password, forwarded=None) -> int:
    data = urllib.parse.urlencode({"email": email, "password": password}).encode()
    request = urllib.request.Request(f"{base}/login", data=data)
    if forwarded:
        request.add_header("X-Forwarded-For", forwarded)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_behind_a_trusted_proxy_clients_are_throttled_apart(live_journal):
    for number in range(auth.ADDRESS_LIMIT - 1):
        auth.record_failure(f"u{number}@example.test", "10.1.2.3")
    assert post_login(live_journal, "x@example.test", "bad-guess", "10.1.2.3") == 401
    assert auth.throttled("bob@example.test", "10.1.2.3")
    bob = PASSWORDS["bob@example.test"]
    assert post_login(live_journal, "bob@example.test", bob, "10.1.2.3") == 429
    assert post_login(live_journal, "bob@example.test", bob, "10.9.9.9") == 302


def test_parallel_guesses_stop_at_the_account_limit(live_journal):
    results = []

    def guess(number):
        results.append(post_login(live_journal, "bob@example.test", f"guess-{number}"))

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(set(results)) == [401, 429]
    assert results.count(401) == auth.ACCOUNT_LIMIT


@pytest.mark.skipif(PG_MODE, reason="PostgreSQL's are checked first (tests below)")
def test_a_broken_connection_fails_one_request_and_is_not_used_again(client, mailbox):
    login(client)
    assert client.get("/messages").status_code == 200
    kept = db.database.connection()
    token = csrf_of(client)
    assert db.database.connection() is kept  # kept between requests
    kept.close()  # as a restarted database server leaves it
    client.application.testing = False  # a 500 page, not the exception
    # A change is never run twice: it fails, and nothing was deleted.
    path = f"/messages/{mailbox['fax']}/delete"
    assert client.post(path, data={"csrf": token}).status_code == 500
    assert db.database.connection() is not kept
    assert client.get(f"/messages/{mailbox['fax']}").status_code == 200


@pytest.mark.skipif(not PG_MODE, reason="a server that drops connections")
def test_a_connection_the_server_ended_is_replaced_before_the_request(
    client, mailbox, pg_cluster, caplog
):
    login(client)
    before = client.get("/messages")
    assert before.status_code == 200
    token = csrf_of(client)
    client.application.testing = False
    for method in ("GET", "POST"):
        kept = db.database.connection()
        pg_cluster.admin(f"SELECT pg_terminate_backend({kept.get_backend_pid()})")
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="ums_local_store.journal.web"):
            if method == "GET":
                page = client.get("/messages")
                assert page.status_code == 200
                rows = page.text.count('<tr class="')
                assert rows == before.text.count('<tr class="') >= 3
            else:  # a change, done once
                path = f"/messages/{mailbox['fax']}/delete"
                assert client.post(path, data={"csrf": token}).status_code == 302
                assert client.get(f"/messages/{mailbox['fax']}").status_code == 404
        assert db.database.connection() is not kept
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 1 and "connection lost" in lines[0], lines


@pytest.mark.skipif(not PG_MODE, reason="a server that drops connections")
def test_pages_work_at_once_after_an_immediate_restart(tmp_path):
    """pg_ctl restart -m immediate: psycopg2 says DatabaseError, not Operational."""
    from ums_local_store.journal.web import create_journal

    from tests.conftest import migrate_template
    from tests.pgcluster import TEMPLATE, PgCluster
    from ums_core.app import App, create_instance

    cluster = PgCluster().start()
    app = None
    try:
        migrate_template(cluster)
        home = str(tmp_path / "instance")
        config = create_instance(home, cluster.create_database("r", template=TEMPLATE))
        config.set("journal.listen", "")
        config.save()
        app = App.open(home)
        users.add_user("carol@example.test", rules=app.site_rules)
        users.set_password("carol@example.test", "carol-secret-44")
        client = create_journal(PluginContext(app)).test_client()
        login(client, "carol@example.test", "carol-secret-44")
        assert client.get("/messages").status_code == 200
        kept = db.database.connection()
        cluster.admin("CHECKPOINT")  # the test cluster commits without waiting
        cluster.restart()
        assert client.get("/messages").status_code == 200
        assert client.get("/password").status_code == 200
        assert db.database.connection() is not kept
    finally:
        if app is not None:
            app.close()
        cluster.stop()


def test_head_requests_change_nothing(client, mailbox):
    """HEAD is answered like GET, even with a form body and a valid token."""
    login(client)
    token = csrf_of(client)
    fax = f"/messages/{mailbox['fax']}"
    assert client.head(fax).status_code == 200
    assert db.Message.get_by_id(mailbox["fax"]).read_at is None  # not marked read
    assert (
        client.open(f"{fax}/delete", method="HEAD", data={"csrf": token}).status_code
        == 200
    )
    assert client.get(fax).status_code == 200  # not deleted
    current = PASSWORDS["alice@example.test"]
    form = {"current": current, "new": "n" * 12, "repeat": "n" * 12, "csrf": token}
    assert client.open("/password", method="HEAD", data=form).status_code == 200
    assert users.check_password("alice@example.test", current) is not None
    wrong = {"email": "alice@example.test", "password": "guess", "csrf": token}
    for _ in range(auth.ACCOUNT_LIMIT + 1):
        client.open("/login", method="HEAD", data=wrong)
    assert login(client.application.test_client()).status_code == 302  # not throttled


def test_a_password_change_that_fails_part_way_changes_nothing(
    client, mailbox, monkeypatch
):
    other = client.application.test_client()
    login(other)
    login(client)
    token = csrf_of(client, "/password")
    current = PASSWORDS["alice@example.test"]

    def broken(*args, **kwargs):
        raise pw.OperationalError("the database went away")

    monkeypatch.setattr(auth, "start_session", broken)
    client.application.testing = False
    data = {"current": current, "new": "n" * 12, "repeat": "n" * 12, "csrf": token}
    assert client.post("/password", data=data).status_code == 500
    assert users.check_password("alice@example.test", current) is not None
    assert users.check_password("alice@example.test", "n" * 12) is None
    assert other.get("/messages").status_code == 200  # its session was not ended
