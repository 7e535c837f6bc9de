"""Regressions found by trying to break ums: poison input, leases, busy database."""

import json
import os
import sqlite3

import pytest
from click.testing import CliRunner

from ums_core import db
from ums_core.cli import cli
from ums_core.errors import BusyError, UmsError
from ums_core.hookspecs import hookimpl
from ums_core.intake import receive_message
from ums_core.model import IncomingMessage
from ums_core.numbers import SiteRules
from ums_core.queue import claim_jobs, release_dead_leases, run_due_jobs, start_job
from ums_core.spool import scan_spool, spool_folder, submit_to_spool
from ums_core.users import add_user


def write_entry(app, name, text):
    with open(os.path.join(spool_folder(app.home, "new"), name), "w") as handle:
        handle.write(text)


def test_poison_spool_entries_go_to_bad_and_the_rest_is_taken(app):
    app.config.set("timezone", "Europe/Berlin")
    write_entry(app, "a1.json", '{"kind":"sms","to":"+4930999","text":"x \\ud800 y"}')
    write_entry(app, "a2.json", "[" * 30000)
    write_entry(
        app,
        "a3.json",
        json.dumps(
            {
                "kind": "sms",
                "to": "+4930999",
                "text": "x",
                "received_at": "0001-01-01T00:00",
            }
        ),
    )
    os.mkdir(os.path.join(spool_folder(app.home, "new"), "a4.json"))
    os.mkfifo(os.path.join(spool_folder(app.home, "new"), "a5.json"))
    os.mkfifo(os.path.join(spool_folder(app.home, "new"), "a6.tif"))
    write_entry(app, "a6.json", '{"kind":"fax","to":"+4930999","content":"a6.tif"}')
    good = submit_to_spool(app.home, {"kind": "sms", "to": "+4930999", "text": "ok"})
    outcomes = {o.entry: o for o in scan_spool(app)}
    assert outcomes[good].message_id is not None
    for name in ("a1", "a2", "a3", "a4", "a5", "a6"):
        assert outcomes[name].message_id is None and outcomes[name].error, name
        assert os.path.exists(
            os.path.join(spool_folder(app.home, "bad"), f"{name}.json")
        )
    assert "surrogates" in outcomes["a1"].error
    assert "between 1990" in outcomes["a3"].error
    assert "regular file" in outcomes["a6"].error
    assert os.listdir(spool_folder(app.home, "new")) == []


def test_spool_refusal_moves_only_its_own_files(app, tmp_path):
    write_entry(app, "d01.json", '{"kind":"fax","to":"+4930999","content":"gone.tif"}')
    from ums_core.samples import write_fax_tiff

    fax = tmp_path / "f.tif"
    write_fax_tiff(str(fax), "second")
    os.replace(fax, os.path.join(spool_folder(app.home, "new"), "d01.second.tif"))
    write_entry(
        app,
        "d01.second.json",
        '{"kind":"fax","to":"+4930999","content":"d01.second.tif"}',
    )
    write_entry(app, "e01.json", '{"kind":"fux","to":"1","content":"other.wav"}')
    write_entry(app, "other.wav", "not audio")
    outcomes = {o.entry: o for o in scan_spool(app)}
    assert outcomes["d01.second"].message_id is not None
    assert sorted(os.listdir(spool_folder(app.home, "bad"))) == [
        "d01.json",
        "d01.reason.txt",
        "e01.json",
        "e01.reason.txt",
        "other.wav",
    ]


@pytest.mark.sqlite_only("SQLite's write lock and busy timeout")
def test_busy_database_refuses_cleanly_without_orphans(app, tmp_path):
    from ums_core.samples import write_fax_tiff

    fax = tmp_path / "f.tif"
    write_fax_tiff(str(fax), "busy")
    db.open_database(app.path("ums.db"), busy_seconds=0.2)
    blocker = sqlite3.connect(app.path("ums.db"))
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(BusyError, match="nothing was stored"):
            receive_message(
                app,
                IncomingMessage(kind="fax", called="+4930999", content_path=str(fax)),
            )
    finally:
        blocker.rollback()
        blocker.close()
    assert [f for _, _, fs in os.walk(app.path("content")) for f in fs] == []
    assert db.Message.select().count() == 0


