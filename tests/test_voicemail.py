"""Voice mailboxes: welcome mail, the PIN shown once, the lock rule, inquiry."""

import json
import os
import re

import pytest
from conftest import reopen, stored_bytes, use_mailserver

from ums_core import db
from ums_core.app import App
from ums_core.cli import SUBCOMMANDS
from ums_core.intake import receive_message
from ums_core.model import IncomingMessage
from ums_core.queue import run_due_jobs
from ums_core.samples import write_wav
from ums_core.voicemail import check_login

SUBCOMMANDS["voicemail"] = "ums_core.cli.voicemail_cmd:voicemail_group"

ALICE = "alice@example.test"
MAILBOX = "+4989123457"
SINGLETONS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Auto-Submitted",
    "MIME-Version",
    "Content-Type",
)


def add_alice(run, lang="de", voice=True):
    numbers = ["--fax", "+4989123456"] + (["--voice", MAILBOX] if voice else [])
    args = ["users", "add", ALICE, "--name", "Alice Müller", "--lang", lang]
    result = run(*args, *numbers)
    assert result.exit_code == 0, result.output


def printed_pin(result) -> str:
    [pin] = re.findall(r"^pin: (\d{6})$", result.stdout, flags=re.M)
    return pin


def enable_alice(run, *options) -> str:
    result = run("voicemail", "enable", ALICE, *options)
    assert result.exit_code == 0, result.output
    return printed_pin(result)


def wrong(pin: str) -> str:
    return f"{(int(pin) + 1) % 1_000_000:06d}"


def login(run, pin=None, caller=None, number=MAILBOX):
    args = ["voicemail", "login", number]
    args += ["--pin", pin] if pin else []
    args += ["--from", caller] if caller else []
    return run(*args)


def body_of(mail) -> str:
    return mail.get_body().get_content().replace("\r\n", "\n")


def welcome_mail(sink):
    [mail] = [m for m in sink.handler.parsed() if "PIN" in body_of(m)]
    return mail


def mail_files(home) -> bytes:
    paths = [os.path.join(d, f) for d, _, fs in os.walk(f"{home}/mail") for f in fs]
    return read_bytes(*paths)


def read_bytes(*paths) -> bytes:
    found = b""
    for path in paths:
        if os.path.exists(path):
            with open(path, "rb") as handle:
                found += handle.read()
    return found


def assert_pin_kept_secret(home, pin):
    stored = stored_bytes(home)
    assert stored and pin.encode() not in stored
    log = read_bytes(f"{home}/log/ums.log")
    assert log and pin.encode() not in log


def test_enable_mails_german_welcome_with_pin(home, smtp_sink, run):
    use_mailserver(home, smtp_sink, info_mails="true", voicemail__number="089 1234-999")
    add_alice(run, lang="de")
    result = run("voicemail", "enable", ALICE)
    assert result.exit_code == 0, result.output
    assert "pin:" not in result.stdout and "queued" in result.stdout
    app = reopen(home)
    assert run_due_jobs(app).failed == 0
    mail = welcome_mail(smtp_sink)
    for name in SINGLETONS:
        assert len(mail.get_all(name, [])) == 1, name
    assert mail["To"].addresses[0].addr_spec == ALICE
    assert "Sprachbox" in mail["Subject"]
    body = body_of(mail)
    pin = re.search(r"^PIN:\s+(\d{6})$", body, flags=re.M)[1]
    assert MAILBOX in body and "089 1234-999" in body and "Ansagen" in body
    assert "journal" not in body.lower()
    assert check_login(app, MAILBOX, pin).ok
    assert_pin_kept_secret(home, pin)
    assert pin.encode() not in mail_files(home)


def test_welcome_mail_links_the_journal_when_archiving(home, smtp_sink, run):
    use_mailserver(
        home,
        smtp_sink,
        info_mails="true",
        archiving="true",
        journal__url="https://journal.example.test/",
    )
    add_alice(run, lang="en")
    assert run("voicemail", "enable", ALICE).exit_code == 0
    run_due_jobs(reopen(home))
    mail = welcome_mail(smtp_sink)
    body = body_of(mail)
    assert "https://journal.example.test/" in body
    assert "voice mailbox" in mail["Subject"]


def test_enable_info_mails_off_prints_pin_once(home, run):
    add_alice(run)
    result = run("voicemail", "enable", ALICE)
    assert result.exit_code == 0, result.output
    pin = printed_pin(result)
    assert result.stdout.count(pin) == 1
    assert any("not mailed" in line for line in result.stdout.splitlines())
    app = reopen(home)
    assert db.Mail.select().count() == 0
    assert check_login(app, MAILBOX, pin).ok
    assert_pin_kept_secret(home, pin)


def test_enable_without_voice_number_says_add_one(run):
    add_alice(run, voice=False)
    result = run("voicemail", "enable", ALICE)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and "--voice" in result.stderr


def test_enable_twice_is_refused(run):
    add_alice(run)
    enable_alice(run)
    again = run("voicemail", "enable", ALICE)
    assert again.exit_code == 1 and "reset-pin" in again.stderr


def test_lock_after_max_failures_until_unlock(run):
    assert run("config", "set", "voicemail.max_failures", "3").exit_code == 0
    add_alice(run)
    pin = enable_alice(run)
    for attempt in (1, 2, 3):
        result = login(run, wrong(pin))
        assert result.exit_code == 1
        assert result.stdout.strip() == f"refused: wrong PIN ({attempt} of 3)"
    locked = login(run, pin)
    assert (locked.exit_code, locked.stdout.strip()) == (1, "refused: locked")
    assert json.loads(run("voicemail", "status", "--json").stdout)[0]["locked"]
    assert run("voicemail", "unlock", ALICE).exit_code == 0
    ok = login(run, pin)
    assert (ok.exit_code, ok.stdout.strip()) == (0, f"ok: {ALICE}")


