"""The global announcement: one WAV for the whole company, and who may record it.

Access data for recording it is a user name ``ann-NNNN`` and a six-digit PIN
(kept only as an argon2 hash). They are no user login: they log in only at
``announcement.number``. Each recipient holds at most one set; issuing a new
one replaces theirs, and revoking removes every set. Logins follow the lock
rule of :mod:`ums_core.voicemail` (``voicemail.max_failures``). The user name
and the PIN never reach a log.
"""

from __future__ import annotations

import logging
import os
import secrets

import attrs

from . import content, db
from .accounts import announce_secret
from .context import PluginContext
from .errors import MediaError, UmsError
from .media import probe_voice
from .secrets import generate_pin, hash_secret
from .users import normalize_email
from .voicemail import LoginResult, judge_pin

log = logging.getLogger(__name__)

USERNAME_PREFIX = "ann-"
UNKNOWN_USERNAME = "unknown user name"
CONTENT_AREA = "announcement"


@attrs.frozen
class IssuedAccess:
    """New access data and whether a plugin queued it in a mail."""

    recipient: str
    username: str
    pin: str = attrs.field(repr=False)
    number: str
    mailed: bool


def issue_access(app, recipient: str) -> IssuedAccess:
    """Make access data for RECIPIENT to record the announcement; mail it."""
    email = normalize_email(recipient)
    number = app.config.get("announcement.number")
    if not number:
        raise UmsError(
            "announcement.number is not set: the access data would name no "
            "number to call",
            hint="ums config set announcement.number NUMBER",
        )
    pin = generate_pin()
    username = _store_access(email, hash_secret(pin))
    log.info("announcement: access data issued for %s", email)
    mailed = announce_secret(
        app,
        "ums_announcement_access_issued",
        recipient=email,
        username=username,
        pin=pin,
        number=number,
        ctx=PluginContext(app),
    )
    return IssuedAccess(email, username, pin, number, mailed)


def _store_access(email: str, pin_hash: str) -> str:
    """Replace the access data of EMAIL; return the new user name."""
    model = db.AnnouncementAccess
    with db.write_transaction():
        model.delete().where(model.recipient == email).execute()
        username = _new_username()
        model.create(username=username, recipient=email, pin_hash=pin_hash)
    return username


def _new_username() -> str:
    for _ in range(100):
        username = f"{USERNAME_PREFIX}{secrets.randbelow(10_000):04d}"
        taken = db.AnnouncementAccess.get_or_none(
            db.AnnouncementAccess.username == username
        )
        if taken is None:
            return username
    raise UmsError(
        "no free announcement user name is left",
        hint="'ums announcement revoke' clears the old access data",
    )


def revoke_access() -> int:
    """Invalidate every set of access data; return how many there were."""
    with db.write_transaction():
        count = db.AnnouncementAccess.delete().execute()
    log.info("announcement: %d sets of access data revoked", count)
    return count


def normalize_username(text: str) -> str:
    """Return USERNAME as stored; the phone side may send the digits only."""
    value = (text or "").strip().lower()
    if value.isdigit():
        value = USERNAME_PREFIX + value
    return value


def check_access_login(app, username: str, pin: str | None) -> LoginResult:
    """Return the LoginResult of USERNAME logging in to record the announcement."""
    limit = app.config.get("voicemail.max_failures")
    row = db.AnnouncementAccess.get_or_none(
        db.AnnouncementAccess.username == normalize_username(username)
    )
    if row is None:
        result = LoginResult(False, UNKNOWN_USERNAME)
    else:
        result = judge_pin(row, pin, limit, row.recipient)
    log.info("announcement: login: %s", result.describe())
    return result


def unlock_access(username: str) -> None:
    """Unlock the access data USERNAME and clear its count of wrong PINs."""
    with db.write_transaction():
        count = (
            db.AnnouncementAccess.update(failures=0, locked=False)
            .where(db.AnnouncementAccess.username == normalize_username(username))
            .execute()
        )
    if not count:
        raise UmsError(
            f"no access data {username!r}",
            hint="'ums announcement show' lists the access data",
        )
    log.info("announcement: access data unlocked")


def set_announcement(app, path: str) -> dict:
    """Make the WAV at PATH the announcement, replacing the previous one."""
    _check_size(app, path)
    info = probe_voice(path)
    stored = content.store_file(app.content_root, CONTENT_AREA, path, ".wav")
    try:
        with db.write_transaction():
            old = [row.content_name for row in db.Announcement.select()]
            db.Announcement.delete().execute()
            row = db.Announcement.create(
                content_name=stored.name,
                content_size=stored.size,
                content_sha256=stored.sha256,
                duration=info.duration,
                detail=info.detail,
            )
    except Exception:
        _remove_quietly(app.content_path(stored.name))
        raise
    for name in old:
        _remove_quietly(app.content_path(name))
    log.info("announcement: set (%.1f s, %s)", info.duration or 0, info.detail)
    return describe_announcement(app, row)


def _check_size(app, path: str) -> None:
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise MediaError(f"cannot read {path}: {exc.strerror}") from None
    limit = app.config.get("limits.max_content_mb") * 1024 * 1024
    if size > limit:
        raise MediaError(
            f"the announcement is too large ({size} bytes, limit {limit})",
            hint="raise limits.max_content_mb",
        )


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def describe_announcement(app, row: db.Announcement | None) -> dict:
    """Return the JSON-able summary of the announcement row (None: not set)."""
    if row is None:
        return {"file": None, "duration": None, "detail": "", "set_at": None}
    return {
        "file": app.content_path(row.content_name),
        "duration": row.duration,
        "detail": row.detail,
        "set_at": row.set_at.isoformat(),
    }


def show_announcement(app) -> dict:
    """Return the announcement and who holds access data; never a PIN."""
    data = describe_announcement(app, db.Announcement.select().first())
    rows = db.AnnouncementAccess.select().order_by(db.AnnouncementAccess.recipient)
    data["access"] = [
        {
            "recipient": row.recipient,
            "username": row.username,
            "locked": row.locked,
            "created_at": row.created_at.isoformat(),
        }
        for row in rows
    ]
    data["access_issued"] = bool(data["access"])
    return data