class FailingPlugin:
    UMS_ROLE = "extension"

    @hookimpl
    def ums_message_received(self, message, ctx):
        raise RuntimeError("plugin bug")


def test_plugin_failing_in_an_event_does_not_fail_intake(app, caplog):
    app.pm.register(FailingPlugin(), name="failing")
    message_id = receive_message(
        app, IncomingMessage(kind="sms", called="+4930999", text="x")
    )
    assert db.Message.get_by_id(message_id).state == "stored"
    assert "plugin failing failed in ums_message_received" in caplog.text


def test_lost_lease_is_not_run(app):
    for text in ("a", "b"):
        receive_message(
            app,
            IncomingMessage(kind="sms", called="+4930999", text=text),
            run_now=False,
        )
    first, second = claim_jobs(app, 2)
    db.Job.update(lease_owner="other-node:1").where(db.Job.id == second.id).execute()
    assert start_job(app, first) is True
    assert start_job(app, second) is False


def lease_all_jobs_to(app, pid: int) -> None:
    """Lease every job to process PID of this host, for a long time."""
    host = app.node.rsplit(":", 1)[0]
    db.Job.update(
        state="running",
        lease_owner=f"{host}:{pid}",
        lease_expires=db.utcnow().replace(year=2100),
    ).execute()


def test_dead_process_leases_are_released(app):
    receive_message(
        app, IncomingMessage(kind="sms", called="+4930999", text="a"), run_now=False
    )
    lease_all_jobs_to(app, 999999999)
    assert release_dead_leases(app) == 1
    assert run_due_jobs(app).done == 1


def test_leases_of_a_killed_but_unreaped_process_are_released(app):
    import subprocess
    import sys
    import time

    receive_message(
        app, IncomingMessage(kind="sms", called="+4930999", text="a"), run_now=False
    )
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        child.kill()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(f"/proc/{child.pid}/stat") as stat:
                if stat.read().rpartition(")")[2].split()[0] == "Z":
                    break
            time.sleep(0.02)
        lease_all_jobs_to(app, child.pid)
        assert release_dead_leases(app) == 1
    finally:
        child.wait(10)


def test_stop_request_releases_claimed_jobs(app):
    for text in ("a", "b", "c"):
        receive_message(
            app,
            IncomingMessage(kind="sms", called="+4930999", text=text),
            run_now=False,
        )
    asked = []

    def stop_after_one():
        asked.append(1)
        return len(asked) > 2

    summary = run_due_jobs(app, should_stop=stop_after_one)
    assert summary.done == 1
    states = [job.state for job in db.Job.select().order_by(db.Job.id)]
    assert states == ["done", "queued", "queued"]


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00", "9999-12-31T23:30:00+00:00"])
def test_extreme_received_at_is_refused(app, when):
    import datetime as dt

    with pytest.raises(UmsError, match="between 1990"):
        receive_message(
            app,
            IncomingMessage(
                kind="sms",
                called="+4930999",
                text="x",
                received_at=dt.datetime.fromisoformat(when),
            ),
        )


def test_cli_stdin_not_utf8_is_one_line_error(run):
    result = run("receive", "sms", "--to", "+4930999", input=b"Gr\xfc\xdfe")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: the SMS text on stdin is not UTF-8")


def test_non_ascii_addresses_are_refused(app):
    with pytest.raises(UmsError, match="non-ASCII"):
        add_user("émile@exämple.test", SiteRules())
    with pytest.raises(UmsError, match="non-ASCII"):
        app.config.set("default_recipient", "bürö@example.test")


@pytest.mark.parametrize(
    "key, value",
    [
        ("smtp.timeout", "0"),
        ("spool.poll", "0"),
        ("smtp.port", "abc"),
    ],
)
def test_config_values_that_would_break_serving_are_refused(run, key, value):
    result = run("config", "set", key, value)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "invalid literal" not in result.stderr