def test_right_pin_resets_the_count(run):
    assert run("config", "set", "voicemail.max_failures", "3").exit_code == 0
    add_alice(run)
    pin = enable_alice(run)
    login(run, wrong(pin))
    login(run, wrong(pin))
    assert login(run, pin).exit_code == 0
    login(run, wrong(pin))
    second = login(run, wrong(pin))
    assert second.stdout.strip() == "refused: wrong PIN (2 of 3)"
    assert login(run, pin).exit_code == 0


def test_trust_own_numbers_logs_in_without_pin(run):
    add_alice(run)
    pin = enable_alice(run, "--trust-own-numbers")
    assert login(run, caller="089 123456").exit_code == 0
    stranger = login(run, caller="+4930555010")
    assert stranger.exit_code == 1
    assert stranger.stdout.strip() == "refused: PIN required"
    assert login(run).exit_code == 1
    assert login(run, wrong(pin), caller="089 123456").exit_code == 1
    result = run("voicemail", "set", ALICE, "--no-trust-own-numbers")
    assert result.exit_code == 0, result.output
    assert login(run, caller="089 123456").exit_code == 1


def test_trust_is_off_by_default(run):
    add_alice(run)
    enable_alice(run)
    assert login(run, caller=MAILBOX).exit_code == 1
    assert run("voicemail", "set", ALICE, "--trust-own-numbers").exit_code == 0
    assert login(run, caller=MAILBOX).exit_code == 0


def test_status_never_shows_pin_or_hash(run):
    add_alice(run)
    pin = enable_alice(run, "--trust-own-numbers")
    shown = run("voicemail", "status", "--json")
    assert shown.exit_code == 0
    [box] = json.loads(shown.stdout)
    assert box["email"] == ALICE and box["number"] == MAILBOX
    assert box["trust_own_numbers"] and not box["locked"]
    text = run("voicemail", "status").stdout
    for output in (shown.stdout, text):
        assert pin not in output and "argon2" not in output
    assert MAILBOX in text and ALICE in text


def test_reset_pin_replaces_the_old_one_and_disable_removes(run):
    add_alice(run)
    old = enable_alice(run)
    result = run("voicemail", "reset-pin", ALICE)
    assert result.exit_code == 0, result.output
    new = printed_pin(result)
    if new != old:
        assert login(run, old).exit_code == 1
    assert login(run, new).exit_code == 0
    assert run("voicemail", "disable", ALICE).exit_code == 0
    gone = login(run, new)
    assert gone.exit_code == 1 and gone.stdout.startswith("refused: no mailbox")
    assert json.loads(run("voicemail", "status", "--json").stdout) == []


def receive_voice(home, tmp_path) -> int:
    path = tmp_path / "voice.wav"
    write_wav(str(path), seconds=1.5)
    app = reopen(home)
    incoming = IncomingMessage(
        kind="voice", called=MAILBOX, sender="+4930555010", content_path=str(path)
    )
    message_id = receive_message(app, incoming)
    run_due_jobs(app)
    return message_id


def test_remote_inquiry_refused_in_local_mode(home, run):
    assert run("config", "set", "remote_inquiry", "true").exit_code == 0
    add_alice(run)
    pin = enable_alice(run)
    result = run("voicemail", "messages", MAILBOX, "--pin", pin)
    assert result.exit_code == 1
    assert "not available in local mode" in result.stderr
    assert "Traceback" not in result.output


def test_remote_inquiry_lists_voice_messages(home, smtp_sink, run, tmp_path):
    use_mailserver(home, smtp_sink, remote_inquiry="true")
    add_alice(run)
    pin = enable_alice(run)
    message_id = receive_voice(home, tmp_path)
    result = run("voicemail", "messages", MAILBOX, "--pin", pin, "--json")
    assert result.exit_code == 0, result.output
    [message] = json.loads(result.stdout)
    assert message["id"] == message_id and message["caller"] == "+4930555010"
    assert message["duration"] == pytest.approx(1.5, abs=0.1)
    assert os.path.isfile(message["content_path"])
    assert message["received_at"]
    refused = run("voicemail", "messages", MAILBOX, "--pin", wrong(pin))
    assert refused.exit_code == 1
    assert refused.stdout.startswith("refused: wrong PIN (1 of ")


def test_remote_inquiry_refused_when_switched_off(home, smtp_sink, run):
    use_mailserver(home, smtp_sink)
    add_alice(run)
    pin = enable_alice(run)
    result = run("voicemail", "messages", MAILBOX, "--pin", pin)
    assert result.exit_code == 1 and "remote inquiry is switched off" in result.stderr


def test_schema_2_database_migrates_with_rows_intact(home, run):
    add_alice(run)
    enable_alice(run)
    app = App.open(home, load_plugins=False)
    for model in db.VOICE_MODELS:
        app.database.execute_sql(f'DROP TABLE "{model._meta.table_name}"')
    db.set_meta("schema_version", "2")
    app.close()
    again = App.open(home, load_plugins=False)
    assert db.read_schema_version(again.database) == db.SCHEMA_VERSION
    for model in db.VOICE_MODELS:
        assert again.database.table_exists(model._meta.table_name)
    assert [user.email for user in db.User.select()] == [ALICE]
    assert db.Number.select().count() == 2
    again.close()
    assert enable_alice(run)
