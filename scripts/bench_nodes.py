"""Measure how ums throughput grows with 1, 2 and 4 nodes on one PostgreSQL.

Run ``python scripts/bench_nodes.py`` (or ``make bench-nodes``): it starts a
throw-away PostgreSQL cluster on a Unix socket, and for each node count runs a
few rounds of MESSAGES SMS through that many ``ums serve`` processes into a
loopback SMTP sink. A round's clock starts when every node has registered and
stops when every message is delivered. It prints a table and writes
``bench/nodes.json``. Everything lives in one temporary folder, removed after.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))

from nodefarm import CountingSink, create_nodes, feed_spools, wait_until  # noqa: E402
from pgcluster import TEMPLATE, PgCluster  # noqa: E402

from ums_core import db  # noqa: E402
from ums_core.app import App  # noqa: E402

NODE_COUNTS = (1, 2, 4)
RUNS = 3
MESSAGES = 600
ROUND_SECONDS = 120.0
RESULTS = os.path.join(REPO, "bench", "nodes.json")

log = logging.getLogger("bench_nodes")


def pick_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_template(cluster: PgCluster) -> None:
    cluster.create_database(TEMPLATE)
    database = db.open_postgresql(cluster.url(TEMPLATE))
    db.migrate(database)
    database.close()


def delivered() -> int:
    return db.Message.select().where(db.Message.state == "delivered").count()


def registered() -> int:
    return db.Node.select().where(db.Node.stopped_at.is_null()).count()


def run_round(cluster: PgCluster, root: str, count: int, number: int) -> float:
    """Push MESSAGES through COUNT nodes; return messages per second."""
    name = f"bench_{count}_{number}"
    url = cluster.create_database(name, template=TEMPLATE)
    folder = os.path.join(root, name)
    sink = CountingSink(pick_port())
    sink.start()
    nodes = create_nodes(folder, url, count, sink.port, lease="30s", heartbeat="1")
    app = App.open(nodes[0].home, load_plugins=False)
    try:
        feed_spools(folder, nodes, MESSAGES, fax_every=0)
        for node in nodes:
            node.start()
        if not wait_until(lambda: registered() == count, 60, step=0.02):
            raise RuntimeError(f"{count} nodes did not start; see {folder}")
        started = time.monotonic()
        if not wait_until(lambda: delivered() == MESSAGES, ROUND_SECONDS, 0.05):
            raise RuntimeError(f"round {name} did not finish: {delivered()} delivered")
        elapsed = time.monotonic() - started
    finally:
        for node in nodes:
            node.stop()
        app.close()
        sink.stop()
        cluster.drop_database(name)
        shutil.rmtree(folder, ignore_errors=True)
    rate = MESSAGES / elapsed
    log.info(
        "round %s: %d messages in %.2f s (%.1f msg/s)", name, MESSAGES, elapsed, rate
    )
    return rate


def summarise(rates: dict[int, list[float]]) -> list[dict]:
    base = statistics.median(rates[NODE_COUNTS[0]])
    rows = []
    for count in NODE_COUNTS:
        median = statistics.median(rates[count])
        rows.append(
            {
                "nodes": count,
                "messages": MESSAGES,
                "runs": len(rates[count]),
                "median_msg_per_s": round(median, 1),
                "spread": [round(min(rates[count]), 1), round(max(rates[count]), 1)],
                "ratio_to_1_node": round(median / base, 2),
            }
        )
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"{'nodes':>5}  {'msg/s (median)':>14}  {'spread':>15}  {'× 1 node':>8}")
    for row in rows:
        low, high = row["spread"]
        print(
            f"{row['nodes']:>5}  {row['median_msg_per_s']:>14.1f}"
            f"  {f'{low:.1f}–{high:.1f}':>15}  {row['ratio_to_1_node']:>8.2f}"
        )
    print(f"({os.cpu_count()} CPUs; PostgreSQL with fsync off; SMS through the spool)")


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)  # the rounds; not every session and user added
    root = tempfile.mkdtemp(prefix="ums-bench-nodes-")
    cluster = PgCluster().start()
    try:
        prepare_template(cluster)
        rates = {count: [] for count in NODE_COUNTS}
        for number in range(RUNS):
            for count in NODE_COUNTS:
                rates[count].append(run_round(cluster, root, count, number))
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    rows = summarise(rates)
    print_table(rows)
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w", encoding="utf-8") as handle:
        json.dump({"cpus": os.cpu_count(), "results": rows}, handle, indent=1)
        handle.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
