"""The smstools plugin: smsd's incoming files in, outgoing files out, results back."""

import datetime as dt
import json
import os
import shutil
import threading
from email.message import EmailMessage

import attrs
import pytest
from conftest import CORPUS, corpus_path
from ums_smstools.fileformat import decode_text, parse_message_file
from ums_smstools.inbound import import_folder, watch_folder

from ums_core import db
from ums_core.app import App
from ums_core.errors import BusyError
from ums_core.numbers import SiteRules
from ums_core.queue import run_due_jobs

NUMBER = "+4989123456"
MOBILE = "+491701234567"
SMS_DIR = os.path.join(CORPUS, "sms")
CORPUS_FILES = sorted(os.listdir(SMS_DIR)) if os.path.isdir(SMS_DIR) else []
GAMMU_FILES = [name for name in CORPUS_FILES if name.startswith("gammu-")]
GERMAN = "Grüße aus München: 5 € für Äpfel, Öl & Übermut ß"
WORLD = "Grüße 😀 Ελλάδα 中文"


@pytest.fixture
def spool(tmp_path, home):
    """smsd's spool folders, and the instance set up to use them."""
    parts = ("incoming", "outgoing", "sent", "failed")
    folders = {part: tmp_path / "spool" / part for part in parts}
    for folder in folders.values():
        folder.mkdir(parents=True)
    app = App.open(home)
    for key, value in {
        "smstools.number": NUMBER,
        "smstools.settle": "0",
        "smstools.outgoing": str(folders["outgoing"]),
        "smstools.sent": str(folders["sent"]),
        "smstools.failed": str(folders["failed"]),
        "gateway.sms_domain": "sms.example.test",
        "transmit.sms": "smstools",
    }.items():
        app.config.set(key, value)
    app.config.save()
    app.close()
    return folders


@pytest.fixture
def sms_app(spool, home):
    instance = App.open(home)
    yield instance
    instance.close()


def put(folder, name, data: bytes, age: float = 0):
    """Write an smsd file NAME into FOLDER, AGE seconds old; return its path."""
    path = folder / name
    path.write_bytes(data)
    if age:
        stamp = path.stat().st_mtime - age
        os.utime(path, (stamp, stamp))
    return path


def received(text: bytes, alphabet="ISO", sender="491721234567", extra=b""):
    head = f"From: {sender}\nReceived: 26-12-04 08:15:00\nAlphabet: {alphabet}\n"
    return head.encode() + extra + b"\n" + text


def inbound_rows():
    query = db.Message.select().where(db.Message.direction == "inbound")
    return list(query.order_by(db.Message.id))


def corpus_bytes(name):
    with open(corpus_path("sms", name), "rb") as handle:
        return handle.read()


def copy_corpus(folder, names):
    for name in names:
        shutil.copyfile(corpus_path("sms", name), folder / name)


# Inbound: the corpus ------------------------------------------------------------


def test_corpus_received_sms_is_imported_exactly(spool, run):
    copy_corpus(spool["incoming"], ["received_sms.sms"])
    result = run("smstools", "import", str(spool["incoming"]))
    assert result.exit_code == 0, result.output
    assert result.output == "imported received_sms.sms: message 1 from +491721234567\n"
    [row] = inbound_rows()
    assert (row.kind, row.sender, row.called) == ("sms", "+491721234567", NUMBER)
    assert row.text == "This is the Text that I sent with my mobile phone."
    assert row.received_at == dt.datetime(2002, 1, 21, 22, 26, 25, tzinfo=dt.UTC)
    assert row.source_ref.startswith("smstools:received_sms.sms:90dae280f492")


def test_corpus_status_report_is_recognised_and_skipped(spool, run):
    copy_corpus(spool["incoming"], ["received_report.sms"])
    result = run("smstools", "import", str(spool["incoming"]))
    assert result.exit_code == 0
    assert result.output.startswith("skipped received_report.sms: a status report")
    assert "Message_id 117: 0,Ok,short message received by the SME" in result.output
    assert inbound_rows() == []


