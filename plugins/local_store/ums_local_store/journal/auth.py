"""Journal sessions, CSRF tokens and login throttling, kept in the database.

Sessions live in the instance's database (not in a signed cookie) so that
logging out, changing the password and the idle timeout end them for good,
and so that several ``ums serve`` nodes on one database share them. The
cookie carries a random token; the table keeps only its SHA-256.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
import threading

import attrs
import peewee as pw

from ums_core import db
from ums_core.statements import Statement

log = logging.getLogger(__name__)

MAX_SESSION_AGE = dt.timedelta(hours=12)
SEEN_RESOLUTION = dt.timedelta(seconds=60)
THROTTLE_WINDOW = dt.timedelta(minutes=15)
ACCOUNT_LIMIT = 5
ADDRESS_LIMIT = 20


class JournalSession(db.BaseModel):
    """A logged-in browser: the hash of its cookie token and its CSRF token."""

    token_hash = pw.CharField(primary_key=True)
    email = pw.CharField(index=True)
    user_key = pw.CharField(default="")
    csrf = pw.CharField()
    address = pw.CharField(default="")
    created_at = db.UtcDateTimeField(default=db.utcnow)
    seen_at = db.UtcDateTimeField(default=db.utcnow)


class LoginFailure(db.BaseModel):
    """One failed login, counted per account and per client address."""

    key = pw.CharField()
    failed_at = db.UtcDateTimeField(default=db.utcnow)

    class Meta:
        indexes = ((("key", "failed_at"), False),)


JOURNAL_MODELS = (JournalSession, LoginFailure)


@attrs.frozen
class Session:
    """The session of the current request."""

    token: str
    email: str
    csrf: str
    user_key: str = ""


def create_tables() -> None:
    """Create the journal's tables if they are missing (both databases)."""
    with db.write_transaction():
        db.database.create_tables(JOURNAL_MODELS, safe=True)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


_ACTIVE_USER = Statement(
    ("str",),
    lambda email: (
        db.User.select(
            db.User.id,
            db.User.created_at,
            db.User.password_hash,
            db.User.language,
        )
        .where((db.User.email == email) & (db.User.active == True))  # noqa: E712
        .limit(1)
    ),
)
_SESSION = Statement(
    ("str",),
    lambda token_hash: JournalSession.select(
        JournalSession.email,
        JournalSession.user_key,
        JournalSession.csrf,
        JournalSession.created_at,
        JournalSession.seen_at,
    ).where(JournalSession.token_hash == token_hash),
)


def active_user(email: str) -> db.User | None:
    """Return the active user EMAIL (id, created_at, password_hash, language)."""
    found = _ACTIVE_USER.first(email)
    if found is None:
        return None
    user_id, created, password_hash, language = found
    return db.User(
        id=user_id,
        email=email,
        created_at=db.User.created_at.python_value(created),
        password_hash=password_hash,
        language=language,
    )


def user_key(user: db.User) -> str:
    """Return what ties a session to this user as they are now.

    A new password (``ums users reset-password`` too) or a user removed and
    added again gives another key, and so ends the sessions made before.
    """
    text = f"{user.id}:{user.created_at.isoformat()}:{user.password_hash or ''}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def start_session(user: db.User, address: str, replaces: str | None = None) -> Session:
    """Return a new session for USER, ending the one with token REPLACES."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    key = user_key(user)
    with db.write_transaction():
        if replaces:
            JournalSession.delete().where(
                JournalSession.token_hash == _hash(replaces)
            ).execute()
        JournalSession.create(
            token_hash=_hash(token),
            email=user.email,
            user_key=key,
            csrf=csrf,
            address=address,
        )
    return Session(token=token, email=user.email, csrf=csrf, user_key=key)


def find_session(token: str | None, idle: dt.timedelta) -> Session | None:
    """Return the live session of TOKEN, or None (ending it if it expired)."""
    if not token or len(token) > 100:
        return None
    token_hash = _hash(token)
    found = _SESSION.first(token_hash)
    if found is None:
        return None
    email, key, csrf, created, seen = found
    created = JournalSession.created_at.python_value(created)
    seen = JournalSession.seen_at.python_value(seen)
    now = db.utcnow()
    if now - seen > idle or now - created > MAX_SESSION_AGE:
        end_session(token)
        log.info("journal: session of %s expired", email)
        return None
    if now - seen > min(SEEN_RESOLUTION, idle / 4):
        with db.write_transaction():
            JournalSession.update(seen_at=now).where(
                JournalSession.token_hash == token_hash
            ).execute()
    return Session(token=token, email=email, csrf=csrf, user_key=key)


def end_session(token: str) -> None:
    """End the session of TOKEN."""
    with db.write_transaction():
        JournalSession.delete().where(
            JournalSession.token_hash == _hash(token)
        ).execute()


def end_sessions_of(email: str, keep: str | None = None) -> int:
    """End every session of EMAIL but the one with token KEEP; return how many."""
    query = JournalSession.delete().where(JournalSession.email == email)
    if keep:
        query = query.where(JournalSession.token_hash != _hash(keep))
    with db.write_transaction():
        return query.execute()


def check_csrf(session: Session | None, submitted: str | None) -> bool:
    """Return True when SUBMITTED is the CSRF token of SESSION."""
    if session is None or not submitted:
        return False
    return hmac.compare_digest(session.csrf.encode(), submitted.encode())


def _failure_keys(email: str, address: str) -> tuple[str, str]:
    return f"account:{email.strip().lower()[:200]}", f"address:{address[:60]}"


_LOCKS = tuple(threading.Lock() for _ in range(64))


def account_lock(email: str) -> threading.Lock:
    """Return the lock that serialises login checks of EMAIL in this process.

    Without it, parallel guesses would all pass the throttle check before the
    first failure is counted.
    """
    digest = hashlib.sha256(email.strip().lower().encode()).digest()
    return _LOCKS[digest[0] % len(_LOCKS)]


def throttled(email: str, address: str) -> bool:
    """Return True when EMAIL or ADDRESS failed too often just now."""
    account, client = _failure_keys(email, address)
    since = db.utcnow() - THROTTLE_WINDOW

    def count(key: str) -> int:
        return (
            LoginFailure.select()
            .where((LoginFailure.key == key) & (LoginFailure.failed_at > since))
            .count()
        )

    return count(account) >= ACCOUNT_LIMIT or count(client) >= ADDRESS_LIMIT


def record_failure(email: str, address: str) -> None:
    """Count a failed login for EMAIL and ADDRESS; forget old failures."""
    keys = _failure_keys(email, address)
    with db.write_transaction():
        LoginFailure.delete().where(
            LoginFailure.failed_at < db.utcnow() - THROTTLE_WINDOW
        ).execute()
        for key in keys:
            LoginFailure.create(key=key)


def clear_failures(email: str) -> None:
    """Forget the failed logins of EMAIL's account after a good one."""
    account, _ = _failure_keys(email, "")
    with db.write_transaction():
        LoginFailure.delete().where(LoginFailure.key == account).execute()
