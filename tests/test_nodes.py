"""Several nodes on one PostgreSQL: shared work, a killed node, nothing lost."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from conftest import free_port, migrate_template, test_database_url
from nodefarm import UMS, CountingSink, create_nodes, feed_spools, wait_until
from pgcluster import TEMPLATE, PgCluster

from ums_core import db
from ums_core.app import App
from ums_core.spool import submit_to_spool

pytestmark = pytest.mark.postgresql_pass

MESSAGES = 2000
RUN_SECONDS = 120.0  # bounds, not targets: about 35 s on an idle 2-core machine


def ums_status(home: str) -> dict:
    done = subprocess.run(
        [*UMS, "--home", home, "status", "--json", "--no-probe"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def held_jobs(node_name: str) -> dict[int, int | None]:
    """Return the running jobs NODE_NAME holds a lease on: job id -> mail id."""
    query = db.Job.select().where(
        (db.Job.state == "running") & (db.Job.lease_owner == node_name)
    )
    return {job.id: job.mail_id for job in query}


def delivered() -> int:
    return db.Message.select().where(db.Message.state == "delivered").count()


@pytest.fixture
def farm(tmp_path):
    sink = CountingSink(free_port())
    sink.start()
    nodes = create_nodes(str(tmp_path), test_database_url(), 3, sink.port)
    app = App.open(nodes[0].home, load_plugins=False)
    try:
        yield sink, nodes, app
    finally:
        for node in nodes:
            node.stop()
        app.close()
        sink.stop()


def test_three_nodes_share_work_and_survive_a_killed_node(farm, tmp_path):
    sink, nodes, app = farm
    feed_spools(str(tmp_path), nodes, MESSAGES)
    started = time.monotonic()
    for node in nodes:
        node.start()
    victim, survivors = nodes[1], [nodes[0], nodes[2]]

    assert wait_until(lambda: len(ums_status(nodes[0].home)["nodes"]) == 3, 30)
    assert wait_until(
        lambda: (
            victim.spool_left() == 0
            and sink.accepted() >= MESSAGES // 4
            and held_jobs(victim.name)
        ),
        RUN_SECONDS,
        step=0.05,
    ), "the victim node never held a lease while mail was flowing"
    victim.kill()
    held = held_jobs(victim.name)

    assert wait_until(lambda: delivered() == MESSAGES, RUN_SECONDS), (
        f"{delivered()} of {MESSAGES} delivered; see {victim.stderr_path}"
    )
    elapsed = time.monotonic() - started

    # None lost: every message's e-mail reached the sink.
    counts = sink.snapshot()
    expected = {mail.msgid for mail in db.Mail.select()}
    assert len(expected) == MESSAGES and expected <= set(counts)
    # Duplicates only in the crash window: mails whose job the victim held.
    duplicated = {msgid for msgid, n in counts.items() if n > 1}
    window = {
        mail.msgid
        for mail in db.Mail.select().where(db.Mail.id.in_(list(held.values())))
    }
    assert duplicated <= window, (duplicated, window)
    # The victim's leases ran out and the survivors finished its jobs.
    for job in db.Job.select().where(db.Job.id.in_(list(held))):
        assert job.state == "done" and job.lease_owner != victim.name
    assert db.Job.select().where(db.Job.state != "done").count() == 0

    # Work shared: each survivor did a fair part of the jobs.
    live = ums_status(nodes[0].home)["nodes"]
    done = {node["name"]: node["jobs_done"] for node in live}
    total_jobs = db.Job.select().count()
    for node in survivors:
        assert done.get(node.name, 0) >= total_jobs // 10, (done, elapsed)
    # A dead node drops out of ums status once its heartbeat is stale.
    assert wait_until(
        lambda: (
            victim.name not in {n["name"] for n in ums_status(nodes[0].home)["nodes"]}
        ),
        20,
        step=1.0,
    )


def test_serve_carries_on_after_the_database_restarts(tmp_path):
    """Broken connections are dropped and opened anew: nothing is lost."""
    cluster = PgCluster().start()
    sink = CountingSink(free_port())
    sink.start()
    node = None
    try:
        migrate_template(cluster)
        url = cluster.create_database("restart", template=TEMPLATE)
        [node] = create_nodes(str(tmp_path), url, 1, sink.port, heartbeat="0.2")
        meta = {"kind": "sms", "from": "+4930555010", "to": "+491701234567"}
        submit_to_spool(node.home, {**meta, "text": "before"})
        node.start()
        assert wait_until(lambda: sink.accepted() == 1, 30)
        cluster.restart()
        submit_to_spool(node.home, {**meta, "text": "after"})
        assert wait_until(lambda: sink.accepted() == 2, 30), node.stderr_path
        # The heartbeat thread reconnected too: a beat newer than the restart.
        time.sleep(1.5)
        assert wait_until(lambda: heartbeat_ages(node.home) < 1.0, 15)
    finally:
        if node is not None:
            node.stop()
        sink.stop()
        cluster.stop()


def heartbeat_ages(home: str) -> float:
    """Return the oldest heartbeat age of the live nodes (inf when none)."""
    ages = [node["heartbeat_age"] for node in ums_status(home)["nodes"]]
    return max(ages) if ages else float("inf")