def test_corpus_outgoing_files_decode_exactly_and_are_not_imported(spool, run):
    plain = parse_message_file(corpus_bytes("send_sms.sms"))
    assert plain.header("to") == "491721234567"
    expected = "Hello, this is a text that I can send with SMS Server Tools. \n"
    assert decode_text(plain) == expected
    raw = corpus_bytes("send_sms_unicode.sms")
    assert decode_text(parse_message_file(raw)) == "\u4e2d\u5c31\u81ea\u5bb6"
    copy_corpus(spool["incoming"], ["send_sms.sms", "send_sms_unicode.sms"])
    result = run("smstools", "import", str(spool["incoming"]))
    assert result.exit_code == 1 and inbound_rows() == []
    assert result.output.count("an outgoing file (To: and no From:)") == 2


@pytest.mark.parametrize("name", GAMMU_FILES or ["gammu-missing"])
def test_corpus_gammu_file_is_refused_clearly_and_kept(spool, run, name):
    copy_corpus(spool["incoming"], [name])
    result = run("smstools", "import", str(spool["incoming"]))
    assert result.exit_code == 1
    assert result.output.startswith(f"refused {name}: ")
    assert "not an smstools3 message file" in result.output
    assert (spool["incoming"] / name).read_bytes() == corpus_bytes(name)
    assert inbound_rows() == []


def test_corpus_folder_import_moves_only_imported_files(spool, run, sms_app):
    corpus_path("sms")
    copy_corpus(spool["incoming"], CORPUS_FILES)
    done = spool["incoming"].parent / "done"
    sms_app.config.set("smstools.after", "move")
    sms_app.config.set("smstools.done", str(done))
    sms_app.config.save()
    result = run("smstools", "import", str(spool["incoming"]))
    assert result.exit_code == 1
    assert len(result.output.splitlines()) == len(CORPUS_FILES)
    assert sorted(os.listdir(done)) == ["received_sms.sms"]
    kept = sorted(os.listdir(spool["incoming"]))
    assert kept == sorted(set(CORPUS_FILES) - {"received_sms.sms"})
    for name in CORPUS_FILES:
        where = done if name == "received_sms.sms" else spool["incoming"]
        original = corpus_bytes(name)
        assert (where / name).read_bytes() == original
    assert len(inbound_rows()) == 1


# Inbound: files the corpus lacks --------------------------------------------------


@pytest.mark.parametrize(
    ("alphabet", "body", "text"),
    [
        ("ISO", GERMAN.encode("iso8859_15"), GERMAN),
        ("ISO-8859-15", GERMAN.encode("iso8859_15"), GERMAN),
        ("GSM", GERMAN.encode("iso8859_15"), GERMAN),
        ("UCS2", WORLD.encode("utf-16-be") + b"\n", WORLD),
        ("UCS-2", WORLD.encode("utf-16-be"), WORLD),
        ("UTF-8", WORLD.encode("utf-8"), WORLD),
    ],
)
def test_alphabets_are_decoded_exactly(spool, run, alphabet, body, text):
    put(spool["incoming"], "GSM1.abc", received(body, alphabet))
    result = run("smstools", "import", str(spool["incoming"]))
    assert result.exit_code == 0, result.output
    [row] = inbound_rows()
    assert row.text == text
    assert row.received_at == dt.datetime(2026, 12, 4, 8, 15, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (received(b"\x06\x05\x04\x0b\x84", "binary"), "a binary message"),
        (received(b"", extra=b"UDH: true\n"), "user data header (UDH) and no text"),
        (b"From: 4930555011\rTo: 4989999999\n\nhi", "header line 1 holds a control"),
        (b"From: 4930555011\nX: a\x00b\n\nhi", "header line 2 holds a control"),
        (b"From: 1\nFrom: 2\n\nhi", "the header From: appears more than once"),
        (b"From: 4930555011\nAlphabet: ISO", "no blank line between the header"),
        (b"From: 4930555011\nThis is text\n", "line 2 is no 'Key: value' header"),
        (b"\nFrom: 4930555011\n\nhi", "starts with a blank line"),
        (received(b"x" * 70000), "too large for an SMS file"),
        (received(b"\xd8\x3d\x00\x41", "UCS2"), "the UCS-2 text is broken"),
        (received(b"\x00\x41\x00", "UCS2"), "odd number of bytes"),
        (received(b"\xc3(", "UTF-8"), "not UTF-8"),
        (received(b"hi", "EBCDIC"), "unknown Alphabet"),
        (received(b"   "), "an SMS needs a text"),
    ],
)
def test_bad_file_is_refused_with_reason_and_kept(spool, run, data, reason):
    path = put(spool["incoming"], "GSM1.bad", data)
    result = run("smstools", "import", str(spool["incoming"]))
    assert result.exit_code == 1
    assert result.output.startswith("refused GSM1.bad: ") and reason in result.output
    assert len(result.output.splitlines()) == 1
    assert path.read_bytes() == data and inbound_rows() == []


