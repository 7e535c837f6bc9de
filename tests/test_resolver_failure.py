"""A resolver plugin that fails stops intake with its name; nothing is lost."""

from __future__ import annotations

import os

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
