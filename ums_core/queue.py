"""Jobs: work that talks to the outside, claimed with a lease and retried.

A job is claimed by setting its lease; a worker that dies loses the lease
when it expires and another run takes the job again. Lease times come from
the database's clock (``db.db_now``), so nodes whose clocks disagree still
agree on when a lease ran out. On PostgreSQL the claim takes the rows with
``FOR UPDATE SKIP LOCKED``: two nodes claiming at once get different jobs.

Temporary failures are retried after the delays in ``retry.schedule``; when
they run out, or on a permanent failure, the job fails for good and its
message stays stored.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

import attrs

from . import db
from .context import PluginContext
from .errors import PluginError, UmsError
from .statements import Statement, fetch_by_id

log = logging.getLogger(__name__)

MAX_JOBS_PER_RUN = 100000
SEND_MAIL = "send_mail"
# Set after a commit that queued a mail, so a mail lane waiting starts at once.
MAIL_QUEUED = threading.Event()


class JobFailure(Exception):
    """A job failed; ``permanent`` says whether to retry it."""

    def __init__(self, reason: str, permanent: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class LeaseLost(Exception):
    """Another node took the job over: what this node did with it is void."""


@attrs.define
class RunSummary:
    """What one run of the worker did."""

    done: int = 0
    retried: int = 0
    failed: int = 0
    waiting: int = 0
    lost: int = 0


def _handlers():
    from . import delivery, outbound

    return {
        "deliver_message": delivery.deliver_message,
        "send_mail": delivery.send_mail,
        "prepare_outgoing": outbound.prepare_outgoing,
        "transmit": outbound.transmit,
    }


def _final_failure_handlers():
    from . import delivery, outbound

    return {
        "deliver_message": delivery.handle_final_failure,
        "send_mail": delivery.handle_final_failure,
        "prepare_outgoing": outbound.handle_final_failure,
        "transmit": outbound.handle_final_failure,
    }


def _claimable(now: dt.datetime):
    due = (db.Job.state == "queued") & (db.Job.due_at <= now)
    stale = (db.Job.state == "running") & (db.Job.lease_expires < now)
    return due | stale


def _lease_until(app, now: dt.datetime) -> dt.datetime:
    return now + dt.timedelta(seconds=app.config.get("queue.lease"))


def _of_kinds(kinds, exclude):
    wanted = True
    if kinds is not None:
        wanted = db.Job.kind.in_(list(kinds))
    if exclude:
        wanted = wanted & db.Job.kind.not_in(list(exclude))
    return wanted


def claim_jobs(app, limit: int, kinds=None, exclude=()) -> list[db.Job]:
    """Lease up to LIMIT due jobs to this node and return them.

    KINDS limits the claim to those job kinds; EXCLUDE leaves kinds out.
    A claim lost in a power failure is simply made again: its commit does
    not wait for the disk.
    """
    with db.relaxed_transaction():
        now = db.db_now()
        expires = _lease_until(app, now)
        query = db.Job.select().where(_claimable(now) & _of_kinds(kinds, exclude))
        query = query.order_by(db.Job.due_at, db.Job.id).limit(limit)
        if db.is_postgresql(app.database):
            query = query.for_update(skip_locked=True)
        ids = [job.id for job in query]
        if ids:
            db.Job.update(
                state="running", lease_owner=app.node, lease_expires=expires
            ).where(db.Job.id.in_(ids)).execute()
    return list(db.Job.select().where(db.Job.id.in_(ids)).order_by(db.Job.id))


def leased_job_fields(app) -> dict:
    """Return the fields of a job created already claimed and started by APP.

    Intake uses them for the job it runs at once: the claim and the first
    attempt are committed with the message instead of in two more commits.
    """
    return {
        "state": "running",
        "lease_owner": app.node,
        "lease_expires": _lease_until(app, db.db_now()),
        "attempts": 1,
    }


def start_job(app, job: db.Job) -> bool:
    """Renew JOB's lease and count the attempt; False when the lease was lost.

    A batch is claimed at once but run one job after the other, so each job
    gets a fresh lease just before it runs: a long batch never lets another
    worker take a job this one is about to do. The commit does not wait for
    the disk: a crash of the process keeps it; a power failure may lose it,
    and then the job is only counted once less.
    """
    with db.relaxed_transaction():
        expires = _lease_until(app, db.db_now())
        taken = _START.rowcount(expires, job.id, app.node)
    job.attempts += 1
    return taken == 1


def release_jobs(app, jobs: list[db.Job]) -> None:
    """Give claimed jobs that were not started back to the queue."""
    ids = [job.id for job in jobs]
    if ids:
        with db.write_transaction():
            db.Job.update(state="queued", lease_owner=None, lease_expires=None).where(
                db.Job.id.in_(ids)
                & (db.Job.state == "running")
                & (db.Job.lease_owner == app.node)
            ).execute()


def release_running_jobs(app, kinds=None, exclude=(), keep=()) -> int:
    """Requeue this process's running jobs of KINDS (all but EXCLUDE and KEEP)."""
    wanted = (
        (db.Job.state == "running")
        & (db.Job.lease_owner == app.node)
        & _of_kinds(kinds, exclude)
    )
    if keep:
        wanted = wanted & db.Job.id.not_in(list(keep))
    with db.write_transaction():
        return (
            db.Job.update(state="queued", lease_owner=None, lease_expires=None)
            .where(wanted)
            .execute()
        )


