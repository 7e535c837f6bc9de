"""Nodes: each ``ums serve`` says in the database that it lives and what it does.

A node writes its heartbeat with the database's clock and renews the leases
of the jobs it holds at the same time. A node that dies stops both: its
leases run out and another node takes its jobs; ``ums status`` stops listing
it once its heartbeat is older than a few intervals.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading

import attrs

from . import db

log = logging.getLogger(__name__)

# A node whose heartbeat is older than this many intervals counts as gone.
ALIVE_INTERVALS = 3
MIN_ALIVE_SECONDS = 10.0


@attrs.define
class NodeState:
    """What this process is doing now, as the heartbeat reports it."""

    running: dict = attrs.field(factory=dict)
    done: int = 0
    retried: int = 0
    failed: int = 0
    lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False)

    def begin(self, job_id: int, kind: str) -> None:
        """Record that job JOB_ID of KIND runs now (in this thread)."""
        with self.lock:
            self.running[threading.get_ident()] = (job_id, kind)

    def end(self, outcome: str) -> None:
        """Record that this thread's current job ended with OUTCOME."""
        with self.lock:
            self.running.pop(threading.get_ident(), None)
            if outcome in ("done", "retried", "failed"):
                setattr(self, outcome, getattr(self, outcome) + 1)

    def job_of(self, thread_ident: int | None) -> tuple | None:
        """Return (job id, kind) that the thread THREAD_IDENT runs now, or None."""
        with self.lock:
            return self.running.get(thread_ident)

    def snapshot(self) -> dict:
        """Return the fields the heartbeat writes."""
        with self.lock:
            jobs = list(self.running.values())
            activity = ", ".join(f"job {i} {k}" for i, k in jobs) or "idle"
            job, kind = jobs[0] if jobs else (None, None)
            return {
                "activity": activity,
                "job": job,
                "job_kind": kind,
                "jobs_done": self.done,
                "jobs_retried": self.retried,
                "jobs_failed": self.failed,
            }


def register_node(app) -> None:
    """Record this process as a live node (a restarted pid starts afresh)."""
    now = db.db_now()
    fields = {
        "host": os.uname().nodename,
        "pid": os.getpid(),
        "started_at": now,
        "heartbeat": now,
        "stopped_at": None,
        **app.node_state.snapshot(),
    }
    with db.write_transaction():
        db.Node.insert(name=app.node, **fields).on_conflict(
            conflict_target=[db.Node.name],
            update={getattr(db.Node, key): value for key, value in fields.items()},
        ).execute()
    log.info("node %s registered", app.node)


def beat(app) -> int:
    """Write the heartbeat and renew this node's leases; return leases renewed."""
    now = db.db_now()
    expires = now + dt.timedelta(seconds=app.config.get("queue.lease"))
    with db.write_transaction():
        db.Node.update(heartbeat=now, **app.node_state.snapshot()).where(
            db.Node.name == app.node
        ).execute()
        return (
            db.Job.update(lease_expires=expires)
            .where(
                (db.Job.state == "running")
                & (db.Job.lease_owner == app.node)
                & (db.Job.lease_expires >= now)
            )
            .execute()
        )


def unregister_node(app) -> None:
    """Record that this node stopped on purpose."""
    fields = {**app.node_state.snapshot(), "activity": "stopped"}
    with db.write_transaction():
        db.Node.update(stopped_at=db.db_now(), **fields).where(
            db.Node.name == app.node
        ).execute()
    log.info("node %s stopped", app.node)


def alive_seconds(config) -> float:
    """Return how fresh a heartbeat must be for its node to count as alive."""
    return max(MIN_ALIVE_SECONDS, ALIVE_INTERVALS * config.get("queue.heartbeat"))


def live_nodes(config) -> list[db.Node]:
    """Return the nodes whose heartbeat is fresh, by name."""
    if not db.Node.table_exists():
        return []
    since = db.db_now() - dt.timedelta(seconds=alive_seconds(config))
    query = db.Node.select().where(
        (db.Node.heartbeat >= since) & db.Node.stopped_at.is_null()
    )
    return list(query.order_by(db.Node.name))


def describe_node(node: db.Node, now: dt.datetime) -> dict:
    """Return the JSON-able summary of NODE."""
    return {
        "name": node.name,
        "host": node.host,
        "pid": node.pid,
        "started_at": node.started_at.isoformat(),
        "heartbeat_age": round((now - node.heartbeat).total_seconds(), 1),
        "activity": node.activity,
        "job": node.job,
        "job_kind": node.job_kind,
        "jobs_done": node.jobs_done,
        "jobs_retried": node.jobs_retried,
        "jobs_failed": node.jobs_failed,
    }


class Heartbeat:
    """A thread that beats every ``queue.heartbeat`` seconds until stopped."""

    def __init__(self, app):
        self.app = app
        self.stopping = threading.Event()
        self.thread = threading.Thread(
            target=self._run, name="ums-heartbeat", daemon=True
        )

    def start(self) -> None:
        """Register the node and start beating."""
        register_node(self.app)
        self.thread.start()

    def stop(self) -> None:
        """Stop beating and record the node as stopped."""
        self.stopping.set()
        self.thread.join(timeout=30)
        try:
            unregister_node(self.app)
        except Exception:  # the database is gone: the stale heartbeat tells
            log.exception("node %s: could not record the stop", self.app.node)

    def _run(self) -> None:
        interval = self.app.config.get("queue.heartbeat")
        try:
            while not self.stopping.wait(interval):
                self._beat_once()
        finally:
            db.reset_connection(self.app.database)

    def _beat_once(self) -> None:
        try:
            beat(self.app)
        except Exception:  # a lost connection: log, reconnect on the next beat
            log.exception("node %s: heartbeat failed", self.app.node)
            db.reset_connection(self.app.database)
