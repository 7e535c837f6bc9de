"""Faults at the mail server: bounded retries with backoff, nothing lost or in clear.

The company mail server is scripts/fault_smtp.py on loopback. The worker is
driven in-process; instead of waiting for a retry, a test moves the job's due
time to now and keeps the delay ums chose, so the backoff is checked exactly.
"""

import datetime as dt
import os
import sys

import pytest
from conftest import REPO, reopen, use_mailserver

from ums_core import db
from ums_core.intake import receive_message
from ums_core.model import IncomingMessage
from ums_core.numbers import SiteRules
from ums_core.queue import run_due_jobs
from ums_core.samples import write_fax_tiff
from ums_core.users import add_user

sys.path.insert(0, os.path.join(REPO, "scripts"))
from fault_smtp import FaultServer  # noqa: E402

ALICE = "alice@example.test"
FALLBACK = "fallback@example.test"
SCHEDULE = (60.0, 300.0)
TEMPORARY = ("refuse", "stall", "drop-in-data", "421-greeting", "451-data")
TEMPORARY += ("421-rcpt", "452-rcpt", "no-starttls")
PERMANENT = ("550-rcpt", "552-data", "554-data")
TARGETED = ("451-data", "552-data", "554-data", "421-rcpt", "452-rcpt", "550-rcpt")
MAX_ROUNDS = 10


@pytest.fixture
def fault_app(home, tmp_path, request):
    fault, times = request.param
    target = ALICE if fault in TARGETED else None
    server = FaultServer(fault, target=target, times=times, stall=3.0)
    server.start()
    starttls = "required" if fault == "no-starttls" else "off"
    use_mailserver(
        home,
        server,
        retry__schedule="1m,5m",
        smtp__timeout="1",
        smtp__starttls=starttls,
    )
    app = reopen(home)
    add_user(ALICE, SiteRules(country="DE", area_code="89"), "Alice", "en",
             {"fax": ["+4989123456"]})  # fmt: skip
    fax = tmp_path / "fax.tif"
    write_fax_tiff(str(fax), "fault scenario", pages=1)
    message_id = receive_message(
        app,
        IncomingMessage(
            kind="fax",
            called="+4989123456",
            sender="+4930555010",
            content_path=str(fax),
        ),  # fmt: skip
        run_now=False,
    )
    try:
        yield app, server, message_id
    finally:
        server.stop()
        app.close()


def run_until_settled(app, job_id: int) -> list[float]:
    """Run the queue, skipping each backoff; return the delays ums chose."""
    delays = []
    for _ in range(MAX_ROUNDS):
        run_due_jobs(app)
        job = db.Job.get_by_id(job_id)
        if job.state != "queued":
            return delays
        now = db.utcnow()
        delays.append(round((job.due_at - now).total_seconds()))
        db.Job.update(due_at=now - dt.timedelta(seconds=1)).where(
            db.Job.id == job_id
        ).execute()
    raise AssertionError(f"job {job_id} still queued after {MAX_ROUNDS} rounds")


def deliver_first(app, message_id: int) -> db.Job:
    """Compose the e-mail (the first job) and return its send job."""
    run_due_jobs(app)
    return db.Job.get((db.Job.kind == "send_mail") & (db.Job.message == message_id))


def assert_server_saw_each_attempt(server: FaultServer, job: db.Job) -> None:
    """What the server saw matches the attempts ums counted: no hidden tries."""
    if server.fault == "refuse":
        return
    if server.target is None:
        jobs = db.Job.select().where(db.Job.kind == "send_mail")
        expected = sum(j.attempts for j in jobs)
    else:
        expected = job.attempts
    seen = server.hits
    if server.fault in ("421-greeting", "no-starttls"):
        seen = server.connections
    assert seen == expected, (seen, expected, server.commands)


def assert_kept_and_told(app, server, message_id: int) -> None:
    """The message failed for good, its fax is kept, the default recipient hears."""
    row = db.Message.get_by_id(message_id)
    assert row.state == "failed"
    assert os.path.getsize(app.path(row.content_name)) == row.content_size > 0
    notice = db.Mail.get(db.Mail.purpose == "notice")
    assert notice.recipients == FALLBACK
    server.heal()
    for job in db.Job.select().where(db.Job.state == "queued"):
        run_until_settled(app, job.id)
    if server.commands.count("MAIL") == 0:
        # STARTTLS is still missing: the notice is kept, failed, and not chained
        notice = db.Mail.get_by_id(notice.id)
        assert notice.state == "failed" and "STARTTLS" in notice.last_error
        assert db.Mail.select().count() == 2
        return
    told = [t for t in server.accepted() if t.rcpts == [FALLBACK]]
    assert len(told) == 1 and f"message {message_id}".encode() in told[0].data


@pytest.mark.parametrize(
    "fault_app", [(f, None) for f in TEMPORARY], indirect=True, ids=TEMPORARY
)
def test_temporary_fault_retries_with_backoff_then_gives_up(fault_app):
    """Attempts follow retry.schedule, stop at its end, then keep and tell."""
    app, server, message_id = fault_app
    job = deliver_first(app, message_id)
    delays = run_until_settled(app, job.id)
    job = db.Job.get_by_id(job.id)
    assert delays == [int(s) for s in SCHEDULE]
    assert job.state == "failed" and job.attempts == len(SCHEDULE) + 1
    assert_server_saw_each_attempt(server, job)
    assert [t for t in server.accepted() if ALICE in t.rcpts] == []
    if server.fault == "no-starttls":
        assert "MAIL" not in server.commands and "STARTTLS" in job.last_error
    assert_kept_and_told(app, server, message_id)


@pytest.mark.parametrize(
    "fault_app", [(f, None) for f in PERMANENT], indirect=True, ids=PERMANENT
)
def test_permanent_fault_fails_at_once_keeps_and_tells(fault_app):
    """A 5xx is not retried: one attempt, message kept, default recipient told."""
    app, server, message_id = fault_app
    job = deliver_first(app, message_id)
    job = db.Job.get_by_id(job.id)
    assert job.state == "failed" and job.attempts == 1
    assert server.fault.split("-")[0] in job.last_error
    assert_server_saw_each_attempt(server, job)
    assert_kept_and_told(app, server, message_id)


RECOVERING = [f for f in TEMPORARY if f != "no-starttls"]


@pytest.mark.parametrize(
    "fault_app", [(f, 1) for f in RECOVERING], indirect=True, ids=RECOVERING
)
def test_temporary_fault_once_then_exactly_one_mail(fault_app):
    app, server, message_id = fault_app
    job = deliver_first(app, message_id)
    if server.fault == "refuse":
        server.heal()
    delays = run_until_settled(app, job.id)
    assert delays == [int(SCHEDULE[0])]
    assert db.Job.get_by_id(job.id).state == "done"
    mails = [t for t in server.accepted() if ALICE in t.rcpts]
    assert len(mails) == 1 and b"X-UMS-Message" in mails[0].data
    assert db.Message.get_by_id(message_id).state == "delivered"
