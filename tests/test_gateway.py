"""The SMTP gateway with real smtplib clients: policy, senders, reports."""

import io
import os
import smtplib
from email.message import EmailMessage

import pytest
from conftest import CORPUS, corpus_path, free_port, reopen, use_mailserver
from pypdf import PdfReader

from ums_core import db
from ums_core.gateway.listener import Gateway
from ums_core.hookspecs import hookimpl
from ums_core.numbers import SiteRules
from ums_core.queue import run_due_jobs
from ums_core.users import add_user

RULES = SiteRules(country="DE", area_code="89")
FAX = "+4930555010@fax.example.test"


@pytest.fixture
def gateway_app(home, smtp_sink):
    port = free_port()
    use_mailserver(
        home,
        smtp_sink,
        gateway__listen=f"127.0.0.1:{port}",
        transmit__backend="simulation",
        simulation__fail="+4930999999",
        info_mails="true",
        gateway__max_size_mb="1",
    )
    app = reopen(home)
    add_user("alice@example.test", RULES, "Alice", "de", {"fax": ["+4989123456"]})
    add_user("bob@example.test", RULES, "Bob", "en", {"fax": ["+4989123400"]})
    gateway = Gateway(app)
    gateway.start()
    app.port = port
    yield app
    gateway.stop()
    app.close()


def client(app):
    return smtplib.SMTP("127.0.0.1", app.port, timeout=10)


def fax_mail(sender="alice@example.test", to=FAX, text="Bitte bestätigen.", **kw):
    mail = EmailMessage()
    mail["From"] = kw.get("from_header", sender)
    mail["To"] = to
    mail["Subject"] = kw.get("subject", "Bestellung")
    for name, value in kw.get("headers", {}).items():
        mail[name] = value
    mail.set_content(text)
    return mail


def send(app, mail, sender="alice@example.test", rcpts=(FAX,)):
    with client(app) as smtp:
        return smtp.send_message(mail, from_addr=sender, to_addrs=list(rcpts))


def outbound():
    return list(db.Message.select().where(db.Message.direction == "outbound"))


def test_relay_to_other_domain_is_refused(gateway_app):
    with client(gateway_app) as smtp:
        smtp.ehlo()
        smtp.mail("alice@example.test")
        code, reply = smtp.rcpt("someone@example.org")
    assert code == 550 and b"relaying denied" in reply.lower()
    assert outbound() == []


def test_client_outside_allowed_networks_is_refused(gateway_app):
    gateway_app.config.set("gateway.allowed_clients", "10.0.0.0/8")
    with client(gateway_app) as smtp:
        smtp.ehlo()
        code, reply = smtp.mail("alice@example.test")
    assert code == 550 and b"not allowed" in reply


def test_address_without_number_gets_550_with_reason(gateway_app):
    with client(gateway_app) as smtp:
        smtp.ehlo()
        smtp.mail("alice@example.test")
        code, reply = smtp.rcpt("info@fax.example.test")
    assert code == 550 and b"number" in reply


def test_known_sender_fax_is_committed_before_250_then_reported(gateway_app, smtp_sink):
    refused = send(
        gateway_app, fax_mail(), rcpts=[FAX, "FAX=+49(0)30-555011@fax.example.test"]
    )
    assert refused == {}
    rows = outbound()
    assert [(r.called, r.recipient, r.state) for r in rows] == [
        ("+4930555010", "alice@example.test", "received"),
        ("+4930555011", "alice@example.test", "received"),
    ]
    run_due_jobs(gateway_app)
    assert {db.Message.get_by_id(r.id).state for r in rows} == {"sent"}
    reports = smtp_sink.handler.parsed()
    assert len(reports) == 2
    report = reports[0]
    assert report["To"].addresses[0].addr_spec == "alice@example.test"
    assert str(report["Subject"]).startswith("Fax an 030 555010 gesendet")
    assert report["Auto-Submitted"] == "auto-generated"
    [pdf] = list(report.iter_attachments())
    assert len(PdfReader(io.BytesIO(pdf.get_content())).pages) == 1


def test_failed_number_gives_not_sent_report(gateway_app, smtp_sink):
    send(
        gateway_app,
        fax_mail(sender="bob@example.test"),
        sender="bob@example.test",
        rcpts=["+4930999999@fax.example.test"],
    )
    run_due_jobs(gateway_app)
    [row] = outbound()
    assert row.state == "failed" and "no answer" in row.error
    [report] = smtp_sink.handler.parsed()
    assert "NOT sent" in str(report["Subject"])
    assert "no answer" in report.get_body(("plain",)).get_content()


