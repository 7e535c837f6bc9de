"""Passwords, info mails, templates and ``ums status``."""

import json
import os
import re

import pytest
from conftest import reopen, use_mailserver

from ums_core import db
from ums_core.queue import run_due_jobs
from ums_core.users import check_password

SINGLETONS = ("From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted")


def passwords_in(output):
    return [
        line[len("password: ") :]
        for line in output.splitlines()
        if line.startswith("password: ")
    ]


def instance_bytes(home):
    found = b""
    for folder, _, files in os.walk(home):
        for name in files:
            with open(os.path.join(folder, name), "rb") as handle:
                found += handle.read()
    return found


def test_users_add_with_info_mails_off_prints_password_once(run, home):
    result = run("users", "add", "alice@example.test", "--lang", "de")
    assert result.exit_code == 0
    [password] = passwords_in(result.stdout)
    assert len(password) >= 16 and "not mailed" in result.stdout
    app = reopen(home)
    assert check_password("alice@example.test", password) is not None
    assert check_password("alice@example.test", password + "x") is None
    assert db.Mail.select().count() == 0
    assert password.encode() not in instance_bytes(home)
    listed = run("users", "list", "--json").stdout
    assert password not in listed and "argon2" not in listed
    app.close()


def test_reset_password_makes_a_new_one_each_time(run, home):
    run("users", "add", "alice@example.test")
    first = passwords_in(run("users", "reset-password", "alice@example.test").stdout)
    second = passwords_in(run("users", "reset-password", "alice@example.test").stdout)
    assert first != second
    reopen(home)
    assert check_password("alice@example.test", first[0]) is None
    assert check_password("alice@example.test", second[0]) is not None


@pytest.fixture
def mail_home(home, smtp_sink):
    use_mailserver(
        home,
        smtp_sink,
        info_mails="true",
        system_sender="Fax-Dienst Müller <fax@example.test>",
    )
    return home


@pytest.mark.parametrize(
    "lang, subject",
    [
        ("de", "Ihr Passwort für den Fax- und Sprachnachrichtendienst"),
        ("en", "Your password for the fax and voice mail service"),
    ],
)
def test_password_mail_in_users_language_then_file_removed(
    run, mail_home, smtp_sink, lang, subject
):
    result = run("users", "add", "alice@example.test", "--lang", lang)
    assert "password mail queued" in result.stdout and not passwords_in(result.stdout)
    app = reopen(mail_home)
    run_due_jobs(app)
    [(_, rcpts, raw)] = smtp_sink.handler.messages
    [mail] = smtp_sink.handler.parsed()
    assert rcpts == ["alice@example.test"] and str(mail["Subject"]) == subject
    for name in SINGLETONS:
        assert len(mail.get_all(name, [])) == 1, name
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert mail["From"].addresses[0].display_name == "Fax-Dienst Müller"
    assert mail["Auto-Submitted"] == "auto-generated"
    body = mail.get_content()
    password = re.search(r"Passwor[dt]:\s+(\S+)", body)[1]
    assert check_password("alice@example.test", password) is not None
    assert password.encode() not in instance_bytes(mail_home)


def test_template_override_wins(run, mail_home, smtp_sink):
    with open(os.path.join(mail_home, "templates", "password.en.txt"), "w") as out:
        out.write("Custom text for {{ user.email }}: {{ password }}\n")
    run("users", "add", "alice@example.test", "--lang", "en")
    run_due_jobs(reopen(mail_home))
    [mail] = smtp_sink.handler.parsed()
    assert mail.get_content().startswith("Custom text for alice@example.test: ")
    listed = run("templates", "list").stdout
    assert "password.en.txt" in listed and "(overridden)" in listed


def test_infomail_explains_addresses(run, mail_home, smtp_sink):
    run("users", "add", "alice@example.test", "--fax", "+4989123456", "--lang", "de")
    result = run("users", "send-infomail", "alice@example.test")
    assert result.exit_code == 0 and "queued for 1" in result.stdout
    run_due_jobs(reopen(mail_home))
    infomail = smtp_sink.handler.parsed()[-1]
    body = infomail.get_content()
    assert "+4989123456@fax.example.test" in body and "089 123456" in body
    assert "FAX=" in body and "sms.example.test" in body


def test_infomail_with_info_mails_off_says_so(run):
    run("users", "add", "alice@example.test")
    result = run("users", "send-infomail", "--all")
    assert result.exit_code == 1 and "info mails are off" in result.stderr


