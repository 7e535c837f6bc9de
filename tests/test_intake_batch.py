"""Group commit: several messages validated, then committed in one transaction."""

import os

import pytest

from ums_core import db
from ums_core.errors import BusyError, MediaError
from ums_core.intake_batch import receive_batch
from ums_core.model import IncomingMessage
from ums_core.numbers import SiteRules
from ums_core.samples import write_fax_tiff, write_wav
from ums_core.spool import scan_spool, spool_folder, submit_to_spool
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


def mixed_items(tmp_path, count=6):
    fax, wav = tmp_path / "f.tif", tmp_path / "v.wav"
    write_fax_tiff(str(fax), "group", pages=2)
    write_wav(str(wav), seconds=1.0)
    kinds = {
        "fax": ("+4989123456", str(fax)),
        "voice": ("+4989123457", str(wav)),
        "sms": ("+491701234567", None),
    }
    items = []
    for index in range(count):
        kind = ("fax", "voice", "sms")[index % 3]
        called, path = kinds[kind]
        text = f"sms {index}" if kind == "sms" else ""
        incoming = IncomingMessage(
            kind=kind, called=called, text=text, content_path=path
        )
        items.append((incoming, f"test:{index}"))
    return items


def count_commits(app):
    commits = []
    app.database.connection().set_trace_callback(
        lambda sql: commits.append(sql) if sql.strip().upper() == "COMMIT" else None
    )
    return commits


@pytest.mark.sqlite_only("counts commits with SQLite's trace callback")
def test_group_is_stored_with_two_commits(app, alice, tmp_path):
    """One commit for the rows and jobs, one for the local deliveries."""
    items = mixed_items(tmp_path)
    commits = count_commits(app)
    ids = receive_batch(app, items)
    app.database.connection().set_trace_callback(None)
    assert len(commits) == 2
    rows = [db.Message.get_by_id(i) for i in ids]
    assert [r.state for r in rows] == ["stored"] * 6
    assert all(r.archive_ref.startswith("local_store:") for r in rows)
    assert db.Job.select().where(db.Job.state != "done").count() == 0
    for row in rows:
        if row.content_name:
            assert os.path.getsize(app.path(row.content_name)) == row.content_size


def test_bad_item_is_refused_and_the_rest_committed(app, alice, tmp_path):
    items = mixed_items(tmp_path, count=3)
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\0garbage")
    items.insert(1, (IncomingMessage(kind="fax", called="+4989123456",
                                     content_path=str(bad)), "test:bad"))  # fmt: skip
    outcomes = receive_batch(app, items)
    assert isinstance(outcomes[1], MediaError)
    assert db.Message.select().count() == 3
    assert db.Message.get_or_none(db.Message.source_ref == "test:bad") is None


def test_repeated_group_is_not_received_twice(app, alice, tmp_path):
    items = mixed_items(tmp_path, count=3)
    first = receive_batch(app, items)
    assert receive_batch(app, items) == first
    assert db.Message.select().count() == 3


def test_busy_database_stores_nothing(app, alice, tmp_path, monkeypatch):
    import peewee

    from ums_core import intake

    def busy(*args, **kwargs):
        raise peewee.OperationalError("database is locked")

    monkeypatch.setattr(intake, "insert_message", busy)
    with pytest.raises(BusyError):
        receive_batch(app, mixed_items(tmp_path, count=3), run_now=False)
    assert db.Message.select().count() == 0
    stored = [f for _, _, files in os.walk(app.path("content")) for f in files]
    assert stored == []


@pytest.mark.sqlite_only("counts commits with SQLite's trace callback")
def test_spool_group_removes_entries_only_after_commit(app, alice, tmp_path):
    fax = tmp_path / "in.tif"
    write_fax_tiff(str(fax), "spooled", pages=1)
    names = [
        submit_to_spool(app.home, {"kind": "fax", "to": "+4989123456"}, str(fax))
        for _ in range(3)
    ]
    names.append(submit_to_spool(app.home, {"kind": "sms", "to": "+4930999"}))
    commits = count_commits(app)
    outcomes = scan_spool(app)
    app.database.connection().set_trace_callback(None)
    assert [o.entry for o in outcomes] == names
    assert [o.message_id is not None for o in outcomes] == [True] * 3 + [False]
    assert "needs a text" in outcomes[3].error
    assert len(commits) == 1
    assert sorted(os.listdir(spool_folder(app.home, "new"))) == []
    assert db.Job.select().where(db.Job.state == "queued").count() == 3
