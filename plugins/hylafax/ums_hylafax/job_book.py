"""The plugin's record of HylaFAX jobs: ``jobs.json``, keyed by ums message id.

An entry is ``{"state": "submitting" | "submitted" | "final", "job": "17",
"at": ISO time, ...}``. ``submitting`` is written before sendfax runs, so a
crash in the middle is noticed instead of sending the fax a second time;
``final`` keeps the outcome for a transmit job that asks again. Final entries
older than KEEP_DAYS are dropped.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os

from ums_core.errors import UmsError

BOOK_NAME = "jobs.json"
LOCK_NAME = "jobs.lock"
KEEP_DAYS = 90


def read_job_entry(folder: str, message_id: int) -> dict | None:
    """Return the entry for MESSAGE_ID, or None when it has none."""
    return load_book(folder).get(str(message_id))


def write_job_entry(folder: str, message_id: int, entry: dict | None) -> None:
    """Store ENTRY for MESSAGE_ID durably (None removes it)."""
    with lock_book(folder):
        book = load_book(folder)
        if entry is None:
            book.pop(str(message_id), None)
        else:
            book[str(message_id)] = {**entry, "at": format_now()}
        save_book(folder, drop_old(book))


def format_now() -> str:
    """Return the current UTC time in ISO 8601."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@contextlib.contextmanager
def lock_book(folder: str):
    """Hold the book's lock, so two workers do not lose each other's entries."""
    fd = os.open(os.path.join(folder, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def load_book(folder: str) -> dict:
    """Return every entry of the book (an empty book when there is none)."""
    try:
        with open(os.path.join(folder, BOOK_NAME), encoding="utf-8") as handle:
            book = json.load(handle)
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise UmsError(
            f"{BOOK_NAME} in {folder} is damaged ({exc}); no fax is sent until it "
            "is repaired",
            hint="compare it with faxstat -s -d, fix or remove the broken entry",
        ) from None
    return book if isinstance(book, dict) else {}


def save_book(folder: str, book: dict) -> None:
    """Write the book atomically: a synced temporary file renamed over it."""
    path = os.path.join(folder, BOOK_NAME)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(book, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def drop_old(book: dict) -> dict:
    """Return BOOK without the final entries older than KEEP_DAYS."""
    limit = dt.datetime.now(dt.UTC) - dt.timedelta(days=KEEP_DAYS)
    kept = {}
    for key, entry in book.items():
        try:
            old = dt.datetime.fromisoformat(entry.get("at", "")) < limit
        except (TypeError, ValueError, AttributeError):
            old = False
        if not (old and entry.get("state") == "final"):
            kept[key] = entry
    return kept