def test_links_and_pipes_are_refused(spool, run, tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(received(b"not for you"))
    os.symlink(secret, spool["incoming"] / "link")
    os.mkfifo(spool["incoming"] / "pipe")
    result = run("smstools", "import", str(spool["incoming"]))
    assert result.exit_code == 1
    assert "refused link: a symbolic link" in result.output
    assert "refused pipe: not a regular file" in result.output
    assert inbound_rows() == []


def test_file_name_with_line_break_prints_one_line(spool, run):
    put(spool["incoming"], "evil\nrefused x: ok", received(b"hello"))
    result = run("smstools", "import", str(spool["incoming"]))
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "imported evil refused x: ok: message 1 from +491721234567"
    ]


def test_headers_give_sender_called_number_and_name(spool, run):
    extra = b"To: 4989123999\nFrom_TOA: 91 international, ISDN/telephone\n"
    put(spool["incoming"], "a", received(b"one", extra=extra))
    put(spool["incoming"], "b", received(b"two", sender="Vodafone"))
    result = run("smstools", "import", str(spool["incoming"]))
    assert result.exit_code == 0, result.output
    first, second = inbound_rows()
    assert (first.called, first.sender) == ("+4989123999", "+491721234567")
    assert (second.sender, second.sender_raw, second.sender_name) == (
        None,
        "Vodafone",
        "Vodafone",
    )


def test_import_without_number_is_a_clear_error(spool, run, sms_app):
    sms_app.config.set("smstools.number", "")
    sms_app.config.save()
    put(spool["incoming"], "GSM1.a", received(b"hello"))
    result = run("smstools", "import", str(spool["incoming"]))
    assert result.exit_code == 1
    assert "Error: smstools.number is not set" in result.output
    assert "Hint: ums config set smstools.number" in result.output
    assert inbound_rows() == []


def test_import_twice_stores_one_message(spool, run):
    put(spool["incoming"], "GSM1.a", received(GERMAN.encode("iso8859_15")))
    first = run("smstools", "import", str(spool["incoming"]))
    second = run("smstools", "import", str(spool["incoming"]))
    assert first.output == "imported GSM1.a: message 1 from +491721234567\n"
    assert second.output == "skipped GSM1.a: already received as message 1\n"
    assert len(inbound_rows()) == 1 and os.listdir(spool["incoming"]) == ["GSM1.a"]


def test_delete_happens_only_after_the_commit(spool, sms_app, monkeypatch):
    import ums_smstools.inbound as inbound

    sms_app.config.set("smstools.after", "delete")
    good = put(spool["incoming"], "GSM1.good", received(b"hello"), age=10)
    put(spool["incoming"], "GSM1.bad", received(b"x", "binary"))
    lines = [o.line() for o in import_folder(sms_app, str(spool["incoming"]))]
    assert lines[0] == "imported GSM1.good: message 1 from +491721234567; deleted"
    assert lines[1].startswith("refused GSM1.bad:")
    assert not good.exists() and os.listdir(spool["incoming"]) == ["GSM1.bad"]

    def busy(*args, **kwargs):
        raise BusyError("the database is busy; nothing was stored")

    monkeypatch.setattr(inbound, "receive_message", busy)
    again = put(spool["incoming"], "GSM1.again", received(b"again"))
    [outcome] = [
        o
        for o in import_folder(sms_app, str(spool["incoming"]))
        if o.name == "GSM1.again"
    ]
    assert outcome.refused and "database is busy" in outcome.detail
    assert again.exists() and len(inbound_rows()) == 1


