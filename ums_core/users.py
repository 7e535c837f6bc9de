"""Users and the numbers they own."""

from __future__ import annotations

import functools
import logging

import peewee as pw

from . import db
from .config import parse_email
from .errors import UmsError
from .model import User
from .numbers import SiteRules, normalize_number
from .statements import Statement

log = logging.getLogger(__name__)

NUMBER_KINDS = ("fax", "voice", "sms")


def clean_name(text: str) -> str:
    """Return a display name on one line, without control characters."""
    from .helpers import header_text

    return header_text(text or "", 200)


def normalize_email(text: str) -> str:
    """Return EMAIL in the form ums stores (lower case); refuse a bad one."""
    try:
        email = parse_email(text).lower()
    except ValueError as exc:
        raise UmsError(f"bad e-mail address {text!r}: {exc}") from None
    if not email:
        raise UmsError("an e-mail address is needed")
    return email


def to_model(row: db.User) -> User:
    """Return the plain value of a user row, with its numbers."""
    ordered = sorted(row.numbers, key=lambda number: number.id)
    numbers = tuple((n.kind, n.e164) for n in ordered)
    return User(
        email=row.email,
        name=row.name,
        language=row.language,
        active=row.active,
        numbers=numbers,
    )


def add_user(
    email: str,
    rules: SiteRules,
    name: str = "",
    language: str = "en",
    numbers: dict[str, list[str]] | None = None,
) -> User:
    """Create an active user owning NUMBERS ({kind: [number, ...]})."""
    email = normalize_email(email)
    owned = _normalize_numbers(numbers or {}, rules)
    with db.write_transaction():
        if db.User.get_or_none(db.User.email == email):
            raise UmsError(f"user {email} already exists")
        _check_numbers_free([e164 for _, e164 in owned], exclude=None)
        row = db.User.create(email=email, name=clean_name(name), language=language)
        for kind, e164 in owned:
            db.Number.create(user=row, kind=kind, e164=e164)
    log.info("user %s added with %d numbers", email, len(owned))
    return to_model(row)


def _normalize_numbers(numbers: dict[str, list[str]], rules) -> list[tuple[str, str]]:
    owned: list[tuple[str, str]] = []
    for kind, texts in numbers.items():
        if kind not in NUMBER_KINDS:
            raise UmsError(f"unknown number kind {kind!r}")
        for text in texts:
            pair = (kind, normalize_number(text, rules))
            if pair not in owned:
                owned.append(pair)
    return owned


def _check_numbers_free(e164s: list[str], exclude: db.User | None) -> None:
    if not e164s:
        return
    query = (
        db.Number.select(db.Number, db.User)
        .join(db.User)
        .where(db.Number.e164.in_(e164s) & (db.User.active == True))  # noqa: E712
    )
    for number in query:
        if exclude is None or number.user.id != exclude.id:
            raise UmsError(
                f"{number.e164} already belongs to {number.user.email}",
                hint="two active users cannot own the same number",
            )


def get_user_row(email: str) -> db.User:
    """Return the row of user EMAIL or raise a clear error."""
    row = db.User.get_or_none(db.User.email == normalize_email(email))
    if row is None:
        raise UmsError(f"no user {email}", hint="'ums users list' shows the users")
    return row


def list_users() -> list[User]:
    """Return every user, ordered by e-mail address."""
    rows = db.User.select().order_by(db.User.email)
    return [to_model(row) for row in pw.prefetch(rows, db.Number)]


def enable_user(email: str) -> User:
    """Make user EMAIL active again, if none of their numbers is taken."""
    with db.write_transaction():
        row = get_user_row(email)
        _check_numbers_free([n.e164 for n in row.numbers], exclude=row)
        row.active = True
        row.save()
    log.info("user %s enabled", row.email)
    return to_model(row)


def disable_user(email: str) -> User:
    """Make user EMAIL inactive: their messages go to the default recipient."""
    with db.write_transaction():
        row = get_user_row(email)
        row.active = False
        row.save()
    log.info("user %s disabled", row.email)
    return to_model(row)


def remove_user(email: str) -> None:
    """Delete user EMAIL and their numbers; their messages stay."""
    with db.write_transaction():
        row = get_user_row(email)
        row.delete_instance(recursive=False)
    log.info("user %s removed", row.email)


def find_active_owner(e164: str) -> User | None:
    """Return the active user who owns the number E164, or None.

    Asked for every inbound message: plain tuples, no model rows.
    """
    return _active_user(_OWNER.first(e164))


def _active_user(found: tuple | None) -> User | None:
    """Return the active user of the row FOUND (id, email, name, language)."""
    if found is None:
        return None
    user_id, email, name, language = found
    numbers = tuple(tuple(pair) for pair in _NUMBERS.rows(user_id))
    return User(email=email, name=name, language=language, active=True, numbers=numbers)


_OWNER = Statement(
    ("str",),
    lambda e164: (
        db.User.select(db.User.id, db.User.email, db.User.name, db.User.language)
        .join(db.Number)
        .where((db.Number.e164 == e164) & (db.User.active == True))  # noqa: E712
        .limit(1)
    ),
)
_ACTIVE_BY_EMAIL = Statement(
    ("str",),
    lambda email: (
        db.User.select(db.User.id, db.User.email, db.User.name, db.User.language)
        .where((db.User.email == email) & (db.User.active == True))  # noqa: E712
        .limit(1)
    ),
)
_NUMBERS = Statement(
    ("int",),
    lambda user_id: (
        db.Number.select(db.Number.kind, db.Number.e164)
        .where(db.Number.user == user_id)
        .order_by(db.Number.id)
    ),
)


def find_active_user(address: str) -> User | None:
    """Return the active user with the e-mail ADDRESS (any case), or None."""
    try:
        email = normalize_email(address or "")
    except UmsError:
        return None
    return _active_user(_ACTIVE_BY_EMAIL.first(email))


def set_password(email: str, password: str) -> User:
    """Store the argon2 hash of PASSWORD for user EMAIL (never the password)."""
    from .secrets import hash_secret

    row = store_password_hash(email, hash_secret(password))
    log.info("user %s got a new password", row.email)
    return to_model(row)


def store_password_hash(email: str, hashed: str) -> db.User:
    """Store HASHED as the password hash of user EMAIL; return the user's row.

    The caller logs the change (once its own transaction, if any, commits).
    """
    with db.write_transaction():
        row = get_user_row(email)
        row.password_hash = hashed
        row.save()
    return row


def check_password(email: str, password: str) -> User | None:
    """Return the active user EMAIL when PASSWORD is theirs, else None."""
    from .secrets import needs_rehash, verify_secret

    user = find_active_user(email)
    if user is None:
        # Spend the time a real check takes, so timing does not tell who exists.
        verify_secret(_dummy_hash(), password)
        return None
    row = db.User.get(db.User.email == user.email)
    if not verify_secret(row.password_hash, password):
        return None
    if needs_rehash(row.password_hash):
        set_password(row.email, password)
    return user


@functools.cache
def _dummy_hash() -> str:
    from .secrets import hash_secret

    return hash_secret("no such user")
