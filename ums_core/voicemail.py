"""Voice mailboxes: the PIN login the phone side asks for, and remote inquiry.

A mailbox belongs to one user and answers at the user's first voice number.
Its PIN is six random digits kept only as an argon2 hash. The clear PIN goes
into the welcome mail (``ums_voicemail_created``); when no plugin mails it,
the command that made it shows it once. It never reaches a log or the
database.

The lock rule (shared with the announcement access data): after
``voicemail.max_failures`` wrong PINs in a row the login locks until an admin
unlocks it; a right PIN resets the count. A mailbox may let the user's own
numbers log in without a PIN (``trust_own_numbers``); a PIN that is given is
still checked, and a locked mailbox refuses every caller.

Remote inquiry (the phone side lists and plays a user's voice messages) needs
``mode = mailserver`` and ``remote_inquiry = true``; in ``local`` mode it is
not available.
"""

from __future__ import annotations

import logging

import attrs

from . import db
from .accounts import announce_secret
from .context import PluginContext
from .errors import UmsError
from .numbers import normalize_number, parse_caller
from .secrets import generate_pin, hash_secret, needs_rehash, verify_secret
from .users import get_user_row, to_model

log = logging.getLogger(__name__)

WRONG_PIN = "wrong PIN"
LOCKED = "locked"
PIN_REQUIRED = "PIN required"
NO_MAILBOX = "no mailbox at this number"


@attrs.frozen
class LoginResult:
    """The answer to one login attempt.

    ``owner`` is whom the login is for (the mailbox's user) when ``ok``;
    ``failures`` counts the wrong PINs in a row, ``max_failures`` the limit.
    """

    ok: bool
    reason: str = ""
    failures: int = 0
    max_failures: int = 0
    owner: str | None = None

    def describe(self) -> str:
        """Return the one line the phone side reads."""
        if self.ok:
            return f"ok: {self.owner}"
        if self.reason == WRONG_PIN:
            return f"refused: {WRONG_PIN} ({self.failures} of {self.max_failures})"
        return f"refused: {self.reason}"


@attrs.frozen
class IssuedPin:
    """A mailbox's new PIN and whether a plugin queued it in a mail."""

    email: str
    number: str
    pin: str = attrs.field(repr=False)
    mailed: bool


@attrs.frozen
class Inquiry:
    """The login of a remote inquiry and, when it succeeded, the voice messages."""

    login: LoginResult
    messages: list[dict] = attrs.Factory(list)


def enable_mailbox(app, email: str, trust_own_numbers: bool = False) -> IssuedPin:
    """Give user EMAIL a mailbox at their first voice number; mail its PIN."""
    pin = generate_pin()
    pin_hash = hash_secret(pin)
    with db.write_transaction():
        user = _active_user_row(email)
        if db.Mailbox.get_or_none(db.Mailbox.user == user) is not None:
            raise UmsError(
                f"{user.email} already has a voice mailbox",
                hint=f"'ums voicemail reset-pin {user.email}' gives it a new PIN",
            )
        number = _first_voice_number(user)
        taken = db.Mailbox.get_or_none(db.Mailbox.number == number)
        if taken is not None:
            raise UmsError(
                f"{number} already has the voice mailbox of {taken.user.email}",
                hint=f"ums voicemail disable {taken.user.email}",
            )
        db.Mailbox.create(
            user=user,
            number=number,
            pin_hash=pin_hash,
            trust_own_numbers=trust_own_numbers,
        )
    log.info("voicemail: mailbox %s enabled for %s", number, user.email)
    return _issue_pin(app, user, number, pin)


def reset_pin(app, email: str) -> IssuedPin:
    """Give the mailbox of EMAIL a new PIN (which also unlocks it); mail it."""
    pin = generate_pin()
    pin_hash = hash_secret(pin)
    with db.write_transaction():
        row = get_mailbox_row(email)
        row.pin_hash, row.failures, row.locked = pin_hash, 0, False
        row.save()
    log.info("voicemail: new PIN for mailbox %s of %s", row.number, row.user.email)
    return _issue_pin(app, row.user, row.number, pin)