def test_user_names_are_one_line(app):
    user = add_user("bob@example.test", SiteRules(), "Bob\r\nBcc: x@y" + "z" * 500)
    assert user.name.startswith("Bob Bcc: x@y") and len(user.name) == 200


def test_config_set_repairs_a_bad_value_in_the_file(home):
    path = os.path.join(home, "config.toml")
    with open(path) as handle:
        text = handle.read().replace('mode = "local"', 'mode = "weird"')
    with open(path, "w") as handle:
        handle.write(text)
    runner = CliRunner()
    assert runner.invoke(cli, ["--home", home, "mode"]).exit_code == 1
    result = runner.invoke(cli, ["--home", home, "config", "set", "mode", "local"])
    assert result.exit_code == 0, result.output


def gateway_envelope(app, rcpts, raw, sender="alice@example.test"):
    from ums_core.gateway.accept import Envelope
    from ums_core.gateway.addresses import parse_recipient

    app.config.set("gateway.fax_domain", "fax.example.test")
    destinations = tuple(
        parse_recipient(r, "fax.example.test", "", app.site_rules) for r in rcpts
    )
    return Envelope("127.0.0.1", False, sender, destinations, raw)


def simple_mail(message_id="<same@example.test>", body="Hallo", charset="utf-8"):
    return (
        f"From: alice@example.test\r\nSubject: x\r\nMessage-ID: {message_id}\r\n"
        f"Content-Type: text/plain; charset={charset}\r\n"
        f"Content-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n"
    ).encode("latin-1")


def test_gateway_keeps_each_subaddress_and_merges_only_true_retries(app):
    from ums_core.gateway.accept import accept_mail

    add_user("alice@example.test", SiteRules(area_code="89"))
    rcpts = [
        "FAX=+4930555021/T33S=12@fax.example.test",
        "FAX=+4930555021/T33S=34@fax.example.test",
    ]
    accept_mail(app, gateway_envelope(app, rcpts, simple_mail()))
    accept_mail(app, gateway_envelope(app, rcpts, simple_mail()))
    other = simple_mail(body="a different fax, same Message-ID")
    accept_mail(app, gateway_envelope(app, rcpts[:1], other))
    rows = list(db.Message.select().order_by(db.Message.id))
    assert [r.station_id for r in rows] == ["12", "34", "12"]
    eml = [f for _, _, fs in os.walk(app.path("content")) for f in fs]
    assert len(eml) == 2


def test_gateway_undecodable_charset_is_handled_not_crashed(app):
    from ums_core.gateway.accept import accept_mail

    add_user("alice@example.test", SiteRules(area_code="89"))
    app.config.set("transmit.backend", "simulation")
    raw = simple_mail(body="Sch\xf6ne Gr\xfc\xdfe", charset='"undefined"')
    accept_mail(app, gateway_envelope(app, ["+4930555010@fax.example.test"], raw))
    summary = run_due_jobs(app)
    row = db.Message.get()
    assert summary.retried == 0 and row.state in ("sent", "rejected")


def test_concurrent_wrong_pins_check_at_most_the_limit(app):
    import threading

    from ums_core.voicemail import check_login, enable_mailbox

    app.config.set("voicemail.max_failures", "3")
    add_user(
        "vera@example.test",
        SiteRules(area_code="89"),
        numbers={"voice": ["+4989800002"]},
    )
    enable_mailbox(app, "vera@example.test")
    results = []

    def attempt(n):
        results.append(check_login(app, "+4989800002", f"00000{n}"))
        app.database.close()

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    checked = [r for r in results if r.reason != "locked"]
    assert len(results) == 10 and len(checked) <= 3


def test_mailbox_does_not_outlive_its_number(app):
    from ums_core.voicemail import check_login, enable_mailbox

    add_user(
        "alice@example.test",
        SiteRules(area_code="89"),
        numbers={"voice": ["+4989500001"]},
    )
    issued = enable_mailbox(app, "alice@example.test")
    db.Number.delete().execute()
    add_user(
        "eve@example.test",
        SiteRules(area_code="89"),
        numbers={"voice": ["+4989500001"]},
    )
    with pytest.raises(UmsError, match="already has the voice mailbox"):
        enable_mailbox(app, "eve@example.test")
    assert not check_login(app, "+4989500001", issued.pin).ok