def test_unknown_sender_is_deleted_and_default_recipient_told(gateway_app, smtp_sink):
    send(gateway_app, fax_mail(sender="mallory@evil.test"), sender="mallory@evil.test")
    assert outbound() == []
    run_due_jobs(gateway_app)
    [notice] = smtp_sink.handler.parsed()
    assert [a.addr_spec for a in notice["To"].addresses] == ["fallback@example.test"]
    body = notice.get_content()
    assert "mallory@evil.test" in body and FAX in body and "Bestellung" in body
    assert all(
        rcpts != ["mallory@evil.test"] for _, rcpts, _ in smtp_sink.handler.messages
    )


def test_unknown_sender_without_info_mails_gets_no_notice(gateway_app, smtp_sink):
    gateway_app.config.set("info_mails", "false")
    gateway_app.config.save()
    app = reopen(gateway_app)
    gateway = Gateway(app)
    port = free_port()
    app.config.set("gateway.listen", f"127.0.0.1:{port}")
    gateway = Gateway(app)
    gateway.start()
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.send_message(
                fax_mail(sender="x@evil.test"), from_addr="x@evil.test", to_addrs=[FAX]
            )
        run_due_jobs(app)
    finally:
        gateway.stop()
    assert smtp_sink.handler.messages == [] and db.Mail.select().count() == 0


def test_forged_from_header_does_not_make_a_known_sender(gateway_app, smtp_sink):
    mail = fax_mail(sender="mallory@evil.test", from_header="alice@example.test")
    send(gateway_app, mail, sender="mallory@evil.test")
    assert outbound() == []


def test_from_header_is_used_on_trusted_connection(gateway_app):
    gateway_app.config.set("gateway.trusted_clients", "127.0.0.1/32")
    mail = fax_mail(
        sender="srs=alice@relay.test", from_header="Alice <alice@example.test>"
    )
    send(gateway_app, mail, sender="srs=alice@relay.test")
    [row] = outbound()
    assert row.recipient == "alice@example.test"


@pytest.mark.parametrize(
    "headers, sender",
    [
        ({"Auto-Submitted": "auto-replied"}, "alice@example.test"),
        ({"Precedence": "bulk"}, "alice@example.test"),
        ({}, ""),
    ],
)
def test_auto_replies_and_bounces_are_dropped(gateway_app, headers, sender):
    mail = fax_mail(headers=headers, text="Ich bin im Urlaub.")
    with client(gateway_app) as smtp:
        smtp.sendmail(sender, [FAX], mail.as_bytes())
    assert outbound() == []


def test_oversize_mail_gets_552(gateway_app):
    mail = fax_mail(text="x" * 70 + ("\n" + "y" * 70) * 20000)
    with pytest.raises(smtplib.SMTPException) as info:
        send(gateway_app, mail)
    assert "552" in str(info.value)
    assert outbound() == []


def test_docx_only_is_rejected_with_error_mail(gateway_app, smtp_sink):
    mail = fax_mail(text="")
    mail.add_attachment(
        b"PK\x03\x04 word",
        maintype="application",
        subtype="vnd.openxmlformats-officedocument.wordprocessingml.document",
        filename="Angebot.docx",
    )
    send(gateway_app, mail)
    run_due_jobs(gateway_app)
    [row] = outbound()
    assert row.state == "rejected"
    [error] = smtp_sink.handler.parsed()
    assert error["To"].addresses[0].addr_spec == "alice@example.test"
    assert "Angebot.docx" in error.get_content()
    body = error.get_content()  # alice reads German
    assert "Faxe können" in body and "Angebot.docx" in body and "abgelehnt" in body


def test_a_refused_sms_gets_sms_advice(gateway_app, smtp_sink):
    gateway_app.config.set("gateway.sms_domain", "sms.example.test")
    to = "+491701234567@sms.example.test"
    mail = fax_mail(to=to, text="lang " * 600)  # more segments than allowed
    send(gateway_app, mail, rcpts=[to])
    run_due_jobs(gateway_app)
    [row] = outbound()
    assert row.state == "rejected"
    [error] = smtp_sink.handler.parsed()
    body = error.get_content()
    assert "segments" in body or "Segment" in body
    assert "SMS" in body and "PDF" not in body and "TIFF" not in body


