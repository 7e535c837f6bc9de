"""Deleting stored messages: one by the journal's user, or old ones by retention.

A message is deleted only when no job or mail of it is still waiting, so a
delete never races the worker. The rows go in one transaction; the files
(content, the outbound source mail when no other message shares it, the
archive folder, cached conversions) are removed after the commit, so a crash
leaves at worst an orphan file, never a row without its file.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil

import attrs

from ums_core import db
from ums_core.errors import UmsError

log = logging.getLogger(__name__)

WAITING = ("queued", "running")
BATCH = 500


class MessageBusy(UmsError):
    """The message still has a job or a mail waiting; try again later."""


@attrs.frozen
class PurgeResult:
    """What a retention run found and did."""

    cutoff: dt.datetime
    deleted: int
    kept_busy: int
    dry_run: bool


def is_busy(message_id: int) -> bool:
    """Return True while a job or a mail of the message is still waiting."""
    jobs = db.Job.select().where(
        (db.Job.message == message_id) & db.Job.state.in_(WAITING)
    )
    mails = db.Mail.select().where(
        (db.Mail.message == message_id) & (db.Mail.state == "queued")
    )
    return jobs.exists() or mails.exists()


def delete_message(home: str, message_id: int, actor: str) -> None:
    """Delete message MESSAGE_ID with its files; ACTOR says who asked."""
    with db.write_transaction():
        row = db.Message.get_or_none(db.Message.id == message_id)
        if row is None:
            return
        if is_busy(message_id):
            raise MessageBusy(f"message {message_id} is still being processed")
        mail_paths = [
            mail.path for mail in db.Mail.select().where(db.Mail.message == message_id)
        ]
        db.Job.delete().where(db.Job.message == message_id).execute()
        db.Job.delete().where(
            db.Job.mail.in_(
                db.Mail.select(db.Mail.id).where(db.Mail.message == message_id)
            )
        ).execute()
        db.Mail.delete().where(db.Mail.message == message_id).execute()
        row.delete_instance()
        orphans = [
            name
            for name in (row.content_name, row.source_name)
            if name and not _still_used(name)
        ]
    _remove_files(home, row, orphans, mail_paths)
    log.info("msg %d: deleted by %s", message_id, actor)


def _still_used(name: str) -> bool:
    return (
        db.Message.select()
        .where((db.Message.content_name == name) | (db.Message.source_name == name))
        .exists()
    )


def _remove_files(home, row, names, mail_paths) -> None:
    from .journal.files import remove_cached

    for name in names:
        _unlink(os.path.join(home, name))
    for path in mail_paths:
        _unlink(path if os.path.isabs(path) else os.path.join(home, path))
    for ref in (row.archive_ref or "").split(";"):
        plugin, _, relative = ref.partition(":")
        if plugin == "local_store" and relative:
            folder = os.path.join(home, "plugins", "local_store", relative)
            root = os.path.realpath(os.path.join(home, "plugins", "local_store"))
            if os.path.realpath(folder).startswith(root + os.sep):
                shutil.rmtree(folder, ignore_errors=True)
    remove_cached(home, row)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def purge_old(
    home: str, days: int, dry_run: bool, now: dt.datetime | None = None
) -> PurgeResult:
    """Delete the messages received more than DAYS days ago (DRY_RUN: count)."""
    cutoff = (now or db.utcnow()) - dt.timedelta(days=days)
    deleted = kept = 0
    last_id = 0
    while True:
        ids = [
            message_id
            for (message_id,) in db.Message.select(db.Message.id)
            .where((db.Message.received_at < cutoff) & (db.Message.id > last_id))
            .order_by(db.Message.id)
            .limit(BATCH)
            .tuples()
        ]
        if not ids:
            break
        last_id = ids[-1]
        for message_id in ids:
            if is_busy(message_id):
                kept += 1
            elif dry_run:
                deleted += 1
            else:
                try:
                    delete_message(home, message_id, f"retention ({days} days)")
                    deleted += 1
                except MessageBusy:
                    kept += 1
    return PurgeResult(cutoff=cutoff, deleted=deleted, kept_busy=kept, dry_run=dry_run)
