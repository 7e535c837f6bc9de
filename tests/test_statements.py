"""Statements compiled once per database and run again with new values."""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import reopen

from ums_core import db
from ums_core.delivery import _SET_STATE as SET_STATE
from ums_core.statements import Statement

BY_STATE = Statement(
    ("str", "utc"),
    lambda state, since: (
        db.Message.select(db.Message.id)
        .where((db.Message.state == state) & (db.Message.received_at >= since))
        .order_by(db.Message.id)
    ),
)


def add_message(number: int) -> int:
    return db.Message.create(
        kind="sms",
        direction="inbound",
        called="+4989123456",
        text=f"text {number}",
        received_at=dt.datetime(2026, 12, number, 8, 0, tzinfo=dt.UTC),
        state="received",
    ).id


def test_values_change_between_runs_of_one_compiled_statement(app):
    first, second = add_message(1), add_message(2)
    assert SET_STATE.rowcount("held", "why", first) == 1
    assert SET_STATE.rowcount("stored", "", second) == 1
    assert SET_STATE.rowcount("stored", "", 999_999) == 0
    rows = {m.id: (m.state, m.error) for m in db.Message.select()}
    assert rows == {first: ("held", "why"), second: ("stored", "")}


def test_datetimes_are_stored_as_the_field_stores_them(app):
    early, late = add_message(1), add_message(3)
    since = dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert BY_STATE.rows("received", since) == [(late,)]
    assert BY_STATE.rows("received", since - dt.timedelta(days=2)) == [
        (early,),
        (late,),
    ]
    assert BY_STATE.first("stored", since) is None


def test_each_database_gets_its_own_compiled_form(app, tmp_path):
    add_message(1)
    assert len(BY_STATE.rows("received", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))) == 1
    app.close()
    from conftest import test_database_url

    from ums_core.app import create_instance

    other_home = str(tmp_path / "other")
    create_instance(other_home, test_database_url()).save()
    other = reopen(other_home)
    try:
        assert BY_STATE.rows("received", dt.datetime(2026, 1, 1, tzinfo=dt.UTC)) == []
    finally:
        other.close()


def test_a_value_the_query_does_not_use_is_refused(app):
    unused = Statement(
        ("str", "int"),
        lambda state, _: db.Message.select().where(db.Message.state == state),
    )
    with pytest.raises(ValueError, match=r"values \[1\] are not used"):
        unused.rows("received", 1)


def test_insert_row_stores_what_create_stores(app):
    from ums_core.statements import insert_row

    fields = {
        "kind": "fax",
        "direction": "inbound",
        "called": "+4989123456",
        "received_at": dt.datetime(2026, 12, 4, 7, 30, tzinfo=dt.UTC),
        "pages": 3,
        "default_recipient": True,
    }
    made = db.Message.create(**fields)
    inserted = insert_row(db.Message, **fields)
    assert inserted.id == made.id + 1
    job = insert_row(db.Job, kind="deliver_message", message=inserted)
    again = db.Job.get_by_id(job.id)
    assert (again.message_id, again.state, again.attempts) == (inserted.id, "queued", 0)

    def stored(message_id):
        row = db.Message.get_by_id(message_id).__data__
        return {k: v for k, v in row.items() if k not in ("id", "created_at")}

    assert stored(inserted.id) == stored(made.id)
    assert db.Message.get_by_id(inserted.id).received_at == fields["received_at"]


def durability_setting() -> str:
    if db.is_postgresql():
        return db.database.obj.execute_sql("SHOW synchronous_commit").fetchone()[0]
    return str(db.database.obj.execute_sql("PRAGMA synchronous").fetchone()[0])


def test_a_relaxed_commit_is_a_commit_and_durability_comes_back(app):
    before = durability_setting()
    with db.relaxed_transaction():
        message_id = add_message(1)
    assert durability_setting() == before
    with pytest.raises(RuntimeError), db.relaxed_transaction():
        add_message(2)
        raise RuntimeError("rolled back")
    assert durability_setting() == before
    assert [m.id for m in db.Message.select()] == [message_id]
    app.close()
    again = reopen(app.home)
    try:
        assert [m.id for m in db.Message.select()] == [message_id]
    finally:
        again.close()


def test_fetch_by_id_reads_what_get_by_id_reads(app):
    from ums_core.statements import fetch_by_id

    message_id = add_message(3)
    db.Message.update(read_at=dt.datetime(2026, 12, 4, 9, 30, tzinfo=dt.UTC)).where(
        db.Message.id == message_id
    ).execute()
    job = db.Job.create(kind="deliver_message", message=message_id)
    for model, row_id in ((db.Message, message_id), (db.Job, job.id)):
        fetched, expected = fetch_by_id(model, row_id), model.get_by_id(row_id)
        assert fetched.__data__ == expected.__data__
        assert not fetched._dirty
    fetched = fetch_by_id(db.Message, message_id)
    assert fetched.received_at.tzinfo is not None
    assert fetch_by_id(db.Job, job.id).message_id == message_id
    assert fetch_by_id(db.Message, 999_999) is None
