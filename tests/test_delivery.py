"""Mailserver mode: real e-mails to a real SMTP server on loopback."""

import io
import os

import peewee as pw
import pytest
from conftest import reopen, use_mailserver
from pypdf import PdfReader

from ums_core import db
from ums_core.intake import receive_message
from ums_core.model import IncomingMessage
from ums_core.numbers import SiteRules
from ums_core.queue import retry_job, run_due_jobs
from ums_core.samples import write_fax_tiff, write_wav
from ums_core.users import add_user

RULES = SiteRules(country="DE", area_code="89")
SINGLETONS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Message-Context",
    "Auto-Submitted",
    "MIME-Version",
    "Content-Type",
)


@pytest.fixture
def mail_app(home, smtp_sink):
    use_mailserver(home, smtp_sink)
    app = reopen(home)
    add_user(
        "alice@example.test",
        RULES,
        "Alice Müller",
        "de",
        {"fax": ["+4989123456"], "voice": ["+4989123457"], "sms": ["+4917012345"]},
    )
    add_user("bob@example.test", RULES, "Bob", "en", {"fax": ["+4989123400"]})
    yield app
    app.close()


def deliver(app, incoming):
    message_id = receive_message(app, incoming)
    summary = run_due_jobs(app)
    return db.Message.get_by_id(message_id), summary


def fax_file(tmp_path, pages=1):
    path = tmp_path / f"fax{pages}.tif"
    write_fax_tiff(str(path), "Bestellung", pages=pages)
    return str(path)


def assert_singletons(mail):
    for name in SINGLETONS:
        assert len(mail.get_all(name, [])) == 1, name


def test_fax_becomes_german_mail_with_pdf(mail_app, smtp_sink, tmp_path):
    incoming = IncomingMessage(
        kind="fax",
        called="+4989123456",
        sender="+4930555010",
        sender_name="Example GmbH",
        station_id="+49 30 555010",
        content_path=fax_file(tmp_path, pages=3),
    )
    row, summary = deliver(mail_app, incoming)
    assert (row.state, row.location, summary.failed) == ("delivered", "mailserver", 0)
    [(mail_from, rcpts, raw)] = smtp_sink.handler.messages
    assert rcpts == ["alice@example.test"] and b"\r\n" in raw
    [mail] = smtp_sink.handler.parsed()
    assert_singletons(mail)
    assert mail["From"].addresses[0].addr_spec == "+4930555010@fax.example.test"
    assert mail["From"].addresses[0].display_name == "Example GmbH"
    assert mail["To"].addresses[0].display_name == "Alice Müller"
    assert str(mail["Subject"]).startswith("Fax von Example GmbH (030 555010)")
    assert mail["Message-Context"] == "fax-message"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["Message-ID"] == db.Mail.get().msgid
    [pdf] = list(mail.iter_attachments())
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_filename().endswith(".pdf") and pdf.get_filename().isascii()
    assert len(PdfReader(io.BytesIO(pdf.get_content())).pages) == 3
    body = mail.get_body(("plain",)).get_content()
    assert "Seiten:      3" in body and "+0000 (UTC)" in body


def test_voice_mail_english_with_wav(mail_app, smtp_sink, tmp_path):
    mail_app.config.set("default_recipient", "bob@example.test")
    wav = tmp_path / "v.wav"
    write_wav(str(wav), seconds=2.0)
    incoming = IncomingMessage(
        kind="voice", called="+4989123400", sender="anonymous", content_path=str(wav)
    )
    row, _ = deliver(mail_app, incoming)
    [mail] = smtp_sink.handler.parsed()
    assert str(mail["Subject"]) == "Voice message from Unknown caller (0:02)"
    assert mail["From"].addresses[0].addr_spec == "ums@example.test"
    [audio] = list(mail.iter_attachments())
    assert audio.get_content_type() == "audio/wav"
    assert audio.get_content() == wav.read_bytes()


def test_sms_text_in_body_utf8(mail_app, smtp_sink):
    incoming = IncomingMessage(
        kind="sms",
        called="+4917012345",
        sender="+4930555010",
        text="Grüße 😀 <b>nicht fett</b>",
    )
    deliver(mail_app, incoming)
    [mail] = smtp_sink.handler.parsed()
    assert mail["From"].addresses[0].addr_spec == "+4930555010@sms.example.test"
    assert mail["Message-Context"] == "pager-message"
    assert "Grüße 😀 <b>nicht fett</b>" in mail.get_body(("plain",)).get_content()


def test_caller_name_with_crlf_cannot_add_header(mail_app, smtp_sink):
    incoming = IncomingMessage(
        kind="sms",
        called="+4917012345",
        sender="+4930555010",
        sender_name="Evil\r\nBcc: victim@example.test\r\nX-Injected: yes",
        text="x",
    )
    deliver(mail_app, incoming)
    [(_, rcpts, raw)] = smtp_sink.handler.messages
    [mail] = smtp_sink.handler.parsed()
    assert rcpts == ["alice@example.test"]
    assert mail["Bcc"] is None and mail["X-Injected"] is None
    assert b"\r\nX-Injected:" not in raw and b"\r\nBcc:" not in raw


@pytest.mark.parametrize(
    "fmt, types",
    [
        ("tiff", ["image/tiff"]),
        ("both", ["application/pdf", "image/tiff"]),
    ],
)
def test_fax_attachment_format(mail_app, smtp_sink, tmp_path, fmt, types):
    mail_app.config.set("fax.attachment_format", fmt)
    incoming = IncomingMessage(
        kind="fax", called="+4989123456", content_path=fax_file(tmp_path, 2)
    )
    deliver(mail_app, incoming)
    [mail] = smtp_sink.handler.parsed()
    assert [p.get_content_type() for p in mail.iter_attachments()] == types


