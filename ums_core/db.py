"""The database: peewee models, connection set-up and schema migrations.

SQLite (WAL) in the instance folder is the embedded default; every write
transaction uses ``BEGIN IMMEDIATE`` there (see PITFALLS 19). PostgreSQL
(``database = "postgresql://…"``) lets several nodes share one queue; the
models and migrations are the same on both.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time

import peewee as pw

from .errors import UmsError

log = logging.getLogger(__name__)

database = pw.DatabaseProxy()
SCHEMA_VERSION = 4
# The key of the PostgreSQL advisory lock that serialises schema migrations.
MIGRATION_LOCK = 0x756D73


def utcnow() -> dt.datetime:
    """Return the current time in UTC, timezone-aware."""
    return dt.datetime.now(dt.UTC)


def is_postgresql(db: pw.Database | None = None) -> bool:
    """Return whether DB (default: the bound database) is PostgreSQL."""
    db = db or database.obj
    return isinstance(db, pw.PostgresqlDatabase)


# How far the database's clock is ahead of this machine's, for which database
# and when (monotonic) that was measured; measured again after CLOCK_REFRESH s.
CLOCK_REFRESH = 10.0
_clock = {"offset": None, "db": None, "measured": 0.0}


def db_now() -> dt.datetime:
    """Return the database's clock in UTC (this machine's clock on SQLite).

    Several nodes share one PostgreSQL; leases compared against one clock
    stay right when a node's own clock runs fast or slow. The offset between
    the clocks is measured every CLOCK_REFRESH seconds, not on every call.
    """
    if not is_postgresql():
        return utcnow()
    if (
        _clock["offset"] is None
        or _clock["db"] is not database.obj
        or time.monotonic() - _clock["measured"] > CLOCK_REFRESH
    ):
        _clock["offset"] = _measure_clock_offset()
        _clock["db"] = database.obj
        _clock["measured"] = time.monotonic()
    return utcnow() + _clock["offset"]


def forget_clock_offset() -> None:
    """Measure the database's clock again on the next db_now()."""
    _clock["offset"] = None


def _measure_clock_offset() -> dt.timedelta:
    before = utcnow()
    cursor = database.execute_sql("SELECT clock_timestamp() AT TIME ZONE 'UTC'")
    server = cursor.fetchone()[0].replace(tzinfo=dt.UTC)
    after = utcnow()
    return server - (before + (after - before) / 2)