def test_young_and_locked_files_wait(spool, sms_app):
    sms_app.config.set("smstools.settle", "60")
    put(spool["incoming"], "GSM1.young", received(b"hello"))
    put(spool["incoming"], "GSM1.old", received(b"hello"), age=120)
    put(spool["incoming"], "GSM1.old.LOCK", b"")
    lines = [o.line() for o in import_folder(sms_app, str(spool["incoming"]))]
    assert lines[0].startswith("skipped GSM1.old: locked by smsd")
    assert lines[1].startswith("skipped GSM1.young: changed")
    assert inbound_rows() == []


def test_watch_imports_new_files_until_stopped(spool, sms_app):
    sms_app.config.set("smstools.poll", "0.1")
    put(spool["incoming"], "GSM1.first", received(b"first"))
    stop, seen = threading.Event(), []

    def report(outcome):
        seen.append(outcome.line())
        if len(seen) == 1:
            put(spool["incoming"], "GSM1.second", received(b"second"))
        else:
            stop.set()

    timer = threading.Timer(5, stop.set)
    timer.start()
    refused = watch_folder(sms_app, str(spool["incoming"]), report, stop)
    timer.cancel()
    assert refused == 0
    assert [line.split(":")[0] for line in seen] == [
        "imported GSM1.first",
        "imported GSM1.second",
    ]
    assert [row.text for row in inbound_rows()] == ["first", "second"]


# Outbound -------------------------------------------------------------------------


def send_sms(app, text, number=MOBILE):
    """Accept an e-mail to NUMBER@sms… from Alice and run the jobs; return the row."""
    from ums_core.gateway.accept import Envelope, accept_mail
    from ums_core.gateway.addresses import parse_recipient
    from ums_core.users import add_user

    if not db.User.select().exists():
        add_user("alice@example.test", SiteRules(area_code="89"), "Alice")
    mail = EmailMessage()
    mail["From"], mail["Subject"] = "alice@example.test", "sms"
    mail.set_content(text)
    address = f"{number}@sms.example.test"
    destination = parse_recipient(address, "", "sms.example.test", app.site_rules)
    envelope = Envelope(
        "127.0.0.1", False, "alice@example.test", (destination,), mail.as_bytes()
    )
    accept_mail(app, envelope)
    run_due_jobs(app)
    query = db.Message.select().where(db.Message.direction == "outbound")
    return query.order_by(db.Message.id.desc()).get()


def run_transmit_again(app):
    db.Job.update(due_at=db.db_now()).where(db.Job.kind == "transmit").execute()
    run_due_jobs(app)


def fake_smsd(spool, name, to, headers: bytes):
    """Move NAME from outgoing to TO as smsd does, adding HEADERS."""
    data = (spool["outgoing"] / name).read_bytes()
    head, body = data.split(b"\n\n", 1)
    (spool[to] / name).write_bytes(head + b"\n" + headers + b"\n\n" + body)
    (spool["outgoing"] / name).unlink()


def test_outbound_gsm_text_is_written_once_then_sent(spool, sms_app):
    row = send_sms(sms_app, "Hallo Grüße, 5 € [x]")
    name = f"ums-{row.id}"
    assert row.state == "queued"
    assert os.listdir(spool["outgoing"]) == [name]
    expected = b"To: 491701234567\nAlphabet: ISO\n\nHallo Gr\xfc\xdfe, 5 \xa4 [x]"
    assert (spool["outgoing"] / name).read_bytes() == expected
    os.unlink(spool["outgoing"] / name)
    run_transmit_again(sms_app)
    assert os.listdir(spool["outgoing"]) == []
    (spool["sent"] / name).write_bytes(
        b"To: 491701234567\nAlphabet: ISO\nModem: GSM1\nSent: 26-12-04 08:16:00\n"
        b"Message_id: 117\n\nHallo Gr\xfc\xdfe, 5 \xa4 [x]"
    )
    run_transmit_again(sms_app)
    row = db.Message.get_by_id(row.id)
    assert (row.state, row.error) == ("sent", "")


