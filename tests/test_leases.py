"""Leases, heartbeats and nodes: one clock, one worker per job, live nodes shown."""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest

from ums_core import db, nodes
from ums_core.app import App
from ums_core.intake import receive_message
from ums_core.model import IncomingMessage
from ums_core.queue import claim_jobs, run_job, start_job

SKEW = dt.timedelta(hours=1)


def queue_sms(app, count: int) -> None:
    for index in range(count):
        receive_message(
            app,
            IncomingMessage(kind="sms", called="+4930999", text=f"t{index}"),
            run_now=False,
        )


def other_node(home: str, name: str) -> App:
    """Return a second process's view of the instance, under another node name."""
    node = App.open(home)
    node.node = name
    return node


def test_claims_of_two_nodes_at_once_never_overlap(app, home):
    """Two threads, each its own connection, claim the same queue at once."""
    queue_sms(app, 40)
    nodes_ = [other_node(home, f"n{i}:1") for i in range(2)]
    claimed = {node.node: [] for node in nodes_}
    errors = []
    barrier = threading.Barrier(2)

    def claim(node):
        barrier.wait(timeout=10)
        try:
            # Under SKIP LOCKED a claim may return fewer rows than asked for.
            for _ in range(30):
                claimed[node.node] += [job.id for job in claim_jobs(node, 3)]
        except Exception as exc:  # reported below: a thread cannot fail the test
            errors.append(repr(exc))
        finally:
            db.database.close()

    threads = [threading.Thread(target=claim, args=(n,)) for n in nodes_]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    first, second = claimed.values()
    assert not set(first) & set(second)
    assert sorted(first + second) == [
        job.id for job in db.Job.select().order_by(db.Job.id)
    ]


def test_lease_expiry_follows_the_database_clock(app, monkeypatch):
    """A node whose own clock runs an hour fast still leases for queue.lease."""
    queue_sms(app, 1)
    monkeypatch.setattr(db, "utcnow", lambda: dt.datetime.now(dt.UTC) + SKEW)
    db.forget_clock_offset()  # a node that started with its clock fast
    [job] = claim_jobs(app, 1)
    lease = (job.lease_expires - dt.datetime.now(dt.UTC)).total_seconds()
    expected = app.config.get("queue.lease")
    if db.is_postgresql():
        assert expected - 5 < lease <= expected
    else:  # one machine, one clock: SQLite reads this process's clock
        assert lease > expected


@pytest.mark.postgresql_pass
def test_a_fast_node_does_not_take_a_live_lease(app, home, monkeypatch):
    queue_sms(app, 1)
    [job] = claim_jobs(app, 1)
    monkeypatch.setattr(db, "utcnow", lambda: dt.datetime.now(dt.UTC) + SKEW)
    db.forget_clock_offset()
    fast = other_node(home, "fast:1")
    assert claim_jobs(fast, 5) == []
    assert start_job(app, job) is True


def test_database_clock_is_measured_not_asked_each_time(app, monkeypatch):
    db.forget_clock_offset()
    db.db_now()
    asked = []
    real = db._measure_clock_offset
    monkeypatch.setattr(db, "_measure_clock_offset", lambda: asked.append(1) or real())
    for _ in range(50):
        db.db_now()
    assert asked == []
    monkeypatch.setattr(db, "CLOCK_REFRESH", 0.0)
    db.db_now()
    assert asked == ([1] if db.is_postgresql() else [])


def test_expired_lease_of_a_silent_node_is_taken_over(app, home):
    queue_sms(app, 1)
    db.Job.update(
        state="running",
        lease_owner="gone-host:4242",
        lease_expires=db.db_now() - dt.timedelta(seconds=1),
    ).execute()
    taker = other_node(home, "taker:1")
    [job] = claim_jobs(taker, 5)
    assert job.lease_owner == "taker:1" and start_job(taker, job)


def test_heartbeat_renews_only_this_nodes_live_leases(app):
    queue_sms(app, 3)
    mine, expired, theirs = claim_jobs(app, 3)
    soon = db.db_now() + dt.timedelta(seconds=2)
    db.Job.update(lease_expires=soon).where(db.Job.id == mine.id).execute()
    db.Job.update(lease_expires=db.db_now() - dt.timedelta(seconds=1)).where(
        db.Job.id == expired.id
    ).execute()
    db.Job.update(lease_owner="other:1", lease_expires=soon).where(
        db.Job.id == theirs.id
    ).execute()
    nodes.register_node(app)
    assert nodes.beat(app) == 1
    renewed = db.Job.get_by_id(mine.id).lease_expires
    assert renewed > soon + dt.timedelta(seconds=60)
    assert db.Job.get_by_id(theirs.id).lease_expires == soon


def test_status_lists_live_nodes_and_what_they_do(app, run):
    nodes.register_node(app)
    app.node_state.begin(7, "send_mail")
    nodes.beat(app)
    db.Node.create(
        name="dead:1",
        host="dead",
        pid=1,
        started_at=db.db_now() - dt.timedelta(hours=1),
        heartbeat=db.db_now() - dt.timedelta(minutes=5),
    )
    status = json.loads(run("status", "--json", "--no-probe").stdout)
    [node] = status["nodes"]
    assert node["name"] == app.node and node["activity"] == "job 7 send_mail"
    text = run("status", "--no-probe").stdout
    assert "1 live" in text and "job 7 send_mail" in text and "dead:1" not in text
    app.node_state.end("done")
    nodes.unregister_node(app)
    assert json.loads(run("status", "--json", "--no-probe").stdout)["nodes"] == []


def test_restarted_pid_registers_afresh(app):
    nodes.register_node(app)
    app.node_state.end("done")
    nodes.unregister_node(app)
    nodes.register_node(app)
    [row] = db.Node.select()
    assert row.stopped_at is None and row.activity == "idle"


def test_schema_4_adds_the_node_table_to_a_version_3_database(app, home):
    app.database.drop_tables([db.Node])
    db.set_meta("schema_version", "3")
    app.close()
    again = App.open(home, load_plugins=False)
    assert db.read_schema_version(again.database) == db.SCHEMA_VERSION
    assert again.database.table_exists("node")


def test_a_job_taken_over_meanwhile_commits_nothing(app):
    """A node that lost its lease mid-job: its result rolls back, the taker's counts."""
    queue_sms(app, 1)
    [job] = claim_jobs(app, 1)
    assert start_job(app, job)
    db.Job.update(lease_owner="taker:1").where(db.Job.id == job.id).execute()
    assert run_job(app, job) == "lost"
    row = db.Job.get_by_id(job.id)
    assert (row.state, row.lease_owner) == ("running", "taker:1")
    assert db.Message.get_by_id(job.message_id).state == "received"


def test_a_failure_after_a_takeover_does_not_requeue_the_job(app):
    queue_sms(app, 1)
    [job] = claim_jobs(app, 1)
    assert start_job(app, job)
    db.Job.update(lease_owner="taker:1").where(db.Job.id == job.id).execute()
    job.kind = "no_such_kind"  # fails for good at once
    assert run_job(app, job) == "lost"
    assert db.Job.get_by_id(job.id).state == "running"