def test_relay_down_then_up_gives_exactly_one_mail(mail_app, smtp_sink):
    smtp_sink.stop()
    incoming = IncomingMessage(kind="sms", called="+4917012345", text="retry me")
    row, summary = deliver(mail_app, incoming)
    assert (row.state, summary.retried, summary.failed) == ("queued", 1, 0)
    job = db.Job.get(db.Job.kind == "send_mail")
    assert job.state == "queued" and "Connection" in job.last_error
    smtp_sink.start()
    assert run_due_jobs(mail_app).done == 0
    retry_job(job.id)
    assert run_due_jobs(mail_app).done == 1
    assert run_due_jobs(mail_app).done == 0
    assert len(smtp_sink.handler.messages) == 1
    assert db.Message.get_by_id(row.id).state == "delivered"


def test_temporary_refusals_retry_then_fail_for_good(mail_app, smtp_sink):
    mail_app.config.set("retry.schedule", "0,0")
    smtp_sink.handler.data_reply = "451 4.3.0 try again later"
    incoming = IncomingMessage(kind="sms", called="+4917012345", text="x")
    row, summary = deliver(mail_app, incoming)
    job = db.Job.get(db.Job.kind == "send_mail")
    assert job.attempts == 3 and job.state == "failed"
    assert db.Message.get_by_id(row.id).state == "failed"


def test_permanent_refusal_fails_keeps_and_tells_default_recipient(
    mail_app, smtp_sink, tmp_path
):
    smtp_sink.handler.refuse["alice@example.test"] = "550 5.1.1 mailbox unknown"
    incoming = IncomingMessage(
        kind="fax",
        called="+4989123456",
        sender="+4930555010",
        content_path=fax_file(tmp_path),
    )
    row, summary = deliver(mail_app, incoming)
    row = db.Message.get_by_id(row.id)
    assert row.state == "failed" and "550" in row.error
    assert os.path.exists(mail_app.path(row.content_name))
    notice = db.Mail.get(db.Mail.purpose == "notice")
    assert notice.recipients == "fallback@example.test" and notice.state == "sent"
    [mail] = smtp_sink.handler.parsed()
    assert mail["To"].addresses[0].addr_spec == "fallback@example.test"
    assert f"message {row.id}" in str(mail["Subject"]) and "550" in mail.get_content()


def test_mode_switch_moves_nothing(mail_app, smtp_sink, tmp_path):
    first, _ = deliver(
        mail_app, IncomingMessage(kind="sms", called="+4917012345", text="a")
    )
    mail_app.config.set("mode", "local")
    mail_app.config.save()
    local_app = reopen(mail_app)
    second, _ = deliver(
        local_app, IncomingMessage(kind="sms", called="+4917012345", text="b")
    )
    assert db.Message.get_by_id(first.id).location == "mailserver"
    assert db.Message.get_by_id(first.id).state == "delivered"
    assert (second.location, second.state) == ("local", "stored")
    assert len(smtp_sink.handler.messages) == 1


def test_archiving_keeps_local_copy_in_mailserver_mode(home, smtp_sink):
    use_mailserver(home, smtp_sink, archiving="true")
    app = reopen(home)
    row, _ = deliver(app, IncomingMessage(kind="sms", called="+4917012345", text="a"))
    assert row.archive_ref and row.state == "delivered"


def test_held_message_is_routed_after_default_recipient_is_set(mail_app, smtp_sink):
    mail_app.config.set("default_recipient", "")
    row, summary = deliver(
        mail_app, IncomingMessage(kind="sms", called="+4930999", text="?")
    )
    assert summary.failed == 0 and db.Message.get_by_id(row.id).state == "held"
    mail_app.config.set("default_recipient", "ops@example.test")
    retry_job(db.Job.get(db.Job.message == row.id).id)
    run_due_jobs(mail_app)
    assert db.Message.get_by_id(row.id).state == "delivered"
    assert smtp_sink.handler.messages[0][1] == ["ops@example.test"]


def test_stable_message_id_on_resend(mail_app, smtp_sink):
    """A mail sent again after a crash carries the same Message-ID."""
    deliver(mail_app, IncomingMessage(kind="sms", called="+4917012345", text="a"))
    job = db.Job.get(db.Job.kind == "send_mail")
    db.Job.update(state="running", lease_expires=db.utcnow()).where(
        db.Job.id == job.id
    ).execute()
    run_due_jobs(mail_app)
    ids = [m["Message-ID"] for m in smtp_sink.handler.parsed()]
    assert len(ids) == 2 and ids[0] == ids[1]


def test_a_failed_record_after_250_is_retried_not_resent(
    mail_app, smtp_sink, monkeypatch
):
    from ums_core import delivery

    real_mark = delivery._mark_sent
    failures = []

    def mark_once_failing(app, job, mail_row):
        if not failures:
            failures.append(mail_row.id)
            raise pw.OperationalError("database or disk is full")
        real_mark(app, job, mail_row)

    monkeypatch.setattr(delivery, "_mark_sent", mark_once_failing)
    monkeypatch.setattr(delivery.time, "sleep", lambda seconds: None)
    incoming = IncomingMessage(kind="sms", called="+4917012345", text="einmal")
    row, _ = deliver(mail_app, incoming)
    run_due_jobs(mail_app)
    assert failures and row.state == "delivered"
    assert len(smtp_sink.handler.messages) == 1
    assert db.Mail.get_by_id(failures[0]).state == "sent"
