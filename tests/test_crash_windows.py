"""A crash between two commits loses nothing: each window, replayed in-process.

A crash is an exception no handler catches, raised at the moment in question;
the restart is a worker that finds the dead worker's lease expired.
"""

import datetime as dt
import logging

import pytest
from test_gateway import fax_mail, gateway_app, outbound, send  # noqa: F401

from ums_core import db
from ums_core.queue import run_due_jobs


class Crash(BaseException):
    """The process dies here."""


def crash_on(app, monkeypatch, event: str) -> None:
    """Make APP die when it is about to fire EVENT."""
    fire = app.fire

    def fire_or_crash(name, **kwargs):
        if name == event:
            raise Crash(name)
        fire(name, **kwargs)

    monkeypatch.setattr(app, "fire", fire_or_crash)


def restart(app, monkeypatch) -> None:
    """Undo the crash hook and let the dead worker's leases run out."""
    monkeypatch.undo()
    past = db.utcnow() - dt.timedelta(seconds=1)
    db.Job.update(lease_expires=past).where(db.Job.state == "running").execute()


def test_crash_after_transmission_sends_one_report_and_no_second_fax(
    gateway_app,  # noqa: F811 (the fixture of test_gateway)
    smtp_sink,
    monkeypatch,
    caplog,  # noqa: F811
):
    send(gateway_app, fax_mail())
    crash_on(gateway_app, monkeypatch, "ums_outgoing_sent")
    with pytest.raises(Crash):
        run_due_jobs(gateway_app)
    restart(gateway_app, monkeypatch)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ums_core.transmit"):
        run_due_jobs(gateway_app)
    [row] = outbound()
    assert row.state == "sent"
    assert not [r for r in caplog.records if "simulation: sent" in r.getMessage()]
    [report] = smtp_sink.handler.parsed()
    assert str(report["Message-ID"]).startswith(
        f"<ums.{gateway_app.instance_id}.report"
    )
    assert db.Job.select().where(db.Job.state != "done").count() == 0
