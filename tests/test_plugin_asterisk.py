"""The ums-asterisk plugin: reading an Asterisk voicemail spool into ums."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import corpus_path, reopen
from ums_asterisk import importer
from ums_asterisk.metadata import InfoError, parse_callerid, read_info
from ums_asterisk.settings import parse_map

from ums_core import db
from ums_core.errors import BusyError
from ums_core.numbers import SiteRules
from ums_core.samples import write_wav
from ums_core.users import add_user

ALICE_VOICE = "+4989123457"
ORIGTIME = 1764836100  # 2025-12-04 08:15:00 UTC
MAP = ("--map", f"default/8001={ALICE_VOICE}")


@pytest.fixture
def alice(app):
    return add_user(
        "alice@example.test",
        SiteRules(country="DE", area_code="89"),
        "Alice",
        "en",
        {"voice": [ALICE_VOICE]},
    )


@pytest.fixture
def spool(tmp_path):
    root = tmp_path / "voicemail"
    root.mkdir()
    return root


def info_text(**fields) -> str:
    """Return a message file as Asterisk writes it, FIELDS replacing defaults."""
    values = {
        "origmailbox": "8001",
        "context": "from-internal",
        "exten": "8001",
        "callerchan": "SIP/trunk-00000007",
        "callerid": '"Bob Example" <030555010>',
        "origdate": "Thu Dec  4 08:15:00 AM UTC 2025",
        "origtime": str(ORIGTIME),
        "msg_id": f"{ORIGTIME}-00000001",
        "duration": "3",
    }
    values.update(fields)
    body = "".join(f"{k}={v}\n" for k, v in values.items() if v is not None)
    return ";\n; Message Information file\n;\n[message]\n" + body


def add_message(spool, mailbox="8001", stem="msg0000", text=None, audio="wav"):
    """Put a message into SPOOL/default/MAILBOX/INBOX; return the folder."""
    inbox = spool / "default" / mailbox / "INBOX"
    inbox.mkdir(parents=True, exist_ok=True)
    if audio == "wav":
        write_wav(str(inbox / f"{stem}.wav"), seconds=3.0)
    elif audio is not None:
        (inbox / f"{stem}{audio[0]}").write_bytes(audio[1])
    # Like Asterisk: the message file comes last, renamed into place.
    (spool / "tmp.txt").write_text(info_text() if text is None else text)
    os.rename(spool / "tmp.txt", inbox / f"{stem}.txt")
    return inbox


def only_message():
    rows = list(db.Message.select())
    assert len(rows) == 1
    return rows[0]


def tree(folder) -> dict[str, str]:
    """Return every file under FOLDER with the SHA-256 of its bytes."""
    found = {}
    for path, _, names in os.walk(folder):
        for name in names:
            with open(os.path.join(path, name), "rb") as handle:
                found[os.path.join(path, name)] = hashlib.sha256(
                    handle.read()
                ).hexdigest()
    return found


# The corpus spool -------------------------------------------------------------


def test_corpus_metadata_is_parsed():
    path = corpus_path("asterisk-spool", "voicemail", "default", "8000", "INBOX")
    info = read_info(os.path.join(path, "msg0000.txt"))
    assert (info.caller_name, info.caller_number) == ("Alice", "1001")
    assert info.received_at == dt.datetime(2024, 8, 19, 22, 49, 10, tzinfo=dt.UTC)
    assert (info.duration, info.origmailbox, info.context) == (19, "8000", "default")
    assert info.msg_id == "1724107750-00000001"


def test_corpus_zero_length_message_is_parsed():
    path = corpus_path("asterisk-spool", "voicemail", "default", "8001", "INBOX")
    info = read_info(os.path.join(path, "msg0002.txt"))
    assert (info.caller_name, info.caller_number, info.duration) == ("Bob", "1002", 0)


def test_corpus_placeholder_recordings_are_refused_and_kept(run, home, tmp_path):
    root = corpus_path("asterisk-spool", "voicemail")
    before = tree(root)
    result = run(
        "config", "set", "asterisk.map", "default/8000=+4989123456,default/8001=8001"
    )
    assert result.exit_code == 0
    run("config", "set", "asterisk.after", "move")
    run("config", "set", "asterisk.done_dir", str(tmp_path / "done"))
    result = run("asterisk", "import", root)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "refused default/8000/msg0000: msg0000.wav: not a WAV file: this is a text file"
    )
    assert [line.split(":")[0] for line in lines[1:]] == [
        f"refused default/8001/msg000{n}" for n in range(3)
    ]
    assert tree(root) == before
    assert not (tmp_path / "done").exists()
    reopen(home)
    assert db.Message.select().count() == 0


# Importing a spool with real recordings ----------------------------------------


def test_spool_imports_caller_time_duration_and_recipient(run, home, alice, spool):
    add_message(spool)
    result = run("asterisk", "import", str(spool), *MAP)
    assert result.exit_code == 0, result.output
    assert result.stdout == "imported default/8001/msg0000 as message 1\n"
    reopen(home)
    row = only_message()
    assert (row.kind, row.sender, row.sender_name) == (
        "voice",
        "+4930555010",
        "Bob Example",
    )
    assert row.received_at == dt.datetime(2025, 12, 4, 8, 15, tzinfo=dt.UTC)
    assert row.duration == pytest.approx(3.0, abs=0.05)
    assert (row.called, row.recipient) == (ALICE_VOICE, "alice@example.test")
    assert row.source_ref == f"asterisk:default/8001/{ORIGTIME}-00000001"
    assert row.state == "stored"
    assert (spool / "default/8001/INBOX/msg0000.wav").exists()


def test_repeat_is_skipped(run, home, alice, spool):
    add_message(spool)
    assert run("asterisk", "import", str(spool), *MAP).exit_code == 0
    again = run("asterisk", "import", str(spool), *MAP)
    assert again.exit_code == 0
    assert again.stdout == (
        "skipped default/8001/msg0000: already received as message 1\n"
    )
    reopen(home)
    assert db.Message.select().count() == 1


def test_renumbered_message_is_recognised_by_msg_id(run, home, alice, spool):
    inbox = add_message(spool, stem="msg0003")
    assert run("asterisk", "import", str(spool), *MAP).exit_code == 0
    for suffix in (".txt", ".wav"):
        os.rename(inbox / f"msg0003{suffix}", inbox / f"msg0000{suffix}")
    again = run("asterisk", "import", str(spool), *MAP)
    assert "already received as message 1" in again.stdout


def test_without_msg_id_the_name_and_origtime_recognise_it(run, home, alice, spool):
    add_message(spool, text=info_text(msg_id=None))
    assert run("asterisk", "import", str(spool), *MAP).exit_code == 0
    reopen(home)
    assert only_message().source_ref == f"asterisk:default/8001/msg0000-{ORIGTIME}"


def test_unmapped_mailbox_is_skipped_and_kept(run, home, alice, spool):
    inbox = add_message(spool, mailbox="8002")
    result = run("asterisk", "import", str(spool), *MAP)
    assert result.exit_code == 0
    assert result.stdout == (
        "skipped default/8002/msg0000: mailbox default/8002 is not mapped\n"
    )
    assert sorted(os.listdir(inbox)) == ["msg0000.txt", "msg0000.wav"]


def test_map_comes_from_config(run, home, alice, spool):
    add_message(spool)
    result = run("config", "set", "asterisk.map", f"default/8001={ALICE_VOICE}")
    assert result.exit_code == 0
    assert run("config", "set", "asterisk.spool", str(spool)).exit_code == 0
    result = run("asterisk", "import")
    assert result.stdout == "imported default/8001/msg0000 as message 1\n"


@pytest.mark.parametrize(
    "value", ["8001=+4989123457", "default/8001", "default/../x=+49", "a/b=+49,a/b=+1"]
)
def test_bad_map_is_refused(run, value):
    result = run("config", "set", "asterisk.map", value)
    assert result.exit_code == 1 and "asterisk.map" in result.output
    assert run("asterisk", "import", ".", "--map", value).exit_code == 2


def test_map_entries_are_normalised():
    assert parse_map("default/8002 = +49 89 1, default/8001=8001") == [
        "default/8001=8001",
        "default/8002=+49 89 1",
    ]


def test_wav_is_taken_when_gsm_and_wav49_are_there(run, home, alice, spool):
    inbox = add_message(spool, audio="wav")
    (inbox / "msg0000.gsm").write_bytes(b"\xd8" * 330)
    (inbox / "msg0000.WAV").write_bytes(b"not this one")
    run("config", "set", "asterisk.after", "delete")
    result = run("asterisk", "import", str(spool), *MAP)
    assert result.exit_code == 0, result.output
    assert os.listdir(inbox) == []


def test_gsm_only_is_refused_with_the_fix(run, home, alice, spool):
    inbox = add_message(spool, audio=(".gsm", b"\xd8" * 330))
    result = run("asterisk", "import", str(spool), *MAP)
    assert result.exit_code == 1
    assert result.stdout == (
        "refused default/8001/msg0000: only the raw GSM recording msg0000.gsm is "
        "there; ums takes WAV (add wav to format= in voicemail.conf)\n"
    )
    assert sorted(os.listdir(inbox)) == ["msg0000.gsm", "msg0000.txt"]


@pytest.mark.parametrize(
    "audio, reason",
    [
        ((".wav", b""), "msg0000.wav: not a WAV file: file is empty"),
        ((".wav", b"RIFF"), "RIFF header truncated"),
        (None, "no recording: msg0000.wav is missing"),
    ],
)
def test_broken_recording_is_refused_and_kept(run, home, alice, spool, audio, reason):
    inbox = add_message(spool, audio=audio)
    before = tree(inbox)
    result = run("asterisk", "import", str(spool), *MAP)
    assert result.exit_code == 1
    assert result.stdout.startswith("refused default/8001/msg0000: ")
    assert reason in result.stdout
    assert tree(inbox) == before


# What happens to the spool files -----------------------------------------------


def test_after_move_moves_only_after_commit(run, home, alice, spool, tmp_path):
    inbox = add_message(spool)
    done = tmp_path / "done"
    run("config", "set", "asterisk.after", "move")
    run("config", "set", "asterisk.done_dir", str(done))
    result = run("asterisk", "import", str(spool), *MAP)
    assert result.stdout == "imported default/8001/msg0000 as message 1\n"
    assert os.listdir(inbox) == []
    assert sorted(os.listdir(done / "default" / "8001")) == [
        "msg0000.txt",
        "msg0000.wav",
    ]
    add_message(spool, text=info_text(msg_id=f"{ORIGTIME}-00000002"))
    run("asterisk", "import", str(spool), *MAP)
    assert "msg0000.1.wav" in os.listdir(done / "default" / "8001")


def test_after_delete_removes_the_files(run, home, alice, spool):
    inbox = add_message(spool)
    run("config", "set", "asterisk.after", "delete")
    assert run("asterisk", "import", str(spool), *MAP).exit_code == 0
    assert os.listdir(inbox) == []
    reopen(home)
    assert os.path.exists(os.path.join(home, only_message().content_name))


def test_after_move_needs_a_done_dir(run, home, alice, spool):
    add_message(spool)
    run("config", "set", "asterisk.after", "move")
    result = run("asterisk", "import", str(spool), *MAP)
    assert result.exit_code == 1
    assert "asterisk.done_dir is not set" in result.output


@pytest.mark.parametrize("after", ["move", "delete"])
def test_failed_commit_moves_nothing(run, home, alice, spool, tmp_path, after):
    """A bad number, a broken WAV or a busy database: the files stay put."""
    good = add_message(spool, mailbox="8001", audio=(".wav", b"RIFF\0\0"))
    bad_number = add_message(spool, mailbox="8003")
    before = tree(spool)
    run("config", "set", "asterisk.after", after)
    run("config", "set", "asterisk.done_dir", str(tmp_path / "done"))
    result = run("asterisk", "import", str(spool), *MAP, "--map", "default/8003=+0")
    assert result.exit_code == 1
    assert "refused default/8001/msg0000: msg0000.wav: not a WAV file" in result.stdout
    assert "refused default/8003/msg0000: bad called number" in result.stdout
    assert tree(spool) == before and not (tmp_path / "done").exists()
    assert good.exists() and bad_number.exists()


def test_busy_database_moves_nothing(run, home, alice, spool, monkeypatch):
    inbox = add_message(spool)
    run("config", "set", "asterisk.after", "delete")

    def busy(*args, **kwargs):
        raise BusyError("the database is busy (locked); nothing was stored")

    monkeypatch.setattr(importer, "receive_message", busy)
    result = run("asterisk", "import", str(spool), *MAP)
    assert result.exit_code == 1 and "database is busy" in result.stdout
    assert sorted(os.listdir(inbox)) == ["msg0000.txt", "msg0000.wav"]


def test_already_received_message_is_put_away(run, home, alice, spool):
    inbox = add_message(spool)
    assert run("asterisk", "import", str(spool), *MAP).exit_code == 0
    run("config", "set", "asterisk.after", "delete")
    again = run("asterisk", "import", str(spool), *MAP)
    assert "already received as message 1" in again.stdout
    assert os.listdir(inbox) == []


# externnotify ------------------------------------------------------------------


def test_notify_imports_that_mailbox_only(run, home, alice, spool):
    add_message(spool, mailbox="8001")
    other = add_message(spool, mailbox="8002")
    run("config", "set", "asterisk.spool", str(spool))
    run("config", "set", "asterisk.after", "delete")
    mapped = ("--map", "default/8002=+4989123458")
    result = run("asterisk", "notify", "default", "8001", "1", "0", "0", *MAP, *mapped)
    assert result.exit_code == 0, result.output
    assert result.stdout == "imported default/8001/msg0000 as message 1\n"
    assert sorted(os.listdir(other)) == ["msg0000.txt", "msg0000.wav"]


def test_notify_takes_old_style_arguments_and_empty_mailbox(run, home, spool):
    (spool / "default" / "8001" / "INBOX").mkdir(parents=True)
    result = run("asterisk", "notify", "default", "8001", "2", "--spool", str(spool))
    assert (result.exit_code, result.stdout) == (0, "")


@pytest.mark.parametrize("context, mailbox", [("..", "8001"), ("default", "../x")])
def test_notify_refuses_paths_outside_the_spool(run, spool, context, mailbox):
    result = run("asterisk", "notify", context, mailbox, "--spool", str(spool))
    assert result.exit_code == 2 and "is not a voicemail" in result.output


def test_missing_spool_is_an_error(run, tmp_path):
    result = run(
        "asterisk", "notify", "default", "8001", "--spool", str(tmp_path / "x")
    )
    assert result.exit_code == 1
    assert "no Asterisk voicemail spool" in result.output


def test_plugin_is_listed_as_intake(run):
    listed = run("plugins", "list").stdout
    line = next(x for x in listed.splitlines() if x.startswith("asterisk "))
    assert "intake" in line and "active" in line


# Hostile message files -----------------------------------------------------------


@pytest.mark.parametrize(
    "text, reason",
    [
        (info_text(callerid='"Eve\rorigtime=1" <1>'), "line 9 has a control char"),
        (info_text(callerid='"Eve\norigmailbox=9999" <1>'), "origmailbox appears tw"),
        (info_text(callerid='"Eve\nflag=Urgent" <1>'), "callerid '\"Eve' is malf"),
        (info_text(callerid='"Eve\nx" <1>'), "line 10 is not key=value"),
        (info_text(exten="1\0"), "line 7 has a control character (NUL)"),
        (info_text() + "callerid=Mallory <666>\n", "callerid appears twice"),
        (info_text() + "x" * 70000, "larger than 64 KiB"),
        (info_text(callerid=None), "callerid is missing"),
        (info_text(origtime=None, origdate=None), "neither origtime nor origdate"),
        (info_text(origtime="yesterday"), "origtime 'yesterday' is not a time"),
        (info_text(origtime="99999999999"), "between 1990 and tomorrow"),
        (info_text(origtime="-5"), "is not a time in seconds"),
        (info_text(origtime=None, origdate="soon"), "origdate 'soon' is not a date"),
        (info_text(duration="3s"), "duration '3s' is not a whole number"),
        (info_text(msg_id="../../x"), "msg_id '../../x' is not"),
        (info_text(callerid='"Eve <1>'), "is malformed"),
        ("callerid=Eve <1>\n", "line 1 comes before the [message] section"),
        ("", "it has no [message] section"),
    ],
)
def test_hostile_message_file_is_refused(run, home, alice, spool, text, reason):
    inbox = add_message(spool, text=text)
    before = tree(inbox)
    run("config", "set", "asterisk.after", "delete")
    result = run("asterisk", "import", str(spool), *MAP)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 1
    assert result.stdout.startswith("refused default/8001/msg0000: ")
    assert reason in result.stdout and len(result.stdout.splitlines()) == 1
    assert tree(inbox) == before


def test_latin1_message_file_is_read(run, home, alice, spool):
    add_message(spool, text=info_text(callerid='"M\xfcller" <1>'))
    path = spool / "default/8001/INBOX/msg0000.txt"
    path.write_bytes(path.read_text().encode("latin-1"))
    assert run("asterisk", "import", str(spool), *MAP).exit_code == 0
    reopen(home)
    assert only_message().sender_name == "Müller"


def test_message_file_that_is_a_link_is_refused(run, home, alice, spool, tmp_path):
    inbox = add_message(spool)
    (tmp_path / "elsewhere.txt").write_text(info_text())
    os.unlink(inbox / "msg0000.txt")
    os.symlink(tmp_path / "elsewhere.txt", inbox / "msg0000.txt")
    result = run("asterisk", "import", str(spool), *MAP)
    assert "msg0000.txt is not a regular file" in result.stdout


# Parsing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ('"Alice" <1001>', ("Alice", "1001")),
        ('"Dr. \\"Bob\\" B." <+49 30 555010>', ('Dr. "Bob" B.', "+49 30 555010")),
        ("Alice <1001>", ("Alice", "1001")),
        ("<1001>", ("", "1001")),
        ("+4930555010", ("", "+4930555010")),
        ("Reception", ("Reception", None)),
        ("Unknown", ("", None)),
        ('"Unknown" <Unknown>', ("", None)),
        ('"Carol" <>', ("Carol", None)),
        ("", ("", None)),
    ],
)
def test_callerid_forms(text, expected):
    assert parse_callerid(text) == expected


def test_origdate_is_used_without_origtime(run, home, alice, spool):
    add_message(spool, text=info_text(origtime=None))
    assert run("asterisk", "import", str(spool), *MAP).exit_code == 0
    reopen(home)
    assert only_message().received_at == dt.datetime(2025, 12, 4, 8, 15, tzinfo=dt.UTC)


def test_origdate_in_a_local_zone_is_read_in_the_instance_zone(tmp_path):
    path = tmp_path / "msg0000.txt"
    path.write_text(
        info_text(origtime=None, origdate="Thu Dec  4 09:15:00 PM CET 2025")
    )
    assert read_info(str(path)).received_at == dt.datetime(2025, 12, 4, 21, 15)


def test_withheld_caller_is_stored_without_number(run, home, alice, spool):
    add_message(spool, text=info_text(callerid="Unknown"))
    assert run("asterisk", "import", str(spool), *MAP).exit_code == 0
    reopen(home)
    row = only_message()
    assert (row.sender, row.sender_name) == (None, "")


def test_info_error_is_a_ums_error(tmp_path):
    path = tmp_path / "msg0000.txt"
    path.write_text("[message]\ncallerid\n")
    with pytest.raises(InfoError, match="line 2 is not key=value"):
        read_info(str(path))


# Watching ------------------------------------------------------------------------


def test_watch_polls_a_bounded_number_of_times(run, home, alice, spool):
    add_message(spool)
    assert run("asterisk", "import", str(spool), *MAP).exit_code == 0
    watch = ("--watch", "--polls", "3", "--interval", "0.05")
    result = run("asterisk", "import", str(spool), *MAP, *watch)
    assert result.exit_code == 0
    assert result.stdout == (
        "skipped default/8001/msg0000: already received as message 1\n"
    )
    assert run("asterisk", "import", str(spool), "--polls", "2").exit_code == 2


def test_watch_imports_new_messages_until_sigterm(home, alice, spool):
    add_message(spool)
    ums = [sys.executable, "-c", "from ums_core.cli import main; main()"]
    options = ("--watch", "--interval", "0.1")
    command = [*ums, "--home", home, "asterisk", "import", str(spool), *MAP, *options]
    watcher = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        first = watcher.stdout.readline()
        add_message(spool, stem="msg0001", text=info_text(msg_id="2"))
        second = watcher.stdout.readline()
        time.sleep(0.3)
        watcher.send_signal(signal.SIGTERM)
        rest, _ = watcher.communicate(timeout=10)
    finally:
        watcher.kill()
    assert first == "imported default/8001/msg0000 as message 1\n"
    assert second == "imported default/8001/msg0001 as message 2\n"
    assert (rest, watcher.returncode) == ("", 0)


def test_move_that_fails_after_commit_is_finished_next_time(
    run, home, alice, spool, tmp_path
):
    inbox = add_message(spool)
    blocker = tmp_path / "done"
    blocker.write_text("a file where the folder should be")
    run("config", "set", "asterisk.after", "move")
    run("config", "set", "asterisk.done_dir", str(blocker))
    result = run("asterisk", "import", str(spool), *MAP)
    assert result.exit_code == 1
    assert result.stdout == (
        "imported default/8001/msg0000 as message 1; not moved: Not a directory\n"
    )
    assert sorted(os.listdir(inbox)) == ["msg0000.txt", "msg0000.wav"]
    blocker.unlink()
    again = run("asterisk", "import", str(spool), *MAP)
    assert again.exit_code == 0
    assert again.stdout == (
        "skipped default/8001/msg0000: already received as message 1\n"
    )
    assert os.listdir(inbox) == [] and len(os.listdir(blocker / "default/8001")) == 2


def test_disabled_plugin_refuses_to_import(run, spool):
    assert run("plugins", "disable", "asterisk").exit_code == 0
    result = run("asterisk", "import", str(spool))
    assert result.exit_code == 1
    assert "Error: the asterisk plugin is not active" in result.output
