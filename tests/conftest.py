"""Fixtures: a fresh instance, a real SMTP server on loopback, the CLI.

With ``UMS_TEST_DATABASE=postgresql`` every instance a test creates gets its
own PostgreSQL database, cloned from a migrated template in a throw-away
cluster that the session starts (tests/pgcluster.py).
"""

from __future__ import annotations

import email
import itertools
import os
import socket
import threading
from email import policy

import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner
from pgcluster import TEMPLATE, ClusterError, PgCluster

from ums_core.app import App, create_instance
from ums_core.cli import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.environ.get("UMS_CORPUS") or os.path.join(REPO, "..", "shared", "corpus")


PG_MODE = os.environ.get("UMS_TEST_DATABASE", "sqlite") == "postgresql"
_pg = {"cluster": None, "created": [], "counter": itertools.count(1)}


def start_test_cluster() -> PgCluster:
    """Start the throw-away cluster; skip without PostgreSQL, but fail on CI."""
    try:
        cluster = PgCluster().start()
    except ClusterError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is needed on CI: {exc}", pytrace=False)
        pytest.skip(f"PostgreSQL not available: {exc}")
    return cluster


def pytest_collection_modifyitems(config, items):
    """Skip the tests marked sqlite_only when the pass runs on PostgreSQL."""
    for item in items:
        marker = item.get_closest_marker("sqlite_only")
        if PG_MODE and marker is not None:
            reason = marker.args[0] if marker.args else "SQLite only"
            item.add_marker(pytest.mark.skip(reason=f"SQLite only: {reason}"))
        if not PG_MODE and item.get_closest_marker("postgresql_pass") is not None:
            item.add_marker(
                pytest.mark.skip(reason="runs in the PostgreSQL pass (make test)")
            )


def migrate_template(cluster: PgCluster, name: str = TEMPLATE) -> None:
    """Create database NAME with the current schema, to clone per test."""
    from ums_core import db

    cluster.create_database(name)
    database = db.open_postgresql(cluster.url(name))
    db.migrate(database)
    database.close()


@pytest.fixture(scope="session")
def pg_cluster():
    """Return the session's throw-away PostgreSQL cluster (with a template)."""
    cluster = _pg["cluster"]
    if cluster is None:
        cluster = start_test_cluster()
        try:
            migrate_template(cluster)
        except Exception:
            cluster.stop()
            raise
        _pg["cluster"] = cluster
    yield cluster


@pytest.fixture(scope="session", autouse=True)
def _stop_pg_cluster():
    yield
    if _pg["cluster"] is not None:
        _pg["cluster"].stop()
        _pg["cluster"] = None


@pytest.fixture(autouse=True)
def _test_databases(request):
    """In PostgreSQL mode, drop the databases this test created."""
    if PG_MODE:
        request.getfixturevalue("pg_cluster")
    yield
    cluster = _pg["cluster"]
    while _pg["created"]:
        cluster.drop_database(_pg["created"].pop())


def test_database_url(keep: bool = False) -> str:
    """Return '' (SQLite), or the URL of a fresh database in PostgreSQL mode.

    The database is dropped after the test, or with the cluster when KEEP
    (for module-scoped fixtures).
    """
    if not PG_MODE:
        return ""
    name = f"t{next(_pg['counter'])}"
    if not keep:
        _pg["created"].append(name)
    return _pg["cluster"].create_database(name, template=TEMPLATE)


test_database_url.__test__ = False


def init_options(keep: bool = False) -> list[str]:
    """Return the ``ums init`` options that give the instance its own database."""
    url = test_database_url(keep)
    return ["--database", url] if url else []


def stored_bytes(home: str) -> bytes:
    """Return everything the database of instance HOME holds, as bytes.

    SQLite: the database and WAL files; PostgreSQL: every row as JSON text.
    """
    from ums_core import db

    app = App.open(home, load_plugins=False)
    try:
        if not db.is_postgresql(app.database):
            return b"".join(
                _read_quietly(app.path(n)) for n in ("ums.db", "ums.db-wal")
            )
        rows = []
        for table in app.database.get_tables():
            cursor = app.database.execute_sql(
                f'SELECT row_to_json(t)::text FROM "{table}" t'
            )
            rows += [row[0] for row in cursor.fetchall()]
        return "\n".join(rows).encode()
    finally:
        app.close()


def _read_quietly(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return b""


def corpus_path(*parts: str) -> str:
    """Return a corpus file's path, skipping the test when the corpus is absent."""
    path = os.path.join(CORPUS, *parts)
    if not os.path.exists(path):
        pytest.skip(f"corpus not available at {CORPUS}")
    return path


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SinkHandler:
    """Keep every accepted mail; answer RCPT and DATA as the test says."""

    def __init__(self):
        self.messages = []
        self.rcpt_reply = None
        self.refuse = {}
        self.sessions = []
        self.data_reply = None
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply:
            return self.rcpt_reply
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply:
            return self.data_reply
        with self.lock:
            self.sessions.append(
                (session.peer, bool(session.ssl), session.authenticated)
            )
            self.messages.append(
                (envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
            )
        return "250 Message accepted"

    def parsed(self):
        """Return the accepted mails parsed with the modern policy."""
        return [
            email.message_from_bytes(raw, policy=policy.default)
            for _, _, raw in self.messages
        ]


class SmtpSink:
    """A real aiosmtpd server on 127.0.0.1 that can be stopped and restarted."""

    def __init__(self, **smtp_options):
        self.port = free_port()
        self.handler = SinkHandler()
        self.controller = None
        self.options = smtp_options

    def start(self):
        self.controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            enable_SMTPUTF8=True,
            **self.options,
        )
        self.controller.start()

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp_sink():
    sink = SmtpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def home(tmp_path):
    path = str(tmp_path / "instance")
    config = create_instance(path, test_database_url())
    config.set("default_recipient", "fallback@example.test")
    config.set("site.area_code", "89")
    config.set("retry.schedule", "1h,1h")
    config.set("journal.listen", "")  # tests that want the journal pick a port
    config.save()
    return path


@pytest.fixture
def app(home):
    instance = App.open(home)
    yield instance
    instance.close()


def reopen(app_or_home) -> App:
    """Return the instance opened anew, as the next command would see it."""
    home = getattr(app_or_home, "home", app_or_home)
    return App.open(home)


def use_mailserver(home: str, sink: SmtpSink, **extra) -> None:
    """Switch the instance at HOME to mailserver mode with SINK as relay."""
    config = App.open(home, load_plugins=False).config
    config.set("mode", "mailserver")
    config.set("smtp.host", "127.0.0.1")
    config.set("smtp.port", str(sink.port))
    config.set("smtp.starttls", "off")
    config.set("system_sender", "ums <ums@example.test>")
    config.set("gateway.fax_domain", "fax.example.test")
    config.set("gateway.sms_domain", "sms.example.test")
    for key, value in extra.items():
        config.set(key.replace("__", "."), value)
    config.save()


@pytest.fixture
def run(home):
    runner = CliRunner()

    def invoke(*args, input=None):
        return runner.invoke(cli, ["--home", home, *args], input=input)

    return invoke