def test_outbound_ucs2_text_fails_with_smsd_reason(spool, sms_app):
    row = send_sms(sms_app, WORLD)
    name = f"ums-{row.id}"
    data = (spool["outgoing"] / name).read_bytes()
    assert data == b"To: 491701234567\nAlphabet: UCS2\n\n" + WORLD.encode("utf-16-be")
    fake_smsd(
        spool, name, "failed", b"Failed: 26-12-04 08:16:00\nFail_reason: +CMS ERROR: 38"
    )
    run_transmit_again(sms_app)
    row = db.Message.get_by_id(row.id)
    assert row.state == "failed"
    assert row.error == "smsd could not send it: +CMS ERROR: 38"


def test_greek_capitals_go_as_ucs2(spool, sms_app):
    row = send_sms(sms_app, "ΔΦΓ")
    data = (spool["outgoing"] / f"ums-{row.id}").read_bytes()
    assert data == b"To: 491701234567\nAlphabet: UCS2\n\n" + "ΔΦΓ".encode("utf-16-be")


def record_file(app, name):
    return os.path.join(app.home, "plugins", "smstools", "outbound", name + ".json")


def record_of(app, name):
    with open(record_file(app, name)) as handle:
        return json.load(handle)


def write_record(app, name, record):
    with open(record_file(app, name), "w") as handle:
        json.dump(record, handle)


def test_eventhandler_sent_is_recorded_once(spool, sms_app, run):
    sms_app.config.set("smstools.report", "true")
    row = send_sms(sms_app, "Hallo")
    name = f"ums-{row.id}"
    assert (
        (spool["outgoing"] / name)
        .read_bytes()
        .startswith(b"To: 491701234567\nAlphabet: ISO\nReport: yes\n\n")
    )
    fake_smsd(spool, name, "sent", b"Sent: 26-12-04 08:16:00")
    result = run("smstools", "event", "SENT", str(spool["sent"] / name), "117")
    assert result.exit_code == 0
    assert result.output == f"recorded {name}: message {row.id} sent (Message_id 117)\n"
    run_transmit_again(sms_app)
    assert db.Message.get_by_id(row.id).state == "sent"
    again = run("smstools", "event", "SENT", str(spool["sent"] / name), "117")
    assert again.output == f"skipped {name}: already recorded as sent\n"


def test_status_report_is_stored_on_the_sent_message(spool, sms_app, run):
    row = send_sms(sms_app, "Hallo")
    name = f"ums-{row.id}"
    fake_smsd(spool, name, "sent", b"Sent: 26-12-04 08:16:00\nMessage_id: 117")
    run_transmit_again(sms_app)
    assert db.Message.get_by_id(row.id).state == "sent"
    report = corpus_bytes("received_report.sms")
    report = report.replace(b"491721234567", b"491701234567")
    path = put(spool["incoming"], "GSM1.report", report)
    result = run("smstools", "event", "REPORT", str(path))
    assert result.exit_code == 0
    assert result.output == (
        f"recorded GSM1.report: status report for message {row.id}:"
        " 0,Ok,short message received by the SME\n"
    )
    stored = record_of(sms_app, name)["report"]
    assert stored["status"] == "0,Ok,short message received by the SME"
    assert stored["discharge"] == "02-01-21 22:27:02"
    assert inbound_rows() == []


