"""The same models on SQLite and PostgreSQL: lengths, times, booleans, upserts."""

from __future__ import annotations

import datetime as dt

from ums_core import db
from ums_core.intake import receive_message
from ums_core.model import IncomingMessage


def test_long_references_and_names_fit(app):
    ref = "plugin:" + "x" * 1000
    incoming = IncomingMessage(kind="sms", called="+4930999", text="hi")
    message_id = receive_message(app, incoming, run_now=False, source_ref=ref)
    assert db.Message.get_by_id(message_id).source_ref == ref
    user = db.User.create(email="long@example.test", name="N" * 600)
    assert db.User.get_by_id(user.id).name == "N" * 600


def test_times_come_back_as_aware_utc(app):
    when = dt.datetime(
        2026, 12, 4, 8, 15, 30, 123456, tzinfo=dt.timezone(dt.timedelta(hours=1))
    )
    incoming = IncomingMessage(
        kind="sms", called="+4930999", text="t", received_at=when
    )
    row = db.Message.get_by_id(receive_message(app, incoming, run_now=False))
    assert row.received_at == when and row.received_at.tzinfo == dt.UTC
    assert row.default_recipient is True


def test_meta_is_upserted_and_kept_once(app):
    db.set_meta("probe", "one")
    db.set_meta("probe", "two")
    assert db.ensure_meta("probe", "three") == "two"
    assert db.Meta.select().where(db.Meta.key == "probe").count() == 1