def test_sms_through_gateway_counts_segments(gateway_app, smtp_sink):
    gateway_app.config.set("gateway.sms_domain", "sms.example.test")
    mail = fax_mail(
        to="+491701234567@sms.example.test", text="Hallo Welt\n-- \nAlice\nACME"
    )
    send(gateway_app, mail, rcpts=["+491701234567@sms.example.test"])
    run_due_jobs(gateway_app)
    [row] = outbound()
    assert (row.kind, row.text, row.segments, row.state) == (
        "sms",
        "Hallo Welt",
        1,
        "sent",
    )


def test_local_mode_keeps_report_with_message(gateway_app, smtp_sink):
    gateway_app.config.set("mode", "local")
    send(gateway_app, fax_mail())
    run_due_jobs(gateway_app)
    [row] = outbound()
    assert (row.location, row.state, row.remote_station) == (
        "local",
        "sent",
        "SIMULATION",
    )
    assert smtp_sink.handler.messages == []


def test_outbox_backend_round_trip(gateway_app, smtp_sink):
    import json

    gateway_app.config.set("transmit.backend", "outbox")
    send(gateway_app, fax_mail())
    summary = run_due_jobs(gateway_app)
    assert summary.waiting == 1
    [row] = outbound()
    jobs = os.path.join(gateway_app.home, "outbox", "jobs")
    with open(os.path.join(jobs, f"ums-{row.id}.json")) as handle:
        job = json.load(handle)
    assert job["number"] == "+4930555010" and os.path.exists(
        os.path.join(jobs, job["document"])
    )
    results = os.path.join(gateway_app.home, "outbox", "results")
    with open(os.path.join(results, f"ums-{row.id}.json"), "w") as handle:
        json.dump(
            {
                "status": "sent",
                "pages": 1,
                "duration": 31,
                "attempts": 2,
                "remote_station": "+49 30 555010",
            },
            handle,
        )
    db.Job.update(due_at=db.db_now()).where(db.Job.kind == "transmit").execute()
    run_due_jobs(gateway_app)
    row = db.Message.get_by_id(row.id)
    assert (row.state, row.attempts, row.remote_station) == ("sent", 2, "+49 30 555010")
    assert os.listdir(jobs) == []


MAIL_DIR = os.path.join(CORPUS, "mail")
CORPUS_MAILS = (
    sorted(n for n in os.listdir(MAIL_DIR) if n.endswith(".eml"))
    if os.path.isdir(MAIL_DIR)
    else ["corpus-missing.eml"]
)


def crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


@pytest.mark.parametrize("name", CORPUS_MAILS)
def test_corpus_mail_to_fax_address_is_sent_dropped_or_explained(
    gateway_app, smtp_sink, name
):
    with open(corpus_path("mail", name), "rb") as handle:
        raw = crlf(handle.read())
    with client(gateway_app) as smtp:
        smtp.sendmail("alice@example.test", [FAX], raw)
    run_due_jobs(gateway_app)
    rows = outbound()
    if name.startswith("dsn-"):
        assert rows == [] and smtp_sink.handler.messages == []
        return
    [row] = rows
    [answer] = smtp_sink.handler.parsed()
    assert answer["To"].addresses[0].addr_spec == "alice@example.test"
    if row.state == "sent":
        [pdf] = list(answer.iter_attachments())
        assert len(PdfReader(io.BytesIO(pdf.get_content())).pages) == row.pages
    else:
        assert row.state == "rejected" and row.error
        assert "Not sent" in str(answer["Subject"]) or "Nicht" in str(answer["Subject"])


def test_outbox_retry_result_follows_schedule_then_fails(gateway_app, smtp_sink):
    import json

    gateway_app.config.set("transmit.backend", "outbox")
    gateway_app.config.set("retry.schedule", "0,0")
    gateway_app.config.set("transmit.poll", "1")
    send(gateway_app, fax_mail())
    [row] = outbound()
    results = os.path.join(gateway_app.home, "outbox", "results")
    for attempt in (1, 2, 3):
        db.Job.update(due_at=db.db_now()).where(db.Job.state == "queued").execute()
        run_due_jobs(gateway_app)
        os.makedirs(results, exist_ok=True)
        with open(os.path.join(results, f"ums-{row.id}.json"), "w") as handle:
            json.dump(
                {"status": "retry", "reason": "busy", "attempts": attempt}, handle
            )
    db.Job.update(due_at=db.db_now()).where(db.Job.state == "queued").execute()
    run_due_jobs(gateway_app)
    row = db.Message.get_by_id(row.id)
    assert row.state == "failed" and "busy" in row.error
    [report] = smtp_sink.handler.parsed()
    assert "NICHT gesendet" in str(report["Subject"])


