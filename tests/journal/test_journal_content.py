"""What users see and do in the journal: list, filters, files, delete, retention."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import re
import urllib.parse

import pytest
from PIL import Image

from ums_core import db
from ums_core.queue import run_due_jobs

from .conftest import (
    ALICE_FAX,
    ALICE_SMS,
    age_message,
    content_file,
    csrf_of,
    login,
    receive,
)


def listed_ids(response) -> list[int]:
    return [
        int(i) for i in re.findall(r'<tr class="\w+" data-id="(\d+)"', response.text)
    ]


def test_list_shows_own_messages_newest_first(client, mailbox):
    login(client)
    response = client.get("/messages")
    assert listed_ids(response) == [mailbox["sms"], mailbox["voice"], mailbox["fax"]]
    text = response.text
    assert "2 Seiten" in text  # alice reads German
    assert "030 555010" in text  # the caller's number as the site reads it
    assert "Müller &amp; &lt;b&gt;Söhne&lt;/b&gt;" in text
    assert "<b>Söhne</b>" not in text


def test_sms_script_text_is_shown_as_text(client, mailbox):
    login(client)
    for path in ("/messages", f"/messages/{mailbox['sms']}"):
        text = client.get(path).text
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in text
        assert "<script>" not in text


def test_default_recipient_sees_the_unowned_only(client, mailbox):
    login(client, "fallback@example.test")
    response = client.get("/messages")
    assert listed_ids(response) == [mailbox["nobody"]]
    assert client.get(f"/messages/{mailbox['fax']}").status_code == 404


def test_messages_from_before_a_default_recipient_was_set(client, journal_app, mailbox):
    with db.write_transaction():
        db.Message.update(recipient=None).where(
            db.Message.id == mailbox["nobody"]
        ).execute()
    login(client, "fallback@example.test")
    assert listed_ids(client.get("/messages")) == [mailbox["nobody"]]
    other = client.application.test_client()
    login(other, "bob@example.test")
    assert client.get(f"/messages/{mailbox['nobody']}").status_code == 200
    assert other.get(f"/messages/{mailbox['nobody']}").status_code == 404


def test_opening_marks_read(client, mailbox):
    login(client)
    assert f'class="new" data-id="{mailbox["fax"]}"' in client.get("/messages").text
    unread = client.get("/messages?unread=1")
    assert mailbox["fax"] in listed_ids(unread)
    page = client.get(f"/messages/{mailbox['fax']}")
    assert page.status_code == 200
    assert db.Message.get_by_id(mailbox["fax"]).read_at is not None
    assert mailbox["fax"] not in listed_ids(client.get("/messages?unread=1"))
    assert f'class="read" data-id="{mailbox["fax"]}"' in client.get("/messages").text


def test_filters(client, journal_app, mailbox):
    login(client)
    assert listed_ids(client.get("/messages?kind=fax")) == [mailbox["fax"]]
    assert listed_ids(client.get("/messages?kind=voice")) == [mailbox["voice"]]
    assert listed_ids(client.get("/messages?direction=outbound")) == []
    assert len(listed_ids(client.get("/messages?direction=inbound"))) == 3
    assert listed_ids(client.get("/messages?q=555012")) == [mailbox["sms"]]
    assert listed_ids(client.get("/messages?q=030 555010")) == [mailbox["fax"]]
    assert listed_ids(client.get("/messages?q=Söhne")) == [mailbox["fax"]]
    assert listed_ids(client.get("/messages?kind=bogus")) == listed_ids(
        client.get("/messages")
    )
    age_message(mailbox["voice"], 10)
    today = dt.date.today()
    old = (today - dt.timedelta(days=10)).isoformat()
    assert listed_ids(client.get(f"/messages?from={old}&to={old}")) == [
        mailbox["voice"]
    ]
    recent = (today - dt.timedelta(days=1)).isoformat()
    assert mailbox["voice"] not in listed_ids(client.get(f"/messages?from={recent}"))
    assert listed_ids(client.get("/messages?from=not-a-date")) == listed_ids(
        client.get("/messages")
    )


def test_keyset_paging_through_many_messages(client, journal_app):
    ids = [
        receive(journal_app, "sms", ALICE_SMS, sender="+4930555099", text=f"n{n}")
        for n in range(123)
    ]
    login(client)
    seen, path, pages = [], "/messages?kind=sms", 0
    while path and pages < 10:
        response = client.get(path)
        seen += listed_ids(response)
        older = re.search(r'href="([^"]+)" rel="next"', response.text)
        path = older[1].replace("&amp;", "&") if older else None
        pages += 1
    assert pages == 3
    assert seen == sorted(ids, reverse=True)
    third = client.get(f"/messages?kind=sms&before={ids[73]}")
    newer = re.search(r'href="([^"]+)" rel="prev"', third.text)[1].replace("&amp;", "&")
    assert listed_ids(client.get(newer)) == sorted(ids, reverse=True)[:50]


@pytest.mark.parametrize("email", ["alice@example.test", "fallback@example.test"])
def test_unfiltered_pages_read_as_filtered_ones_do(journal_app, mailbox, email):
    from ums_local_store.journal import listing

    journal_app.config.set("default_recipient", "fallback@example.test")
    for n in range(7):
        receive(journal_app, "sms", ALICE_SMS, sender="+4930555099", text=f"n{n}")
        receive(journal_app, "sms", "+4989999999", sender="+4930555014", text=f"o{n}")
    default = email == "fallback@example.test"
    every = db.Message.id > 0  # a filter that keeps every row: the other query
    first = listing.list_page(email, default, None, size=3)
    assert first.rows and first.older is not None
    assert first == listing.list_page(email, default, every, size=3)
    older = listing.list_page(email, default, None, before=first.older, size=3)
    assert older == listing.list_page(email, default, every, before=first.older, size=3)
    assert older.rows[0]["id"] < first.rows[-1]["id"]
    back = listing.list_page(email, default, None, after=older.newer, size=3)
    assert back == listing.list_page(email, default, every, after=older.newer, size=3)
    assert [r["id"] for r in back.rows] == [r["id"] for r in first.rows]
    assert isinstance(first.rows[0]["received_at"], dt.datetime)
    assert first.rows[0]["received_at"].tzinfo is not None


def test_fax_page_shows_pages_and_opens_as_pdf(client, mailbox):
    login(client)
    page = client.get(f"/messages/{mailbox['fax']}")
    assert '<object class="pdf"' in page.text
    assert "2 Seiten" in page.text
    assert page.text.count("/page/") == 2
    pdf = client.get(f"/messages/{mailbox['fax']}/file/pdf")
    assert pdf.headers["Content-Type"] == "application/pdf"
    assert pdf.headers["Content-Disposition"].startswith("inline")
    from pypdf import PdfReader

    assert len(PdfReader(io.BytesIO(pdf.data)).pages) == 2
    png = client.get(f"/messages/{mailbox['fax']}/page/2.png")
    image = Image.open(io.BytesIO(png.data))
    assert image.format == "PNG" and image.width == 1000
    assert 1.2 < image.height / image.width < 1.6  # an A4 page, not squashed


def test_tiff_download_is_the_original_with_a_unicode_name(
    client, journal_app, mailbox
):
    login(client)
    response = client.get(f"/messages/{mailbox['fax']}/file/tiff?download=1")
    with open(content_file(journal_app, mailbox["fax"]), "rb") as handle:
        assert response.data == handle.read()
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    quoted = re.search(r"filename\*=UTF-8''(\S+)", disposition)[1]
    name = urllib.parse.unquote(quoted)
    assert name.startswith("fax ") and name.endswith(".tiff")
    assert "Müller" in name and "/" not in name and "<" not in name
    ascii_name = re.search(r'filename="([^"]+)"', disposition)[1]
    assert ascii_name.isascii() and "Muller" in ascii_name


def test_download_names_cannot_carry_paths_or_header_breaks(
    client, journal_app, samples
):
    message_id = receive(
        journal_app,
        "fax",
        ALICE_FAX,
        sender="+4930555010",
        sender_name='../../etc/passwd\r\nX-Evil: 1";\x00',
        content_path=samples["fax"],
    )
    login(client)
    response = client.get(f"/messages/{message_id}/file/pdf?download=1")
    disposition = response.headers["Content-Disposition"]
    assert "\r" not in disposition and "\n" not in disposition
    assert "X-Evil" not in response.headers
    name = re.search(r'filename="([^"]*)"', disposition)[1]
    assert name.startswith("fax ") and name.endswith(".pdf")
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert '"' not in name and ";" not in name


def test_voice_message_plays_in_the_page(client, journal_app, mailbox):
    login(client)
    page = client.get(f"/messages/{mailbox['voice']}")
    assert "<audio controls" in page.text
    play = client.get(f"/messages/{mailbox['voice']}/file/play")
    assert play.data[:4] == b"RIFF" and play.data[8:12] == b"WAVE"
    import soundfile

    info = soundfile.info(io.BytesIO(play.data))
    assert info.subtype == "PCM_16" and info.samplerate == 8000
    assert abs(info.frames - 256 * 64) <= 1  # every A-law sample, decoded
    original = client.get(f"/messages/{mailbox['voice']}/file/wav?download=1")
    with open(content_file(journal_app, mailbox["voice"]), "rb") as handle:
        assert original.data == handle.read()
    assert original.headers["Content-Disposition"].startswith("attachment;")


def test_sms_text_download(client, mailbox):
    login(client)
    response = client.get(f"/messages/{mailbox['sms']}/file/txt?download=1")
    assert response.text == "<script>alert('x')</script> Grüße"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert 'attachment; filename="sms ' in response.headers["Content-Disposition"]


def test_delete_asks_then_removes_row_and_files(client, journal_app, mailbox):
    login(client)
    path = content_file(journal_app, mailbox["fax"])
    row = db.Message.get_by_id(mailbox["fax"])
    archive = os.path.join(
        journal_app.home, "plugins", "local_store", row.archive_ref.split(":", 1)[1]
    )
    client.get(f"/messages/{mailbox['fax']}/file/pdf")  # fills the cache
    assert os.path.isdir(archive) and os.path.exists(path)
    confirm = client.get(f"/messages/{mailbox['fax']}/delete")
    assert confirm.status_code == 200 and 'id="confirm-delete"' in confirm.text
    assert db.Message.get_or_none(db.Message.id == mailbox["fax"]) is not None
    response = client.post(
        f"/messages/{mailbox['fax']}/delete", data={"csrf": csrf_of(client)}
    )
    assert response.status_code == 302
    assert "done=deleted" in response.headers["Location"]
    assert db.Message.get_or_none(db.Message.id == mailbox["fax"]) is None
    assert not os.path.exists(path) and not os.path.exists(archive)
    cache = os.path.join(journal_app.home, "plugins", "local_store", "cache")
    assert not [n for n in os.listdir(cache) if n.startswith(f"{mailbox['fax']}.")]
    assert client.get(f"/messages/{mailbox['fax']}").status_code == 404
    # bob's fax came from the same sample but has its own copy
    assert os.path.exists(content_file(journal_app, mailbox["bob_fax"]))


def test_a_message_still_in_work_is_not_deleted(client, journal_app, mailbox):
    with db.write_transaction():
        db.Job.create(kind="store_message", message=mailbox["sms"], state="queued")
    login(client)
    response = client.post(
        f"/messages/{mailbox['sms']}/delete", data={"csrf": csrf_of(client)}
    )
    assert response.status_code == 409
    assert db.Message.get_or_none(db.Message.id == mailbox["sms"]) is not None


def test_retention_purge_dry_run_then_real(run, journal_app, mailbox):
    age_message(mailbox["fax"], 40)
    age_message(mailbox["nobody"], 31)
    fax_path = content_file(journal_app, mailbox["fax"])
    result = run("journal", "purge", "--dry-run")
    assert result.exit_code == 0
    assert "retention_days is 0" in result.output
    run("config", "set", "journal.retention_days", "30")
    result = run("journal", "purge", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "would delete 2 messages" in result.output
    assert db.Message.select().count() == 5 and os.path.exists(fax_path)
    result = run("journal", "purge")
    assert "deleted 2 messages" in result.output
    left = {row.id for row in db.Message.select()}
    assert left == {mailbox["voice"], mailbox["sms"], mailbox["bob_fax"]}
    assert not os.path.exists(fax_path)
    assert "deleted 0 messages" in run("journal", "purge").output


def test_purge_refuses_without_the_local_store(run, journal_app):
    run("config", "set", "mode", "mailserver")
    result = run("journal", "purge", "--days", "5")
    assert result.exit_code == 1
    assert "local store is not active" in result.output


def test_outbound_fax_shows_its_send_report(client, journal_app, tmp_path):
    from ums_core import content

    pdf = tmp_path / "doc.pdf"
    Image.new("1", (1728, 2200), 1).save(pdf, "PDF", resolution=204)
    stored = content.store_file(journal_app.home, "content", str(pdf), ".pdf")
    with db.write_transaction():
        row = db.Message.create(
            kind="fax",
            direction="outbound",
            called="+4930777888",
            received_at=db.utcnow(),
            recipient="alice@example.test",
            state="failed",
            pages=1,
            content_name=stored.name,
            content_type="application/pdf",
            attempts=3,
            remote_station="BUSY <line>",
            error="no answer after 3 attempts",
            subject="Offer",
        )
    login(client)
    page = client.get(f"/messages/{row.id}").text
    assert "Sendebericht" in page and "no answer after 3 attempts" in page
    assert "BUSY &lt;line&gt;" in page and "030 777888" in page
    assert "fehlgeschlagen" in page
    response = client.get(f"/messages/{row.id}/file/pdf?download=1")
    with open(pdf, "rb") as handle:
        assert (
            hashlib.sha256(response.data).digest()
            == hashlib.sha256(handle.read()).digest()
        )
    assert listed_ids(client.get("/messages?direction=outbound")) == [row.id]


def test_language_follows_user_then_browser(client, mailbox):
    assert "Log in" in client.get("/login").text
    german = client.get("/login", headers={"Accept-Language": "de-DE,de;q=0.9"})
    assert "Anmelden" in german.text and 'lang="de"' in german.text
    login(client, "bob@example.test")
    page = client.get("/messages", headers={"Accept-Language": "de"})
    assert "Messages" in page.text and 'lang="en"' in page.text


def test_journal_runs_inside_ums_serve(journal_app, mailbox):
    import threading
    import urllib.request

    from tests.conftest import free_port
    from ums_core.serve import Server

    port = free_port()
    journal_app.config.set("journal.listen", f"127.0.0.1:{port}")
    server = Server(journal_app)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        body = b""
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login") as r:
                    body = r.read()
                    break
            except OSError:
                threading.Event().wait(0.05)
        assert b'name="email"' in body and b'name="password"' in body
    finally:
        server.stopping.set()
        thread.join(20)
    assert not thread.is_alive()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2)


def test_ums_serve_without_journal_listen_serves_no_journal(journal_app, caplog):
    from ums_core.serve import Server

    caplog.set_level("INFO")
    journal_app.config.set("journal.listen", "")
    Server(journal_app).run(max_cycles=1)
    assert "journal off" in caplog.text


def test_journal_serve_refuses_in_mailserver_mode_without_archive(run, journal_app):
    run("config", "set", "mode", "mailserver")
    result = run("journal", "serve", "--listen", "127.0.0.1:1")
    assert result.exit_code == 1
    assert "local store is not active" in result.output


def test_queue_stays_empty(journal_app, mailbox):
    run_due_jobs(journal_app, should_stop=lambda: False)
    assert not db.Job.select().where(db.Job.state == "queued").exists()
