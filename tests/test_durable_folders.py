"""Folders made for content and archive files are linked in durably."""

from __future__ import annotations

import os
import threading
import time

import pytest

from ums_core import content, db
from ums_core.intake import receive_message
from ums_core.model import IncomingMessage
from ums_core.samples import write_fax_tiff
from ums_core.users import add_user


@pytest.fixture
def synced(monkeypatch) -> list[str]:
    """Record every folder content.fsync_dir syncs (and still sync it)."""
    calls: list[str] = []
    real = content.fsync_dir

    def record(path):
        calls.append(os.path.abspath(path))
        real(path)

    monkeypatch.setattr(content, "fsync_dir", record)
    return calls


def folders_under(root: str) -> set[str]:
    return {os.path.abspath(d) for d, _, _ in os.walk(root)}


def test_each_folder_made_is_synced_in_its_parent(tmp_path, synced):
    target = tmp_path / "a" / "b" / "c"
    content.make_folders(str(target))
    assert target.is_dir()
    assert synced == [str(tmp_path), str(tmp_path / "a"), str(tmp_path / "a" / "b")]
    assert oct((tmp_path / "a").stat().st_mode & 0o777) == oct(0o700)


def test_an_existing_folder_costs_no_sync(tmp_path, synced):
    content.make_folders(str(tmp_path))
    assert synced == []


def test_a_file_in_the_way_is_an_error(tmp_path, synced):
    (tmp_path / "a").write_bytes(b"")
    with pytest.raises(OSError):
        content.make_folders(str(tmp_path / "a" / "b"))


def test_new_content_and_archive_folders_are_synced_in_their_parents(
    home, app, tmp_path, synced
):
    add_user("alice@example.test", app.site_rules, numbers={"fax": ["+4989123456"]})
    fax = tmp_path / "f.tif"
    write_fax_tiff(str(fax), "durable", pages=1)
    before = folders_under(home)
    incoming = IncomingMessage(kind="fax", called="+4989123456", content_path=str(fax))
    message_id = receive_message(app, incoming, run_now=True)
    assert db.Message.get_by_id(message_id).state == "stored"
    made = folders_under(home) - before
    # content/YYYY/MM/DD and plugins/local_store/YYYY/MM/<id>, at least
    assert len(made) >= 4
    for folder in made:
        assert os.path.dirname(folder) in synced, folder


def test_a_file_where_the_day_folder_goes_is_a_clear_error(home, app, tmp_path):
    from ums_core.errors import UmsError

    day = os.path.dirname(os.path.join(home, content.new_name("content", ".tif")))
    os.makedirs(os.path.dirname(day))
    with open(day, "wb"):
        pass  # a file where the folder should be
    fax = tmp_path / "f.tif"
    write_fax_tiff(str(fax), "blocked", pages=1)
    incoming = IncomingMessage(kind="fax", called="+4989123456", content_path=str(fax))
    with pytest.raises(
        UmsError, match="cannot write content/.* is in the way: it is not a folder"
    ):
        receive_message(app, incoming)
    assert db.Message.select().count() == 0


def test_a_folder_being_made_is_not_used_before_its_parent_is_synced(
    tmp_path, monkeypatch
):
    real = content.fsync_dir
    target = tmp_path / "day"
    synced = threading.Event()

    def slow(path):
        time.sleep(0.3)
        real(path)
        synced.set()

    monkeypatch.setattr(content, "fsync_dir", slow)
    maker = threading.Thread(target=content.make_folders, args=(str(target),))
    maker.start()
    deadline = time.monotonic() + 10
    while not target.is_dir() and time.monotonic() < deadline:
        time.sleep(0.001)
    content.make_folders(str(target))  # the folder exists: it waits for the sync
    assert synced.is_set()
    maker.join(10)