class DocxConverter:
    """A converter plugin: turns .docx parts into a one-page PDF."""

    UMS_ROLE = "converter"

    def __init__(self):
        self.seen = []

    @hookimpl
    def ums_convert_document(self, data, content_type, filename, ctx):
        if not filename.endswith(".docx"):
            return None
        self.seen.append(filename)
        from PIL import Image

        out = io.BytesIO()
        Image.new("1", (1728, 2200), 1).save(out, "PDF", resolution=204)
        return out.getvalue()


def test_converter_extension_point_adds_types(gateway_app, smtp_sink):
    converter = DocxConverter()
    gateway_app.pm.register(converter, name="docx-converter")
    mail = fax_mail(text="Anbei das Angebot.")
    mail.add_attachment(
        b"PK\x03\x04 word",
        maintype="application",
        subtype="octet-stream",
        filename="Angebot.docx",
    )
    send(gateway_app, mail)
    run_due_jobs(gateway_app)
    [row] = outbound()
    assert converter.seen == ["Angebot.docx"]
    assert (row.state, row.pages) == ("sent", 2)


@pytest.fixture
def tls_gateway(home, smtp_sink, tmp_path):
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "gw.pem"))
    port = free_port()
    use_mailserver(
        home,
        smtp_sink,
        gateway__listen=f"127.0.0.1:{port}",
        gateway__allowed_clients="10.99.0.0/16",
        transmit__backend="simulation",
        gateway__tls_cert=str(tmp_path / "gw.pem"),
    )
    app = reopen(home)
    add_user("alice@example.test", RULES, "Alice", "de", {"fax": ["+4989123456"]})
    from ums_core.users import set_password

    set_password("alice@example.test", "correct horse battery")
    gateway = Gateway(app)
    gateway.start()
    context = __import__("ssl").create_default_context()
    ca.configure_trust(context)
    yield app, port, context
    gateway.stop()
    app.close()


def test_gateway_auth_over_starttls_identifies_the_login(tls_gateway):
    app, port, context = tls_gateway
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.starttls(context=context)
        smtp.login("alice@example.test", "correct horse battery")
        smtp.send_message(
            fax_mail(sender="whatever@elsewhere.test"),
            from_addr="whatever@elsewhere.test",
            to_addrs=[FAX],
        )
    [row] = outbound()
    assert row.recipient == "alice@example.test"


def test_gateway_auth_wrong_password_and_no_tls_are_refused(tls_gateway):
    app, port, context = tls_gateway
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.ehlo()
        assert not smtp.has_extn("auth")
        code, _ = smtp.mail("alice@example.test")
        assert code == 550
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.starttls(context=context)
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp.login("alice@example.test", "wrong")
    assert outbound() == []


def test_header_block_ends_at_the_first_blank_line():
    from ums_core.gateway.accept import header_block

    assert header_block(b"A: 1\r\nB: 2\r\n\r\nbody\n\nmore") == b"A: 1\r\nB: 2\r\n\r\n"
    assert header_block(b"A: 1\nB: 2\n\nbody\r\n\r\n") == b"A: 1\nB: 2\n\n"
    assert header_block(b"A: 1") == b"A: 1"


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b"Die Hasen und die Fr\xf6sche", "Die Hasen und die Frösche"),  # latin-1
        ("Grüße".encode(), "Grüße"),  # raw UTF-8
        (b"=?utf-8?q?Gr=C3=BC=C3=9Fe?=", "Grüße"),  # encoded word
        (b"=?utf-8?q?Gr=C3=BC=C3=9Fe?= caf\xe9", "Grüße café"),  # both
        (b"Die Hasen\r\n und die Fr\xf6sche", "Die Hasen und die Frösche"),  # folded
    ],
)
def test_a_raw_8bit_subject_is_read_as_sent(gateway_app, raw, expected):
    mail = (
        b"From: alice@example.test\r\nTo: " + FAX.encode() + b"\r\nSubject: " + raw
        + b"\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"\r\nBitte faxen.\r\n"
    )  # fmt: skip
    with client(gateway_app) as smtp:
        smtp.sendmail("alice@example.test", [FAX], mail)
    [row] = outbound()
    assert row.subject == expected
