"""Intake: validation, durable commit, routing in local mode."""

import datetime as dt
import os

import pytest

from ums_core import db
from ums_core.errors import UmsError
from ums_core.intake import receive_message
from ums_core.model import IncomingMessage
from ums_core.numbers import SiteRules
from ums_core.samples import write_fax_tiff, write_wav
from ums_core.users import add_user

RULES = SiteRules(country="DE", area_code="89")


@pytest.fixture
def alice(app):
    return add_user(
        "alice@example.test",
        RULES,
        "Alice",
        "de",
        {"fax": ["+4989123456"], "voice": ["+4989123457"], "sms": ["+491701234567"]},
    )


def content_files(home):
    found = []
    for folder, _, files in os.walk(os.path.join(home, "content")):
        found += [os.path.join(folder, name) for name in files]
    return found


def test_receive_fax_local_mode_is_stored(app, alice, tmp_path):
    fax = tmp_path / "fax.tif"
    write_fax_tiff(str(fax), "Hello", pages=2)
    incoming = IncomingMessage(
        kind="fax", called="089 123456", sender="+49 30 555010", content_path=str(fax)
    )
    row = db.Message.get_by_id(receive_message(app, incoming))
    assert (row.kind, row.pages, row.recipient) == ("fax", 2, "alice@example.test")
    assert (row.location, row.state, row.default_recipient) == (
        "local",
        "stored",
        False,
    )
    assert row.sender == "+4930555010" and row.called == "+4989123456"
    assert row.archive_ref.startswith("local_store:")
    with open(app.path(row.content_name), "rb") as stored:
        assert stored.read() == fax.read_bytes()


def test_receive_voice_records_duration(app, alice, tmp_path):
    wav = tmp_path / "voice.wav"
    write_wav(str(wav), seconds=3.0, encoding="ulaw")
    incoming = IncomingMessage(
        kind="voice", called="+4989123457", content_path=str(wav)
    )
    row = db.Message.get_by_id(receive_message(app, incoming))
    assert row.duration == pytest.approx(3.0, abs=0.05)
    assert row.sender is None and row.state == "stored"


def test_receive_sms_keeps_umlauts_emoji_and_cleans_name(app, alice):
    incoming = IncomingMessage(
        kind="sms",
        called="+491701234567",
        sender="+4930555010",
        sender_name="Jürgen\r\nBcc: evil@example.test",
        text="Grüße 😀\r\nzweite Zeile",
    )
    row = db.Message.get_by_id(receive_message(app, incoming))
    assert row.text == "Grüße 😀\nzweite Zeile"
    assert row.sender_name == "Jürgen Bcc: evil@example.test"
    assert "\r" not in row.sender_name and "\n" not in row.sender_name


@pytest.mark.parametrize(
    "caller",
    ["", "anonymous", "Unknown", "restricted", "-1", "+", "sip:anonymous@pbx.test"],
)
def test_withheld_caller_is_never_a_number(app, alice, caller):
    incoming = IncomingMessage(
        kind="sms", called="+491701234567", sender=caller, text="x"
    )
    row = db.Message.get_by_id(receive_message(app, incoming))
    assert row.sender is None


def test_unknown_number_goes_to_default_recipient(app, alice):
    incoming = IncomingMessage(kind="sms", called="+4930999999", text="hi")
    row = db.Message.get_by_id(receive_message(app, incoming))
    assert row.recipient == "fallback@example.test" and row.default_recipient


def test_received_at_naive_is_local_time(app, alice):
    app.config.set("timezone", "Europe/Berlin")
    when = dt.datetime(2026, 7, 1, 12, 0, 0)
    incoming = IncomingMessage(
        kind="sms", called="+491701234567", text="x", received_at=when
    )
    row = db.Message.get_by_id(receive_message(app, incoming))
    assert row.received_at == dt.datetime(2026, 7, 1, 10, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"", "empty"),
        (b"II*\x00garbage", ""),
        (b"%PDF-1.4 truncated", ""),
        (b"hello, this is not a fax", ""),
    ],
)
def test_bad_fax_is_refused_and_nothing_is_written(
    app, alice, tmp_path, data, expected
):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(data)
    incoming = IncomingMessage(kind="fax", called="+4989123456", content_path=str(bad))
    with pytest.raises(UmsError) as info:
        receive_message(app, incoming)
    assert expected in info.value.message
    assert db.Message.select().count() == 0 and db.Job.select().count() == 0
    assert content_files(app.home) == []
    assert bad.read_bytes() == data


def test_bad_called_number_is_refused(app, alice):
    incoming = IncomingMessage(kind="sms", called="not a number", text="x")
    with pytest.raises(UmsError, match="bad called number"):
        receive_message(app, incoming)
    assert db.Message.select().count() == 0


def test_empty_sms_is_refused(app, alice):
    incoming = IncomingMessage(kind="sms", called="+491701234567", text=" \r\n ")
    with pytest.raises(UmsError, match="empty"):
        receive_message(app, incoming)


def test_oversized_content_is_refused(app, alice, tmp_path):
    app.config.set("limits.max_content_mb", "1")
    big = tmp_path / "big.wav"
    write_wav(str(big), seconds=70.0, encoding="pcm")
    incoming = IncomingMessage(
        kind="voice", called="+4989123457", content_path=str(big)
    )
    with pytest.raises(UmsError, match="too large"):
        receive_message(app, incoming)


def test_no_default_recipient_holds_message(app):
    app.config.set("default_recipient", "")
    incoming = IncomingMessage(kind="sms", called="+4930999999", text="hi")
    row = db.Message.get_by_id(receive_message(app, incoming))
    assert row.state == "failed" or row.state == "held"
    assert row.recipient is None
    job = db.Job.get(db.Job.message == row.id)
    assert job.state == "failed" and "default_recipient" in job.last_error
