"""Group commit: several hand-overs validated, then committed in one transaction.

Each content file is written and fsynced as for one message; the folders
that received new files are fsynced once for the group, then every row and
first job is committed together. Only then is anything acknowledged, so a
crash leaves the whole group either committed or still with its sender.
"""

from __future__ import annotations

import logging

import peewee

from . import content, db
from .errors import BusyError, UmsError
from .intake import _discard, _store_content, _validate, announce_received
from .model import IncomingMessage

log = logging.getLogger(__name__)

MAX_GROUP = 64


def receive_batch(
    app, items: list[tuple[IncomingMessage, str | None]], run_now: bool = True
) -> list:
    """Validate ITEMS ((incoming, source_ref) pairs) and commit them together.

    Returns, for each item, the message id or the exception that refused it
    (a UmsError, or an OSError or ValueError from reading it);
    raises BusyError (nothing stored) when the database is busy. With RUN_NOW
    the first jobs run at once, local deliveries of the group in one commit.
    """
    if len(items) > MAX_GROUP:
        raise UmsError(f"at most {MAX_GROUP} messages are committed together")
    outcomes: list = [None] * len(items)
    prepared: list = []
    try:
        _prepare(app, items, outcomes, prepared)
    except BaseException:
        for _, _, stored, _ in prepared:
            _discard(app, stored)
        raise
    committed = _commit_group(app, prepared, run_now)
    for index, row, _ in committed:
        outcomes[index] = row.id
        announce_received(app, row)
    for index, existing in _duplicates(app, prepared, committed):
        outcomes[index] = existing
    if run_now:
        _run_first_jobs(app, [job for _, _, job in committed])
    return outcomes


def _prepare(app, items, outcomes: list, prepared: list) -> None:
    """Validate each item and write its content; record refusals in OUTCOMES."""
    for index, (incoming, ref) in enumerate(items):
        existing = _received_id(ref)
        if existing is not None:
            log.info("msg %d: already received as %s", existing, ref)
            outcomes[index] = existing
            continue
        try:
            fields = _validate(app, incoming)
            stored = _store_content(app, incoming, fields, sync_folder=False)
        except (UmsError, OSError, ValueError, RecursionError) as exc:
            outcomes[index] = exc
            continue
        prepared.append((index, fields, stored, ref))


def _run_first_jobs(app, jobs: list) -> None:
    """Run the group's first jobs; the messages are committed whatever happens."""
    from .delivery import deliver_group

    if not jobs:
        return
    try:
        deliver_group(app, jobs)
    except (peewee.OperationalError, UmsError) as exc:
        log.warning(
            "msgs %d-%d: first jobs left for the worker (%s)",
            jobs[0].message_id,
            jobs[-1].message_id,
            exc,
        )


def _received_id(ref: str | None) -> int | None:
    if not ref:
        return None
    row = db.Message.get_or_none(db.Message.source_ref == ref)
    return row.id if row else None


def _commit_group(app, prepared: list, run_now: bool) -> list:
    """Sync the new files' folders, then insert every row and job in one commit."""
    from .intake import insert_message
    from .queue import leased_job_fields

    stored_files = [stored for _, _, stored, _ in prepared if stored is not None]
    try:
        for folder in sorted(
            {content.folder_of(app.content_root, s) for s in stored_files}
        ):
            content.fsync_dir(folder)
        committed = []
        with db.write_transaction():
            for index, fields, stored, ref in prepared:
                if _received_id(ref) is not None:
                    continue
                lease = leased_job_fields(app) if run_now else {}
                row, job = insert_message(app, fields, stored, ref, lease)
                committed.append((index, row, job))
    except (peewee.OperationalError, peewee.IntegrityError, OSError) as exc:
        for stored in stored_files:
            _discard(app, stored)
        raise BusyError(
            f"the group could not be committed ({exc}); nothing was stored",
            hint="try again",
        ) from None
    except BaseException:  # a resolver plugin failed, or worse: nothing committed
        for stored in stored_files:
            _discard(app, stored)
        raise
    return committed


def _duplicates(app, prepared: list, committed: list):
    """Yield (index, id) of items another process committed meanwhile."""
    done = {index for index, _, _ in committed}
    for index, _, stored, ref in prepared:
        if index not in done:
            _discard(app, stored)
            yield index, _received_id(ref)