def _issue_pin(app, user: db.User, number: str, pin: str) -> IssuedPin:
    mailed = announce_secret(
        app,
        "ums_voicemail_created",
        user=to_model(user),
        mailbox=number,
        pin=pin,
        ctx=PluginContext(app),
    )
    return IssuedPin(email=user.email, number=number, pin=pin, mailed=mailed)


def _active_user_row(email: str) -> db.User:
    user = get_user_row(email)
    if not user.active:
        raise UmsError(
            f"user {user.email} is disabled", hint="'ums users enable' first"
        )
    return user


def _first_voice_number(user: db.User) -> str:
    row = (
        db.Number.select()
        .where((db.Number.user == user) & (db.Number.kind == "voice"))
        .order_by(db.Number.id)
        .first()
    )
    if row is None:
        raise UmsError(
            f"{user.email} has no voice number; add one with --voice",
            hint="the mailbox answers at the user's first voice number",
        )
    return row.e164


def get_mailbox_row(email: str) -> db.Mailbox:
    """Return the mailbox row of user EMAIL or raise a clear error."""
    user = get_user_row(email)
    row = db.Mailbox.get_or_none(db.Mailbox.user == user)
    if row is None:
        raise UmsError(
            f"{user.email} has no voice mailbox",
            hint=f"'ums voicemail enable {user.email}' makes one",
        )
    return row


def disable_mailbox(email: str) -> None:
    """Remove the mailbox of EMAIL; their voice messages stay."""
    with db.write_transaction():
        row = get_mailbox_row(email)
        row.delete_instance()
    log.info("voicemail: mailbox %s of %s disabled", row.number, row.user.email)


def unlock_mailbox(email: str) -> None:
    """Unlock the mailbox of EMAIL and clear its count of wrong PINs."""
    with db.write_transaction():
        row = get_mailbox_row(email)
        row.failures, row.locked = 0, False
        row.save()
    log.info("voicemail: mailbox %s of %s unlocked", row.number, row.user.email)


def set_trust_own_numbers(email: str, trust: bool) -> None:
    """Let (or stop letting) the numbers of EMAIL log in without a PIN."""
    with db.write_transaction():
        row = get_mailbox_row(email)
        row.trust_own_numbers = trust
        row.save()
    state = "trusts" if trust else "no longer trusts"
    log.info("voicemail: mailbox %s %s its owner's numbers", row.number, state)


def list_mailboxes() -> list[dict]:
    """Return every mailbox, by owner; never a PIN or its hash."""
    rows = db.Mailbox.select(db.Mailbox, db.User).join(db.User).order_by(db.User.email)
    return [describe_mailbox(row) for row in rows]


def describe_mailbox(row: db.Mailbox) -> dict:
    """Return the JSON-able summary of a mailbox row."""
    return {
        "email": row.user.email,
        "number": row.number,
        "active": row.user.active,
        "trust_own_numbers": row.trust_own_numbers,
        "failures": row.failures,
        "locked": row.locked,
        "created_at": row.created_at.isoformat(),
    }


def check_login(
    app, number: str, pin: str | None, caller: str | None = None
) -> LoginResult:
    """Return the LoginResult of CALLER logging in to the mailbox at NUMBER."""
    limit = app.config.get("voicemail.max_failures")
    e164 = normalize_number(number, app.site_rules)
    row = _find_mailbox(e164)
    if row is None:
        result = LoginResult(False, NO_MAILBOX)
    elif not pin and not row.locked and _is_trusted(row, caller, app.site_rules):
        result = LoginResult(True, "", row.failures, limit, row.user.email)
    else:
        result = judge_pin(row, pin, limit, row.user.email)
    log.info("voicemail: login to %s: %s", e164, result.describe())
    return result


def _find_mailbox(e164: str) -> db.Mailbox | None:
    """Return the mailbox at E164 whose active user still owns that number."""
    return (
        db.Mailbox.select(db.Mailbox, db.User)
        .join(db.User)
        .join(db.Number, on=(db.Number.user == db.User.id))
        .where(
            (db.Mailbox.number == e164)
            & (db.Number.e164 == e164)
            & (db.User.active == True)  # noqa: E712
        )
        .first()
    )