def release_dead_leases(app) -> int:
    """Requeue jobs leased by processes of this host that no longer exist."""
    host = app.node.rsplit(":", 1)[0]
    dead = []
    for job in db.Job.select().where(
        (db.Job.state == "running") & db.Job.lease_owner.startswith(host + ":")
    ):
        pid = job.lease_owner.rsplit(":", 1)[1]
        if pid.isdigit() and not _process_alive(int(pid)):
            dead.append(job.id)
    if dead:
        with db.write_transaction():
            db.Job.update(state="queued", lease_owner=None).where(
                db.Job.id.in_(dead)
            ).execute()
        log.warning("requeued %d jobs of ended processes on %s", len(dead), host)
    return len(dead)


def _process_alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """Return whether PID has ended but is not reaped yet (Linux; else False).

    A SIGKILLed ``ums serve`` whose parent has not waited for it still
    answers kill(pid, 0); its jobs would otherwise wait for their lease.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return False
    return bool(fields) and fields[0] in ("Z", "X")


def _ours(job_id, owner):
    return (
        (db.Job.id == job_id)
        & (db.Job.state == "running")
        & (db.Job.lease_owner == owner)
    )


_FINISH = Statement(
    ("utc", "int", "str"),
    lambda finished, job_id, owner: db.Job.update(
        state="done", finished_at=finished, last_error=""
    ).where(_ours(job_id, owner)),
)
_START = Statement(
    ("utc", "int", "str"),
    lambda expires, job_id, owner: db.Job.update(
        lease_expires=expires, attempts=db.Job.attempts + 1
    ).where(_ours(job_id, owner)),
)


def _still_ours(job: db.Job):
    return _ours(job.id, job.lease_owner)


def finish_job(job: db.Job) -> None:
    """Mark JOB done (inside the caller's transaction, if any).

    Raise LeaseLost when another node has taken the job meanwhile: the
    caller's transaction then rolls back, so only one node's result counts.
    """
    updated = _FINISH.rowcount(db.utcnow(), job.id, job.lease_owner)
    if updated != 1:
        raise LeaseLost(f"job {job.id} is no longer leased to {job.lease_owner}")


def _wait_for_plugin(app, job: db.Job, reason: str) -> str:
    """Run JOB again later without counting the attempt: a plugin has to answer.

    A directory plugin that is down must not use up a message's retries and
    fail it for good; the job waits for as long as the plugin does.
    """
    schedule = app.config.get("retry.schedule")
    delay = schedule[0] if schedule else 60
    return _requeue(
        job, delay, reason, "waits for a plugin", attempts=db.Job.attempts - 1
    )


def _retry_or_fail(app, job: db.Job, failure: JobFailure) -> str:
    schedule = app.config.get("retry.schedule")
    if failure.permanent or job.attempts > len(schedule):
        if not _fail_job(app, job, failure.reason):
            return _lease_lost(job)
        return "failed"
    delay = schedule[job.attempts - 1]
    return _requeue(job, delay, failure.reason, f"attempt {job.attempts} failed")


def _requeue(job: db.Job, delay: float, reason: str, what: str, **changes) -> str:
    """Queue JOB again in DELAY seconds and log WHAT happened; 'retried'."""
    due = db.db_now() + dt.timedelta(seconds=delay)
    updated = (
        db.Job.update(
            state="queued", due_at=due, last_error=reason, lease_owner=None, **changes
        )
        .where(_still_ours(job))
        .execute()
    )
    if updated != 1:
        return _lease_lost(job)
    log.warning(
        "%s: job %d (%s) %s, again in %ds: %s",
        _subject(job),
        job.id,
        job.kind,
        what,
        delay,
        reason,
    )
    return "retried"


def _fail_job(app, job: db.Job, reason: str) -> bool:
    """Fail JOB for good and tell its handler; False when the lease was lost."""
    with db.write_transaction():
        updated = (
            db.Job.update(state="failed", last_error=reason, finished_at=db.utcnow())
            .where(_still_ours(job))
            .execute()
        )
    if updated != 1:
        return False
    log.error(
        "%s: job %d (%s) failed for good: %s", _subject(job), job.id, job.kind, reason
    )
    handler = _final_failure_handlers().get(job.kind)
    if handler is not None:
        handler(app, db.Job.get_by_id(job.id), reason)
    return True


def _subject(job: db.Job) -> str:
    if job.message_id:
        return f"msg {job.message_id}"
    return f"mail {job.mail_id}"


def run_job(app, job: db.Job, handler=None) -> str:
    """Run one claimed job; return 'done', 'retried', 'waiting' or 'failed'.

    HANDLER replaces the job kind's handler (a group runs one step of it).
    """
    from .outbound import Pending

    handler = handler or _handlers().get(job.kind)
    try:
        if handler is None:
            raise JobFailure(f"no handler for job kind {job.kind!r}", permanent=True)
        handler(app, job)
    except Pending:
        return "waiting"
    except LeaseLost:
        return _lease_lost(job)
    except JobFailure as failure:
        return _retry_or_fail(app, job, failure)
    except PluginError as exc:
        return _wait_for_plugin(app, job, exc.message)
    except UmsError as exc:
        return _retry_or_fail(app, job, JobFailure(exc.message))
    except Exception as exc:  # a plugin or library bug must not kill the worker
        log.exception("%s: job %d crashed", _subject(job), job.id)
        return _retry_or_fail(app, job, JobFailure(f"{type(exc).__name__}: {exc}"))
    return "done"


def job_message(job: db.Job) -> db.Message:
    """Return the message row of JOB, read with a compiled query the first time.

    The same row as ``job.message`` (which raises when there is none), at a
    fraction of the cost of peewee's lazy query.
    """
    if job.message_id is not None and "message" not in job.__rel__:
        row = fetch_by_id(db.Message, job.message_id)
        if row is not None:
            job.__rel__["message"] = row
    return job.message


def _lease_lost(job: db.Job) -> str:
    log.warning(
        "%s: job %d (%s) was taken over by another node; this run is void",
        _subject(job),
        job.id,
        job.kind,
    )
    return "lost"


def run_due_jobs(
    app,
    max_jobs: int = MAX_JOBS_PER_RUN,
    should_stop=lambda: False,
    kinds=None,
    exclude=(),
) -> RunSummary:
    """Run every due job in batches until none is due; return the counts.

    SHOULD_STOP is asked before each job; when it says yes, the jobs claimed
    but not started go back to the queue. KINDS and EXCLUDE choose the job
    kinds (``ums serve`` sends mails in a lane of their own); the transports
    are told the queue drained only by a run that sends mails.
    """
    summary = RunSummary()
    batch = app.config.get("smtp.batch_size")
    handled = 0
    while handled < max_jobs and not should_stop():
        jobs = claim_jobs(app, min(batch, max_jobs - handled), kinds, exclude)
        if not jobs:
            break
        for index, job in enumerate(jobs):
            if should_stop():
                release_jobs(app, jobs[index:])
                break
            if not start_job(app, job):
                continue
            app.node_state.begin(job.id, job.kind)
            outcome = run_job(app, job)
            app.node_state.end(outcome)
            setattr(summary, outcome, getattr(summary, outcome) + 1)
        handled += len(jobs)
    if SEND_MAIL not in exclude and (kinds is None or SEND_MAIL in kinds):
        app.fire("ums_queue_drained", ctx=PluginContext(app))
    return summary


def retry_job(job_id: int) -> db.Job:
    """Make job JOB_ID due now again (a failed one gets a fresh start)."""
    with db.write_transaction():
        job = db.Job.get_or_none(db.Job.id == job_id)
        if job is None:
            raise UmsError(f"no job {job_id}", hint="'ums queue list' shows the jobs")
        if job.state == "done":
            raise UmsError(f"job {job_id} is already done")
        attempts = 0 if job.state == "failed" else job.attempts
        db.Job.update(
            state="queued", due_at=db.db_now(), attempts=attempts, lease_owner=None
        ).where(db.Job.id == job_id).execute()
    log.info("%s: job %d queued again by the admin", _subject(job), job_id)
    return db.Job.get_by_id(job_id)


def list_jobs(include_done: bool = False) -> list[db.Job]:
    """Return the jobs not done (or all), oldest first."""
    query = db.Job.select().order_by(db.Job.id)
    if not include_done:
        query = query.where(db.Job.state != "done")
    return list(query)


def describe_job(job: db.Job) -> dict:
    """Return the JSON-able summary of a job."""
    return {
        "id": job.id,
        "kind": job.kind,
        "message": job.message_id,
        "mail": job.mail_id,
        "state": job.state,
        "attempts": job.attempts,
        "due_at": job.due_at.isoformat(),
        "last_error": job.last_error,
    }