def test_eventhandler_failed_received_call_and_foreign(spool, sms_app, run):
    row = send_sms(sms_app, "Hallo")
    name = f"ums-{row.id}"
    fake_smsd(spool, name, "failed", b"Failed: 26-12-04 08:16:00")
    result = run("smstools", "event", "FAILED", str(spool["failed"] / name))
    assert result.output == (
        f"recorded {name}: message {row.id} failed: smsd could not send it"
        " (no reason given; see smsd's log)\n"
    )
    path = put(spool["incoming"], "GSM1.in", received(b"incoming"))
    result = run("smstools", "event", "RECEIVED", str(path))
    assert result.exit_code == 0
    assert result.output == "imported GSM1.in: message 2 from +491721234567\n"
    assert [(r.text, r.state) for r in inbound_rows()] == [("incoming", "received")]
    assert run("smstools", "event", "CALL", str(path)).output.startswith(
        "skipped GSM1.in: a phone call notice"
    )
    other = put(spool["sent"], "ums-999", b"To: 1\n\nx")
    assert run("smstools", "event", "SENT", str(other)).output == (
        "skipped ums-999: this instance handed no SMS to smsd as it\n"
    )
    bad = put(spool["incoming"], "GSM1.bin", received(b"\x01", "binary"))
    assert run("smstools", "event", "RECEIVED", str(bad)).exit_code == 1


def test_interrupted_hand_over_never_writes_twice(spool, sms_app):
    row = send_sms(sms_app, "Hallo")
    name = f"ums-{row.id}"
    record = record_of(sms_app, name)
    write_record(sms_app, name, {**record, "state": "writing"})
    os.unlink(spool["outgoing"] / name)
    run_transmit_again(sms_app)
    assert os.listdir(spool["outgoing"]) == []
    write_record(sms_app, name, {**record, "state": "writing"})
    (spool["outgoing"] / (name + ".LOCK")).write_bytes(b"To: 49")
    run_transmit_again(sms_app)
    assert os.listdir(spool["outgoing"]) == [name]
    assert record_of(sms_app, name)["state"] == "handed"


def test_stale_result_of_another_instance_is_ignored(spool, sms_app):
    row = send_sms(sms_app, "Hallo")
    name = f"ums-{row.id}"
    stale = put(spool["sent"], name, b"To: 491701234567\n\nold", age=3600)
    assert stale.exists()
    run_transmit_again(sms_app)
    assert db.Message.get_by_id(row.id).state == "queued"


def test_no_result_within_timeout_fails_and_withdraws(spool, sms_app):
    row = send_sms(sms_app, "Hallo")
    name = f"ums-{row.id}"
    record = record_of(sms_app, name)
    record["written_at"] = "2020-01-01T00:00:00+00:00"
    write_record(sms_app, name, record)
    run_transmit_again(sms_app)
    row = db.Message.get_by_id(row.id)
    assert row.state == "failed" and "withdrawn" in row.error
    assert os.listdir(spool["outgoing"]) == []
    withdrawn = os.path.join(sms_app.home, "plugins", "smstools", "withdrawn")
    assert os.listdir(withdrawn) == [name]


def test_foreign_file_of_the_same_name_fails_the_message(spool, sms_app):
    put(spool["outgoing"], "ums-1", b"To: 4930\n\nsomeone else's")
    row = send_sms(sms_app, "Hallo")
    assert row.id == 1 and row.state == "failed"
    assert "not written by this instance" in row.error
    assert (spool["outgoing"] / "ums-1").read_bytes() == b"To: 4930\n\nsomeone else's"


def test_other_backends_and_faxes_are_left_alone(spool, sms_app):
    import ums_smstools

    from ums_core.context import PluginContext
    from ums_core.messages import to_model

    row = send_sms(sms_app, "Hallo")
    message = to_model(sms_app, row)
    ctx = PluginContext(sms_app)
    sms_app.config.set("transmit.sms", "outbox")
    assert ums_smstools.ums_transmit_message(message=message, ctx=ctx) is None
    sms_app.config.set("transmit.sms", "smstools")
    fax = attrs.evolve(message, kind="fax")
    assert ums_smstools.ums_transmit_message(message=fax, ctx=ctx) is None
