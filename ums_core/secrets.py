"""Passwords and PINs: generated strong, stored only as argon2 hashes.

A clear-text secret lives only in memory: it goes into the mail that carries
it, or is printed once to the admin when info mails are off. It never reaches
a log, ``--json`` output or the database.
"""

from __future__ import annotations

import secrets
import string

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

PASSWORD_ALPHABET = string.ascii_letters + string.digits
PASSWORD_LENGTH = 16
_HASHER = PasswordHasher()


def generate_password(length: int = PASSWORD_LENGTH) -> str:
    """Return a random password of LENGTH letters and digits (about 95 bits)."""
    while True:
        password = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))
        if any(c.isdigit() for c in password) and any(c.isalpha() for c in password):
            return password


def generate_pin(digits: int = 6) -> str:
    """Return a random numeric PIN of DIGITS digits."""
    return "".join(secrets.choice(string.digits) for _ in range(digits))


def hash_secret(secret: str) -> str:
    """Return the argon2 hash of SECRET."""
    return _HASHER.hash(secret)


def verify_secret(stored_hash: str | None, secret: str) -> bool:
    """Return True when SECRET matches STORED_HASH; never raises."""
    if not stored_hash or not secret:
        return False
    try:
        return _HASHER.verify(stored_hash, secret)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """Return True when STORED_HASH was made with older parameters."""
    try:
        return _HASHER.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True