def test_broken_template_override_is_a_clear_error(run, home):
    with open(os.path.join(home, "templates", "password.en.txt"), "w") as out:
        out.write("Hello {{ user.email \n")
    run("config", "set", "info_mails", "true")
    run("config", "set", "system_sender", "Fax <fax@example.test>")
    run("users", "add", "bob@example.test", "--lang", "en")
    result = run("templates", "preview", "password", "--user", "bob@example.test")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.startswith("Error: template password.en.txt line")
    reset = run("users", "reset-password", "bob@example.test")
    assert "password: " in reset.stdout


def test_failed_secret_mail_leaves_no_password_on_disk(home, smtp_sink):
    from conftest import reopen, use_mailserver

    use_mailserver(home, smtp_sink, info_mails="true", retry__schedule="0")
    smtp_sink.handler.refuse["alice@example.test"] = "550 5.1.1 no such user"
    app = reopen(home)
    from ums_core.accounts import issue_password

    user = add_user("alice@example.test", SiteRules())
    assert issue_password(app, user, "new") is None
    mail_file = app.path(db.Mail.get().path)
    assert os.path.exists(mail_file)
    run_due_jobs(app)
    assert db.Mail.get().state == "failed" and not os.path.exists(mail_file)


@pytest.mark.parametrize(
    "key, value",
    [
        ("system_sender", "a@b.test, c@d.test"),
        ("voicemail.number", "garbage"),
        ("announcement.number", "call me"),
    ],
)
def test_more_bad_config_values_are_refused(run, key, value):
    assert run("config", "set", key, value).exit_code == 1


def test_empty_email_is_refused(run):
    result = run("users", "add", "")
    assert result.exit_code == 1 and "e-mail address is needed" in result.stderr


def test_export_refuses_a_special_file(run, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    result = run("users", "export", str(fifo), "--force")
    assert result.exit_code == 1 and "not a regular file" in result.stderr
    assert not fifo.is_file()


def test_status_wants_an_smtp_greeting(run):
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        run("config", "set", "smtp.host", "127.0.0.1")
        run("config", "set", "smtp.port", str(silent.getsockname()[1]))
        out = run("status", "--json")
    assert json.loads(out.stdout)["mail_server"]["state"].startswith("unreachable")


def test_same_source_committed_meanwhile_returns_that_message(app, monkeypatch):
    """Two importers racing on one file: the second gets the first's message."""
    first = receive_message(
        app,
        IncomingMessage(kind="sms", called="+4930999", text="x"),
        source_ref="race:1",
    )
    real = db.Message.get_or_none.__func__
    calls = []

    def miss_first_check(cls, *args, **kwargs):
        calls.append(1)
        return None if len(calls) == 1 else real(cls, *args, **kwargs)

    monkeypatch.setattr(db.Message, "get_or_none", classmethod(miss_first_check))
    again = receive_message(
        app,
        IncomingMessage(kind="sms", called="+4930999", text="x"),
        source_ref="race:1",
    )
    assert again == first and len(calls) == 2
    assert db.Message.select().count() == 1


@pytest.mark.parametrize("box", [(0, 0, 14400, 14400), (0, 0, -5, 0), (0, 0, 30, 30)])
def test_absurd_pdf_page_sizes_are_refused(box):
    import io as iolib
    from email.message import EmailMessage

    from pypdf import PdfWriter
    from pypdf.generic import RectangleObject

    from ums_core.gateway.document import build_fax_document

    writer = PdfWriter()
    page = writer.add_blank_page(width=595, height=842)
    page.mediabox = RectangleObject(box)
    out = iolib.BytesIO()
    writer.write(out)
    mail = EmailMessage()
    mail.set_content("Cover text")
    mail.add_attachment(
        out.getvalue(), maintype="application", subtype="pdf", filename="huge.pdf"
    )
    document = build_fax_document(mail)
    [refused] = [o for o in document.outcomes if o.action == "refused"]
    assert refused.name == "huge.pdf" and "inches" in refused.reason