class UtcDateTimeField(pw.DateTimeField):
    """A datetime stored as naive UTC and read back timezone-aware."""

    def db_value(self, value):
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return super().db_value(value)

    def python_value(self, value):
        value = super().python_value(value)
        if isinstance(value, dt.datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value


class BaseModel(pw.Model):
    class Meta:
        database = database
        legacy_table_names = False


class Meta(BaseModel):
    """Key/value facts about the instance (schema version, instance id)."""

    key = pw.CharField(primary_key=True)
    value = pw.TextField()


class User(BaseModel):
    email = pw.CharField(unique=True)
    name = pw.TextField(default="")
    language = pw.CharField(default="en")
    active = pw.BooleanField(default=True)
    password_hash = pw.CharField(null=True)
    created_at = UtcDateTimeField(default=utcnow)


class Number(BaseModel):
    user = pw.ForeignKeyField(User, backref="numbers", on_delete="CASCADE")
    kind = pw.CharField()
    e164 = pw.CharField(index=True)


class Message(BaseModel):
    kind = pw.CharField()
    direction = pw.CharField(default="inbound")
    called = pw.CharField()
    sender = pw.CharField(null=True)
    sender_raw = pw.CharField(default="")
    sender_name = pw.CharField(default="")
    station_id = pw.CharField(default="")
    received_at = UtcDateTimeField()
    created_at = UtcDateTimeField(default=utcnow)
    recipient = pw.CharField(null=True, index=True)
    default_recipient = pw.BooleanField(default=False)
    location = pw.CharField(null=True)
    state = pw.CharField(default="received")
    pages = pw.IntegerField(null=True)
    duration = pw.FloatField(null=True)
    text = pw.TextField(default="")
    content_name = pw.CharField(null=True)
    content_type = pw.TextField(null=True)
    content_size = pw.IntegerField(default=0)
    content_sha256 = pw.CharField(null=True)
    archive_ref = pw.TextField(null=True)
    error = pw.TextField(default="")
    read_at = UtcDateTimeField(null=True)
    source_ref = pw.TextField(null=True, unique=True)
    subject = pw.CharField(default="")
    segments = pw.IntegerField(null=True)
    attempts = pw.IntegerField(default=0)
    remote_station = pw.CharField(default="")
    report = pw.TextField(default="")
    source_name = pw.TextField(null=True)

    class Meta:
        indexes = ((("recipient", "id"), False), (("state",), False))


class Mail(BaseModel):
    message = pw.ForeignKeyField(Message, null=True, backref="mails")
    purpose = pw.CharField()
    sender = pw.TextField()
    recipients = pw.TextField()
    msgid = pw.TextField(unique=True)
    path = pw.CharField()
    state = pw.CharField(default="queued")
    created_at = UtcDateTimeField(default=utcnow)
    sent_at = UtcDateTimeField(null=True)
    last_error = pw.TextField(default="")


class Job(BaseModel):
    kind = pw.CharField()
    message = pw.ForeignKeyField(Message, null=True, backref="jobs")
    mail = pw.ForeignKeyField(Mail, null=True, backref="jobs")
    state = pw.CharField(default="queued")
    attempts = pw.IntegerField(default=0)
    due_at = UtcDateTimeField(default=db_now)
    lease_owner = pw.TextField(null=True)
    lease_expires = UtcDateTimeField(null=True)
    last_error = pw.TextField(default="")
    created_at = UtcDateTimeField(default=utcnow)
    finished_at = UtcDateTimeField(null=True)

    class Meta:
        indexes = ((("state", "due_at"), False),)


class Mailbox(BaseModel):
    """A user's voice mailbox; the PIN is kept only as its argon2 hash."""

    user = pw.ForeignKeyField(
        User, unique=True, backref="mailboxes", on_delete="CASCADE"
    )
    number = pw.CharField(index=True)
    pin_hash = pw.CharField()
    failures = pw.IntegerField(default=0)
    locked = pw.BooleanField(default=False)
    trust_own_numbers = pw.BooleanField(default=False)
    created_at = UtcDateTimeField(default=utcnow)


class AnnouncementAccess(BaseModel):
    """Access data for recording the global announcement (not a user login)."""

    username = pw.CharField(unique=True)
    recipient = pw.CharField()
    pin_hash = pw.CharField()
    failures = pw.IntegerField(default=0)
    locked = pw.BooleanField(default=False)
    created_at = UtcDateTimeField(default=utcnow)


class Announcement(BaseModel):
    """The current global announcement: a WAV file in the instance."""

    content_name = pw.CharField()
    content_size = pw.IntegerField(default=0)
    content_sha256 = pw.CharField()
    duration = pw.FloatField(null=True)
    detail = pw.TextField(default="")
    set_at = UtcDateTimeField(default=utcnow)


class Node(BaseModel):
    """One ``ums serve`` process: who it is, when it last said so, what it does.

    ``heartbeat`` is written with the database's clock, so a node is alive
    when its heartbeat is fresher than a few seconds of that same clock.
    """

    name = pw.CharField(unique=True, max_length=200)
    host = pw.TextField()
    pid = pw.IntegerField()
    started_at = UtcDateTimeField()
    heartbeat = UtcDateTimeField(index=True)
    stopped_at = UtcDateTimeField(null=True)
    activity = pw.TextField(default="idle")
    job = pw.IntegerField(null=True)
    job_kind = pw.TextField(null=True)
    jobs_done = pw.IntegerField(default=0)
    jobs_retried = pw.IntegerField(default=0)
    jobs_failed = pw.IntegerField(default=0)


VOICE_MODELS = (Mailbox, AnnouncementAccess, Announcement)
MODELS = (Meta, User, Number, Message, Mail, Job, *VOICE_MODELS)
ALL_MODELS = (*MODELS, Node)


def _migrate_to_1(db: pw.Database) -> None:
    db.create_tables(MODELS)


OUTBOUND_COLUMNS = (
    "subject",
    "segments",
    "attempts",
    "remote_station",
    "report",
    "source_name",
)


def _migrate_to_2(db: pw.Database) -> None:
    """Add the columns outbound messages need (schema 1 had inbound only)."""
    from playhouse.migrate import SchemaMigrator, migrate

    present = {column.name for column in db.get_columns(Message._meta.table_name)}
    migrator = SchemaMigrator.from_database(db)
    steps = [
        migrator.add_column(Message._meta.table_name, name, Message._meta.fields[name])
        for name in OUTBOUND_COLUMNS
        if name not in present
    ]
    migrate(*steps)


def _migrate_to_3(db: pw.Database) -> None:
    """Add the voice mailbox and global announcement tables."""
    db.create_tables(VOICE_MODELS, safe=True)


def _migrate_to_4(db: pw.Database) -> None:
    """Add the table of ``ums serve`` nodes and their heartbeats."""
    db.create_tables([Node], safe=True)


MIGRATIONS = {
    1: _migrate_to_1,
    2: _migrate_to_2,
    3: _migrate_to_3,
    4: _migrate_to_4,
}


def open_database(path: str, busy_seconds: float = 10.0) -> pw.Database:
    """Open (and bind) the SQLite database at PATH in WAL mode."""
    db = pw.SqliteDatabase(
        path,
        pragmas={
            "journal_mode": "wal",
            "synchronous": "full",
            "foreign_keys": 1,
            "busy_timeout": int(busy_seconds * 1000),
        },
        timeout=busy_seconds,
    )
    database.initialize(db)
    return db


def open_postgresql(url: str) -> pw.Database:
    """Open (and bind) the PostgreSQL database at URL.

    peewee keeps one connection per thread; ``ums serve``'s threads are few
    and long-lived, so each holds one connection for its life.
    """
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        raise UmsError(
            "PostgreSQL needs the psycopg2 driver",
            hint="pip install 'ums-core[postgresql]'",
        ) from None
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    db = pw.PostgresqlDatabase(url)
    database.initialize(db)
    return db


def connect(url: str, default_path: str) -> pw.Database:
    """Open the database the config URL names ('' = SQLite at DEFAULT_PATH)."""
    if url.startswith("postgres"):
        return open_postgresql(url)
    return open_database(url[len("sqlite:///") :] if url else default_path)


def reset_connection(db: pw.Database | None = None) -> None:
    """Close this thread's connection after an error; the next query reopens it.

    A broken connection (the database server restarted) is never reused.
    """
    db = db or database.obj
    try:
        db.close()
    except pw.PeeweeException as exc:
        log.warning("closing the database connection failed: %s", exc)


def write_transaction(db: pw.Database | None = None):
    """Return a transaction that takes the write lock at once on SQLite."""
    db = db or database.obj
    if isinstance(db, pw.SqliteDatabase):
        return db.atomic("IMMEDIATE")
    return db.atomic()


@contextlib.contextmanager
def relaxed_transaction(db: pw.Database | None = None):
    """A write transaction whose commit does not wait for the disk.

    For bookkeeping whose loss in a power failure harms nothing because the
    step is simply done again (a job's start, a composed e-mail, a message
    stored locally). The log stays in order: a later durable commit makes
    this one durable too, and a power failure can only drop a tail of such
    commits, never one before a durable one. SQLite: synchronous NORMAL for
    the transaction (WAL); PostgreSQL: synchronous_commit off for it.
    """
    db = db or database.obj
    if isinstance(db, pw.SqliteDatabase) and not db.in_transaction():
        db.execute_sql("PRAGMA synchronous = NORMAL")
        try:
            with db.atomic("IMMEDIATE") as transaction:
                yield transaction
        finally:
            db.execute_sql("PRAGMA synchronous = FULL")
        return
    with write_transaction(db) as transaction:
        if is_postgresql(db):
            db.execute_sql("SET LOCAL synchronous_commit TO OFF")
        yield transaction


def read_schema_version(db: pw.Database) -> int:
    """Return the recorded schema version (0 for an empty database)."""
    if not db.table_exists(Meta._meta.table_name):
        return 0
    row = Meta.get_or_none(Meta.key == "schema_version")
    return int(row.value) if row else 0


def migrate(db: pw.Database) -> int:
    """Bring the schema up to SCHEMA_VERSION; return the version now."""
    if is_postgresql(db):
        with db.atomic():
            # Nodes starting together: the first migrates, the others wait.
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            return _migrate_steps(db)
    return _migrate_steps(db)


def _migrate_steps(db: pw.Database) -> int:
    version = read_schema_version(db)
    if version > SCHEMA_VERSION:
        raise UmsError(
            f"the database has schema {version}; this ums knows {SCHEMA_VERSION}",
            hint="upgrade ums-core",
        )
    for target in range(version + 1, SCHEMA_VERSION + 1):
        with write_transaction(db):
            MIGRATIONS[target](db)
            set_meta("schema_version", str(target))
        log.info("database schema migrated to version %d", target)
    return SCHEMA_VERSION


def get_meta(key: str, default: str | None = None) -> str | None:
    """Return the instance fact KEY."""
    row = Meta.get_or_none(Meta.key == key)
    return row.value if row else default


def ensure_meta(key: str, value: str) -> str:
    """Record the instance fact KEY unless it exists; return the recorded value."""
    Meta.insert(key=key, value=value).on_conflict_ignore().execute()
    return get_meta(key)


def set_meta(key: str, value: str) -> None:
    """Record the instance fact KEY (an upsert on both databases)."""
    Meta.insert(key=key, value=value).on_conflict(
        conflict_target=[Meta.key], update={Meta.value: value}
    ).execute()
