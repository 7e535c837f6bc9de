"""The global announcement: access data mailed or shown, revoke, set, show."""

import json
import os
import re

import pytest
from conftest import reopen, stored_bytes, use_mailserver

from ums_core import db
from ums_core.announcement import check_access_login
from ums_core.cli import SUBCOMMANDS
from ums_core.queue import run_due_jobs
from ums_core.samples import write_wav

SUBCOMMANDS["announcement"] = "ums_core.cli.announcement_cmd:announcement_group"
SUBCOMMANDS["voicemail"] = "ums_core.cli.voicemail_cmd:voicemail_group"

HOLDER = "reception@example.test"
NUMBER = "+4989123499"


@pytest.fixture
def ann_home(home):
    config = reopen(home).config
    config.set("announcement.number", NUMBER)
    config.save()
    return home


def printed(result, name: str) -> str:
    [value] = re.findall(rf"^{name}: (\S+)$", result.stdout, flags=re.M)
    return value


def issue(run):
    result = run("announcement", "access", "--to", HOLDER)
    assert result.exit_code == 0, result.output
    return printed(result, "username"), printed(result, "pin")


def login(run, username, pin=None):
    return run("announcement", "login", username, *(["--pin", pin] if pin else []))


def wrong(pin: str) -> str:
    return f"{(int(pin) + 1) % 1_000_000:06d}"


def read_bytes(*paths) -> bytes:
    found = b""
    for path in paths:
        if os.path.exists(path):
            with open(path, "rb") as handle:
                found += handle.read()
    return found


def test_access_is_mailed_in_the_instance_language(ann_home, smtp_sink, run):
    use_mailserver(ann_home, smtp_sink, info_mails="true", language="de")
    result = run("announcement", "access", "--to", HOLDER)
    assert result.exit_code == 0, result.output
    assert "pin:" not in result.stdout and "username:" not in result.stdout
    app = reopen(ann_home)
    assert run_due_jobs(app).failed == 0
    [mail] = smtp_sink.handler.parsed()
    for name in ("From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted"):
        assert len(mail.get_all(name, [])) == 1, name
    assert mail["To"].addresses[0].addr_spec == HOLDER
    assert "Firmenansage" in mail["Subject"]
    body = mail.get_body().get_content().replace("\r\n", "\n")
    username = re.search(r"^Benutzername:\s+(ann-\d{4})$", body, flags=re.M)[1]
    pin = re.search(r"^PIN:\s+(\d{6})$", body, flags=re.M)[1]
    assert NUMBER in body
    assert check_access_login(app, username, pin).ok
    stored = stored_bytes(ann_home)
    assert stored and pin.encode() not in stored
    assert pin.encode() not in read_bytes(f"{ann_home}/log/ums.log")


def test_access_is_printed_when_info_mails_are_off(ann_home, run):
    result = run("announcement", "access", "--to", HOLDER)
    assert result.exit_code == 0, result.output
    username, pin = printed(result, "username"), printed(result, "pin")
    assert re.fullmatch(r"ann-\d{4}", username) and re.fullmatch(r"\d{6}", pin)
    assert any("not mailed" in line for line in result.stdout.splitlines())
    assert NUMBER in result.stdout
    reopen(ann_home)
    assert db.Mail.select().count() == 0
    ok = login(run, username, pin)
    assert (ok.exit_code, ok.stdout.strip()) == (0, f"ok: {HOLDER}")
    assert login(run, username.removeprefix("ann-"), pin).exit_code == 0
    assert pin.encode() not in read_bytes(f"{ann_home}/log/ums.log")


def test_access_needs_the_announcement_number(run):
    result = run("announcement", "access", "--to", HOLDER)
    assert result.exit_code == 1
    assert "announcement.number" in result.stderr


def test_access_is_no_user_login(ann_home, run):
    username, pin = issue(run)
    result = run("voicemail", "login", NUMBER, "--pin", pin)
    assert result.exit_code == 1
    assert db.User.select().count() == 0


def test_revoke_makes_login_fail(ann_home, run):
    username, pin = issue(run)
    assert login(run, username, pin).exit_code == 0
    result = run("announcement", "revoke")
    assert result.exit_code == 0 and "1" in result.stdout
    refused = login(run, username, pin)
    assert refused.exit_code == 1
    assert refused.stdout.strip() == "refused: unknown user name"


def test_new_access_replaces_the_holders_old_one(ann_home, run):
    old_name, old_pin = issue(run)
    new_name, new_pin = issue(run)
    assert login(run, new_name, new_pin).exit_code == 0
    if old_name != new_name:
        assert login(run, old_name, old_pin).exit_code == 1
    shown = json.loads(run("announcement", "show", "--json").stdout)
    assert [a["recipient"] for a in shown["access"]] == [HOLDER]


def test_login_locks_after_max_failures(ann_home, run):
    assert run("config", "set", "voicemail.max_failures", "2").exit_code == 0
    username, pin = issue(run)
    first = login(run, username, wrong(pin))
    assert first.stdout.strip() == "refused: wrong PIN (1 of 2)"
    assert login(run, username, wrong(pin)).exit_code == 1
    locked = login(run, username, pin)
    assert (locked.exit_code, locked.stdout.strip()) == (1, "refused: locked")
    assert run("announcement", "unlock", username).exit_code == 0
    assert login(run, username, pin).exit_code == 0


def test_set_stores_the_wav_and_replaces_the_previous(ann_home, run, tmp_path):
    first, second = tmp_path / "first.wav", tmp_path / "second.wav"
    write_wav(str(first), seconds=2.0)
    write_wav(str(second), seconds=3.0, encoding="alaw")
    assert run("announcement", "set", str(first)).exit_code == 0
    before = json.loads(run("announcement", "show", "--json").stdout)
    assert before["duration"] == pytest.approx(2.0, abs=0.1)
    assert before["file"].startswith(ann_home) and os.path.isfile(before["file"])
    result = run("announcement", "set", str(second))
    assert result.exit_code == 0, result.output
    after = json.loads(run("announcement", "show", "--json").stdout)
    assert after["duration"] == pytest.approx(3.0, abs=0.1)
    assert os.path.isfile(after["file"]) and not os.path.exists(before["file"])
    with open(after["file"], "rb") as stored, open(second, "rb") as source:
        assert stored.read() == source.read()


def test_set_with_a_bad_wav_replaces_nothing(ann_home, run, tmp_path):
    good, bad = tmp_path / "good.wav", tmp_path / "bad.wav"
    write_wav(str(good), seconds=2.0)
    bad.write_bytes(b"this is no audio at all\n")
    assert run("announcement", "set", str(good)).exit_code == 0
    before = json.loads(run("announcement", "show", "--json").stdout)
    result = run("announcement", "set", str(bad))
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: not a WAV file")
    assert "Traceback" not in result.output
    assert json.loads(run("announcement", "show", "--json").stdout) == before
    assert os.path.isfile(before["file"])
    area = os.path.join(ann_home, "announcement")
    assert sum(len(files) for _, _, files in os.walk(area)) == 1


def test_show_never_prints_the_pin(ann_home, run):
    empty = json.loads(run("announcement", "show", "--json").stdout)
    assert empty["file"] is None and empty["access_issued"] is False
    username, pin = issue(run)
    shown = run("announcement", "show", "--json")
    data = json.loads(shown.stdout)
    assert data["access_issued"] is True
    assert data["access"][0]["recipient"] == HOLDER
    text = run("announcement", "show")
    assert text.exit_code == 0 and HOLDER in text.stdout
    for output in (shown.stdout, text.stdout):
        assert pin not in output and "argon2" not in output
