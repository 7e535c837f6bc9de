"""The spool folder and ``ums serve``."""

import json
import os
import signal
import subprocess
import sys
import time

from ums_core import db
from ums_core.samples import write_fax_tiff
from ums_core.spool import scan_spool, spool_folder, submit_to_spool

UMS = [sys.executable, "-c", "from ums_core.cli import main; main()"]


def test_spool_entry_is_committed_then_removed(app, tmp_path):
    fax = tmp_path / "in.tif"
    write_fax_tiff(str(fax), "spooled", pages=2)
    name = submit_to_spool(
        app.home,
        {"kind": "fax", "from": "+4930555010", "to": "+4930999", "name": "Acme"},
        str(fax),
    )
    [outcome] = scan_spool(app)
    assert outcome.entry == name and outcome.error == ""
    row = db.Message.get_by_id(outcome.message_id)
    assert (row.pages, row.sender_name) == (2, "Acme")
    assert row.source_ref.split("|")[0] == f"spool:{name}"
    assert os.listdir(spool_folder(app.home, "new")) == []


def test_spool_entry_seen_twice_is_one_message(app, tmp_path):
    """A crash after the commit but before the removal repeats nothing."""
    name = submit_to_spool(app.home, {"kind": "sms", "to": "+4930999", "text": "hi"})
    new = spool_folder(app.home, "new")
    kept = tmp_path / "copy.json"
    kept.write_bytes(open(os.path.join(new, name + ".json"), "rb").read())
    scan_spool(app)
    os.replace(kept, os.path.join(new, name + ".json"))
    [again] = scan_spool(app)
    assert db.Message.select().count() == 1 and again.message_id == 1


def test_bad_spool_entries_are_moved_aside_with_reason(app, tmp_path):
    garbage = tmp_path / "x.tif"
    garbage.write_bytes(b"not a tiff at all")
    cases = {
        "badfax": ({"kind": "fax", "to": "+4930999"}, str(garbage)),
        "nokind": ({"to": "+4930999", "text": "x"}, None),
        "noto": ({"kind": "sms", "text": "x"}, None),
    }
    names = {
        key: submit_to_spool(app.home, meta, path)
        for key, (meta, path) in cases.items()
    }
    new = spool_folder(app.home, "new")
    with open(os.path.join(new, "broken.json"), "w") as handle:
        handle.write("{not json")
    with open(os.path.join(new, "escape.json"), "w") as handle:
        json.dump(
            {"kind": "fax", "to": "+4930999", "content": "../../config.toml"}, handle
        )
    outcomes = scan_spool(app)
    assert all(o.message_id is None for o in outcomes) and len(outcomes) == 5
    bad = spool_folder(app.home, "bad")
    reasons = {
        n: open(os.path.join(bad, n)).read()
        for n in os.listdir(bad)
        if n.endswith(".reason.txt")
    }
    assert "kind" in reasons[names["nokind"] + ".reason.txt"]
    assert "'to'" in reasons[names["noto"] + ".reason.txt"]
    assert "JSON" in reasons["broken.reason.txt"]
    assert "plain file name" in reasons["escape.reason.txt"]
    assert os.path.exists(os.path.join(bad, names["badfax"] + ".tif"))
    assert os.listdir(new) == [] and db.Message.select().count() == 0
    assert os.path.exists(os.path.join(app.home, "config.toml"))


def wait_for(predicate, seconds=20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_serve_takes_spool_and_stops_on_sigterm(home):
    from ums_core.app import App

    config = App.open(home, load_plugins=False).config
    config.set("spool.poll", "0.2")
    config.save()
    proc = subprocess.Popen(
        [*UMS, "--home", home, "serve"], stderr=subprocess.PIPE, text=True
    )
    try:
        submit_to_spool(home, {"kind": "sms", "to": "+4930999", "text": "via serve"})

        def stored():
            out = subprocess.run(
                [*UMS, "--home", home, "messages", "list", "--json"],
                capture_output=True,
                text=True,
            ).stdout
            return any(m["state"] == "stored" for m in json.loads(out or "[]"))

        assert wait_for(stored)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    log = proc.stderr.read()
    assert "stopping" in log and "msg 1: sms received" in log


def test_serve_runs_gateway_and_stops_within_seconds(home):
    import smtplib

    from conftest import free_port

    from ums_core.app import App

    port = free_port()
    config = App.open(home, load_plugins=False).config
    config.set("gateway.listen", f"127.0.0.1:{port}")
    config.set("gateway.fax_domain", "fax.example.test")
    config.save()
    proc = subprocess.Popen(
        [*UMS, "--home", home, "serve"], stderr=subprocess.PIPE, text=True
    )
    try:

        def answers():
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=2) as smtp:
                    return smtp.noop()[0] == 250
            except OSError:
                return False

        assert wait_for(answers)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "gateway stopped" in proc.stderr.read()
