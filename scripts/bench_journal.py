"""The journal's list page at a million stored messages: server time vs its query.

Used by ``scripts/bench.py`` for the ``journal_page`` figure, and runnable on
its own (``python scripts/bench_journal.py``) to print the figures for the
first page, a deep page (keyset, far back) and a filtered page.

The page is measured through the whole WSGI application (session lookup,
owner check, the keyset query, the template) with Flask's test client, so no
socket noise enters the figure; the baseline is the same rows fetched with
the raw indexed SQL through sqlite3.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import sys
import tempfile
import time

ROWS = 1_000_000
USERS = 1000
PAGE = 50
PASSWORD = "bench-password-1"


def seed(home: str, rows: int = ROWS, users: int = USERS) -> list[str]:
    """Insert ROWS messages for USERS users (one transaction); return the users."""
    from ums_core import db
    from ums_core.app import App
    from ums_core.secrets import hash_secret

    emails = [f"user{n}@example.test" for n in range(users)]
    app = App.open(home, load_plugins=False)
    hashed = hash_secret(PASSWORD)
    with db.write_transaction():
        for email in emails:
            db.User.create(email=email, password_hash=hashed)
    app.close()
    kinds = ("sms", "fax", "voice")
    generated = (
        (kinds[n % 3], "inbound", "+491701234567", f"+49305550{n % 100:02d}",
         f"+49305550{n % 100:02d}", f"Caller {n % 97}", "",
         f"2026-{1 + n * 12 // rows:02d}-04 08:15:00", "2026-12-04 08:15:00",
         emails[n % users], 0, "local", "stored", f"text {n}",
         2 if n % 3 == 1 else None, 12.5 if n % 3 == 2 else None, 0, "", "", 0,
         "", "")
        for n in range(rows)
    )  # fmt: skip
    sql = (
        "INSERT INTO message (kind, direction, called, sender, sender_raw,"
        " sender_name, station_id, received_at, created_at, recipient,"
        " default_recipient, location, state, text, pages, duration, content_size,"
        " error, subject, attempts, remote_station, report)"
        " VALUES ({})".format(",".join("?" * 22))
    )
    conn = sqlite3.connect(os.path.join(home, "ums.db"))
    with conn:
        conn.executemany(sql, generated)
    conn.execute("ANALYZE")
    conn.close()
    return emails


def _median_ms(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def _prerendered_client(page: str):
    """Return a test client of a bare Flask app that answers with PAGE as it is.

    The floor of any Flask page: no session, no query, no template.
    """
    import flask

    web = flask.Flask("floor")
    web.add_url_rule("/", "page", lambda: page)
    client = web.test_client()
    client.get("/")
    return lambda: client.get("/")


def measure(home: str, emails: list[str], repeat: int = 5) -> dict[str, float]:
    """Return median milliseconds of the pages and of their raw queries."""
    from ums_local_store.journal.web import create_journal

    from ums_core.app import App
    from ums_core.context import PluginContext

    app = App.open(home)
    app.config.set("journal.listen", "")
    client = create_journal(PluginContext(app)).test_client()
    email = emails[len(emails) // 2]
    done = client.post("/login", data={"email": email, "password": PASSWORD})
    if done.status_code != 302:
        raise RuntimeError(f"bench_journal: login failed ({done.status_code})")
    first = client.get("/messages")
    if first.text.count("<tr class=") != PAGE:
        raise RuntimeError("bench_journal: the first page is not full")
    conn = sqlite3.connect(os.path.join(home, "ums.db"))
    columns = (
        "id, kind, direction, sender, sender_name, called, received_at, state,"
        " pages, duration, read_at, text, subject"
    )
    sql = f"SELECT {columns} FROM message WHERE recipient = ? ORDER BY id DESC LIMIT ?"
    deep_sql = (
        f"SELECT {columns} FROM message WHERE recipient = ? AND id < ?"
        " ORDER BY id DESC LIMIT ?"
    )
    ids = [i for (i,) in conn.execute(sql.replace(columns, "id"), (email, 10**9))]
    deep = ids[-PAGE * 2]
    figures = {
        "page_ms": _median_ms(lambda: client.get("/messages"), repeat),
        "query_ms": _median_ms(
            lambda: conn.execute(sql, (email, PAGE + 1)).fetchall(), repeat
        ),
        "deep_page_ms": _median_ms(
            lambda: client.get(f"/messages?before={deep}"), repeat
        ),
        "deep_query_ms": _median_ms(
            lambda: conn.execute(deep_sql, (email, deep, PAGE + 1)).fetchall(), repeat
        ),
        "filtered_page_ms": _median_ms(
            lambda: client.get("/messages?kind=fax&unread=1"), repeat
        ),
        "flask_floor_ms": _median_ms(_prerendered_client(first.text), repeat),
    }
    conn.close()
    app.close()
    return figures


def main() -> int:
    """Seed a temporary instance and print the figures."""
    from ums_core.app import create_instance

    rows = int(sys.argv[1]) if len(sys.argv) > 1 else ROWS
    with tempfile.TemporaryDirectory(prefix="ums-bench-journal-") as root:
        home = os.path.join(root, "instance")
        create_instance(home)
        start = time.perf_counter()
        emails = seed(home, rows)
        seeded = time.perf_counter() - start
        figures = measure(home, emails)
    print(f"seeded {rows:,} messages for {USERS} users in {seeded:.1f} s")
    for name, value in figures.items():
        print(f"{name:18} {value:8.2f} ms")
    ratio = figures["page_ms"] / figures["query_ms"]
    print(f"{'page / query':18} {ratio:8.1f} ×  (target ≤ 3 × and < 50 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