def test_templates_show_and_preview(run):
    run("users", "add", "alice@example.test", "--lang", "de")
    shown = run("templates", "show", "password.de.txt")
    assert shown.exit_code == 0 and "{{ password }}" in shown.stdout
    run("config", "set", "info_mails", "true")
    refused = run("templates", "preview", "password", "--user", "alice@example.test")
    assert refused.exit_code == 1 and "system_sender is not set" in refused.stderr
    run("config", "set", "system_sender", "Fax <fax@example.test>")
    preview = run("templates", "preview", "password", "--user", "alice@example.test")
    assert preview.exit_code == 0 and "EXAMPLE-PASSWORD" in preview.stdout
    assert db.Mail.select().count() == 0
    assert run("templates", "show", "nope.txt").exit_code == 1


@pytest.mark.parametrize(
    "mode, expected",
    [
        (
            "local",
            {
                "archiving": (True, True),
                "sender_identification": (False, False),
                "remote_inquiry": (False, False),
            },
        ),
        (
            "mailserver",
            {
                "archiving": (True, False),
                "sender_identification": (True, True),
                "remote_inquiry": (True, False),
            },
        ),
    ],
)
def test_status_json_features(run, mode, expected):
    run("mode", mode)
    run("config", "set", "sender_identification", "true")
    run("config", "set", "directory.file", "contacts.csv")
    result = run("status", "--json", "--no-probe")
    assert result.exit_code == 0
    status = json.loads(result.stdout)
    for name, (available, enabled) in expected.items():
        assert status["features"][name] == {"available": available, "enabled": enabled}
    assert status["mode"] == mode and "local_store" in status["active_plugins"] or mode


def test_status_probes_the_mail_server(run, smtp_sink):
    run("config", "set", "smtp.host", "127.0.0.1")
    run("config", "set", "smtp.port", str(smtp_sink.port))
    status = json.loads(run("status", "--json").stdout)
    assert status["mail_server"]["state"] == "reachable"
    smtp_sink.stop()
    status = json.loads(run("status", "--json").stdout)
    assert status["mail_server"]["state"].startswith("unreachable")


def test_without_system_sender_no_mail_is_written_and_the_password_shown(run):
    run("config", "set", "info_mails", "true")
    result = run("users", "add", "alice@example.test")
    assert len(passwords_in(result.stdout)) == 1
    assert db.Mail.select().count() == 0


PREVIEW_KINDS = ["password", "infomail", "voicemail-welcome", "announcement-access"]


@pytest.mark.parametrize("lang", ["en", "de"])
@pytest.mark.parametrize("kind", PREVIEW_KINDS)
def test_every_info_mail_renders_in_both_languages(app, kind, lang):
    """Rendered, serialised for the wire and parsed back: headers, CRLF, encodings."""
    from email import message_from_bytes, policy

    from ums_core.numbers import SiteRules
    from ums_core.templates import PreviewContext
    from ums_core.users import add_user, to_model

    app.config.set("info_mails", "true")
    app.config.set("language", lang)
    app.config.set("system_sender", "Fax-Dienst Müller <fax@example.test>")
    app.config.set("announcement.number", "+4989123499")
    app.config.set("gateway.fax_domain", "fax.example.test")
    app.config.save()
    app = reopen(app)
    add_user(
        "jürgen@example.test".replace("ü", "u"),
        SiteRules(area_code="89"),
        "Jürgen <b>Groß</b>\r\nBcc: x@evil.test",
        lang,
        {"voice": ["+4989123458"]},
    )
    user = to_model(db.User.get())
    ctx = PreviewContext(app)
    events = {
        "password": (
            "ums_password_set",
            dict(user=user, password="pw-EXAMPLE", reason="new"),
        ),
        "infomail": ("ums_infomail_requested", dict(user=user)),
        "voicemail-welcome": (
            "ums_voicemail_created",
            dict(user=user, mailbox="+4989123458", pin="123456"),
        ),
        "announcement-access": (
            "ums_announcement_access_issued",
            dict(
                recipient=user.email,
                username="ann-1234",
                pin="654321",
                number="+4989123499",
            ),
        ),
    }
    event, values = events[kind]
    caller = getattr(app.pm.hook, event)
    for impl in caller.get_hookimpls():
        impl.function(*[{**values, "ctx": ctx}[n] for n in impl.argnames])
    [mail] = ctx.mails
    wire = mail.as_bytes(policy=policy.SMTP)
    assert b"\n" not in wire.replace(b"\r\n", b"") and wire.isascii()
    parsed = message_from_bytes(wire, policy=policy.default)
    for name in ("From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted"):
        assert len(parsed.get_all(name, [])) == 1, name
    assert parsed["Bcc"] is None
    assert [a.addr_spec for a in parsed["To"].addresses] == [user.email]
    assert parsed["From"].addresses[0].display_name == "Fax-Dienst Müller"
    body = parsed.get_body(("plain",)).get_content()
    german = any(word in body for word in ("Sie", "Ihr", "Hallo"))
    assert german == (lang == "de"), body