def _is_trusted(row: db.Mailbox, caller: str | None, rules) -> bool:
    e164 = parse_caller(caller, rules)
    if not row.trust_own_numbers or e164 is None:
        return False
    owned = db.Number.select().where(
        (db.Number.user == row.user) & (db.Number.e164 == e164)
    )
    return owned.exists()


def judge_pin(row, pin: str | None, limit: int, owner: str) -> LoginResult:
    """Check PIN against ROW (a mailbox or access row) under the lock rule."""
    if row.locked:
        return LoginResult(False, LOCKED, row.failures, limit)
    if not pin:
        return LoginResult(False, PIN_REQUIRED, row.failures, limit)
    if not _reserve_attempt(row, limit):
        return LoginResult(False, LOCKED, limit, limit)
    if not verify_secret(row.pin_hash, pin):
        failures = _record_failure(row, limit)
        return LoginResult(False, WRONG_PIN, failures, limit)
    if not _record_success(row, pin):
        return LoginResult(False, LOCKED, row.failures, limit)
    return LoginResult(True, "", 0, limit, owner)


def _reserve_attempt(row, limit: int) -> bool:
    """Count this attempt before the PIN is checked; False when none is left.

    Parallel logins each take one of the LIMIT attempts first, so no more than
    LIMIT PINs are ever checked before the lock.
    """
    model = type(row)
    with db.write_transaction():
        taken = (
            model.update(failures=model.failures + 1)
            .where(
                (model.id == row.id)
                & (model.locked == False)  # noqa: E712
                & (model.failures < limit)
            )
            .execute()
        )
        if not taken:
            model.update(locked=True).where(model.id == row.id).execute()
    return taken == 1


def _record_failure(row, limit: int) -> int:
    model = type(row)
    with db.write_transaction():
        failures = model.get_by_id(row.id).failures
        if failures >= limit:
            model.update(locked=True).where(model.id == row.id).execute()
    if failures >= limit:
        table = model._meta.table_name
        log.warning("%s %d: locked after %d wrong PINs", table, row.id, failures)
    return failures


def _record_success(row, pin: str) -> bool:
    """Reset the count unless another attempt locked ROW meanwhile."""
    model = type(row)
    fields = {"failures": 0}
    if needs_rehash(row.pin_hash):
        fields["pin_hash"] = hash_secret(pin)
    with db.write_transaction():
        query = model.update(**fields).where(
            (model.id == row.id) & (model.locked == False)  # noqa: E712
        )
        return query.execute() == 1


def require_remote_inquiry(app) -> None:
    """Refuse unless remote inquiry is available and switched on."""
    if app.config.get("mode") != "mailserver":
        raise UmsError(
            "remote inquiry is not available in local mode: voice messages "
            "are kept only in the local store and heard in the web journal",
            hint="it needs 'ums mode mailserver' and remote_inquiry = true",
        )
    if not app.config.get("remote_inquiry"):
        raise UmsError(
            "remote inquiry is switched off",
            hint="ums config set remote_inquiry true",
        )


def inquire_messages(
    app, number: str, pin: str | None, caller: str | None = None
) -> Inquiry:
    """Log in to the mailbox at NUMBER; return the Inquiry with its messages."""
    require_remote_inquiry(app)
    login = check_login(app, number, pin, caller)
    if not login.ok:
        return Inquiry(login)
    return Inquiry(login, list_voice_messages(app, login.owner))


def list_voice_messages(app, email: str) -> list[dict]:
    """Return the inbound voice messages of EMAIL, newest first."""
    rows = (
        db.Message.select()
        .where(
            (db.Message.recipient == email)
            & (db.Message.kind == "voice")
            & (db.Message.direction == "inbound")
            & db.Message.content_name.is_null(False)
        )
        .order_by(db.Message.received_at.desc(), db.Message.id.desc())
    )
    return [describe_voice_message(app, row) for row in rows]


def describe_voice_message(app, row: db.Message) -> dict:
    """Return what the phone side needs to play one voice message."""
    return {
        "id": row.id,
        "caller": row.sender,
        "caller_name": row.sender_name,
        "received_at": row.received_at.isoformat(),
        "duration": row.duration,
        "content_path": app.content_path(row.content_name),
    }
