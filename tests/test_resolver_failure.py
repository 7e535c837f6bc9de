"""A resolver plugin that fails stops intake with its name; nothing is lost."""

from __future__ import annotations

import os

import peewee
import pytest

from ums_core import db
from ums_core.errors import PluginError
from ums_core.hookspecs import hookimpl
from ums_core.intake import receive_message
from ums_core.intake_batch import receive_batch
from ums_core.model import IncomingMessage
from ums_core.samples import write_fax_tiff
from ums_core.spool import scan_spool, spool_folder, submit_to_spool


class BrokenDirectory:
    """A directory plugin whose server is down."""

    @hookimpl(tryfirst=True)
    def ums_resolve_recipient(self, number, kind, ctx):
        raise ConnectionRefusedError("directory server down")


def content_files(home: str) -> list[str]:
    root = os.path.join(home, "content")
    return [f for _, _, names in os.walk(root) for f in names]


@pytest.fixture
def broken(app):
    app.pm.register(BrokenDirectory(), name="acme_directory")
    yield app
    app.pm.unregister(name="acme_directory")


def fax_message(tmp_path) -> IncomingMessage:
    fax = tmp_path / "f.tif"
    write_fax_tiff(str(fax), "resolver", pages=1)
    return IncomingMessage(kind="fax", called="+4989123456", content_path=str(fax))


def test_intake_names_the_plugin_and_stores_nothing(broken, home, tmp_path):
    with pytest.raises(PluginError) as raised:
        receive_message(broken, fax_message(tmp_path))
    error = raised.value
    assert "plugin acme_directory failed in ums_resolve_recipient" in error.message
    assert "ConnectionRefusedError: directory server down" in error.message
    assert "ums plugins disable acme_directory" in error.hint
    assert db.Message.select().count() == 0
    assert content_files(home) == []


def test_a_group_is_left_whole_and_its_files_removed(broken, home, tmp_path):
    items = [(fax_message(tmp_path), None), (fax_message(tmp_path), None)]
    with pytest.raises(PluginError):
        receive_batch(broken, items)
    assert db.Message.select().count() == 0
    assert content_files(home) == []


def test_spool_entries_wait_until_the_plugin_is_gone(broken, home, tmp_path):
    name = submit_to_spool(home, {"kind": "sms", "to": "+4989123456", "text": "hi"})
    [outcome] = scan_spool(broken)
    assert outcome.message_id is None and "acme_directory" in outcome.error
    assert os.listdir(spool_folder(home, "bad")) == []
    assert name + ".json" in os.listdir(spool_folder(home, "new"))
    broken.pm.unregister(name="acme_directory")  # the admin turns it off
    [outcome] = scan_spool(broken)
    assert isinstance(outcome.message_id, int)
    assert db.Message.get_by_id(outcome.message_id).text == "hi"
    broken.pm.register(BrokenDirectory(), name="acme_directory")  # for the fixture


class Answers:
    """A resolver that answers with WHAT."""

    def __init__(self, what):
        self.what = what

    @hookimpl(tryfirst=True)
    def ums_resolve_recipient(self, number, kind, ctx):
        return self.what


class Wrapper:
    """A plugin that wraps the hook (it must not hide a resolver's failure)."""

    @hookimpl(hookwrapper=True)
    def ums_resolve_recipient(self, number, kind, ctx):
        yield


@pytest.mark.parametrize("answer", ["alice@example.test", {"email": "x"}, 42])
def test_an_answer_that_is_no_user_names_the_plugin(app, home, tmp_path, answer):
    app.pm.register(Answers(answer), name="acme_odd")
    try:
        with pytest.raises(PluginError, match="plugin acme_odd answered .* not a User"):
            receive_message(app, fax_message(tmp_path))
    finally:
        app.pm.unregister(name="acme_odd")
    assert db.Message.select().count() == 0 and content_files(home) == []


def test_a_failure_behind_a_hookwrapper_is_still_a_plugin_error(broken, home, tmp_path):
    broken.pm.register(Wrapper(), name="acme_wrapper")
    try:
        with pytest.raises(PluginError, match="directory server down"):
            receive_message(broken, fax_message(tmp_path))
    finally:
        broken.pm.unregister(name="acme_wrapper")
    assert db.Message.select().count() == 0 and content_files(home) == []


class FailsFor:
    """A resolver that fails for one number only."""

    @hookimpl(tryfirst=True)
    def ums_resolve_recipient(self, number, kind, ctx):
        if number == "+4989777777":
            raise ConnectionRefusedError("directory server down")


def test_one_failing_entry_does_not_hold_back_its_group(app, home):
    app.pm.register(FailsFor(), name="acme_partial")
    try:
        bad = submit_to_spool(home, {"kind": "sms", "to": "+4989777777", "text": "x"})
        for number in range(5):
            submit_to_spool(
                home, {"kind": "sms", "to": "+4989123456", "text": f"{number}"}
            )
        outcomes = scan_spool(app)
    finally:
        app.pm.unregister(name="acme_partial")
    assert sum(isinstance(o.message_id, int) for o in outcomes) == 5
    assert os.listdir(spool_folder(home, "new")) == [bad + ".json"]


def test_a_reroute_waits_for_the_plugin_without_using_up_retries(app, home, tmp_path):
    from ums_core.queue import retry_job, run_due_jobs

    app.config.set("default_recipient", "")
    incoming = IncomingMessage(kind="sms", called="+4930999", text="hello")
    message_id = receive_message(app, incoming)  # nobody owns it: held
    job = db.Job.get(db.Job.message == message_id)
    assert db.Message.get_by_id(message_id).state == "held"
    app.config.set("default_recipient", "fallback@example.test")
    app.pm.register(BrokenDirectory(), name="acme_directory")
    try:
        for _ in range(4):  # more runs than retry.schedule has steps
            retry_job(job.id)
            run_due_jobs(app)
            job = db.Job.get_by_id(job.id)
            assert job.state == "queued" and "acme_directory" in job.last_error
    finally:
        app.pm.unregister(name="acme_directory")
    retry_job(job.id)
    run_due_jobs(app)
    row = db.Message.get_by_id(message_id)
    assert row.recipient == "fallback@example.test" and row.state == "stored"


class Locked:
    """A resolver that meets a locked database, as the core's own one can."""

    @hookimpl(tryfirst=True)
    def ums_resolve_recipient(self, number, kind, ctx):
        raise peewee.OperationalError("database is locked")


def test_a_busy_database_is_not_blamed_on_the_plugin(app, home, tmp_path):
    from ums_core.errors import BusyError

    app.pm.register(Locked(), name="acme_locked")
    try:
        with pytest.raises(BusyError) as raised:
            receive_message(app, fax_message(tmp_path))
    finally:
        app.pm.unregister(name="acme_locked")
    assert not isinstance(raised.value, PluginError)
    assert "database is busy" in raised.value.message
    assert content_files(home) == []
