"""The job handlers: deliver a routed message, send a queued e-mail."""

from __future__ import annotations

import logging
import os
import time

import attrs
import peewee as pw

from . import db
from .context import PluginContext
from .errors import UmsError
from .mailqueue import insert_mail, prepare_mail, write_mail_file
from .messages import to_model
from .model import Mail
from .queue import MAIL_QUEUED, JobFailure, finish_job, job_message
from .routing import resolve_route
from .statements import Statement

log = logging.getLogger(__name__)


def deliver_message(app, job: db.Job) -> None:
    """Store the message locally or compose and queue its e-mail, by location."""
    row = job_message(job)
    if row.recipient is None:
        _route_again(app, row)
    ctx = PluginContext(app)
    if row.location == "local":
        _deliver_locally(app, job, row)
        return
    if app.config.get("archiving") and not row.archive_ref:
        store_locally(app, row, required=False)
    mail = app.hook.ums_compose_mail(message=to_model(app, row), ctx=ctx)
    if mail is None:
        raise JobFailure("no active delivery plugin composed an e-mail")
    fields, data = prepare_mail(app, mail, "message")
    name = write_mail_file(app, data)
    # Lost in a power failure, the message is composed again: same Message-ID.
    with db.relaxed_transaction():
        insert_mail(fields, name, row.id)
        _set_state(row, "queued")
        finish_job(job)
    MAIL_QUEUED.set()
    log.info("msg %d: e-mail for %s queued %s", row.id, row.recipient, fields["msgid"])


def _deliver_locally(app, job: db.Job, row: db.Message) -> None:
    """Store a local-mode message; its record and the job end in one commit."""
    stored = None
    if not row.archive_ref:
        stored = _store_in_archives(app, row, required=True)
    # The archive plugins fsynced what they wrote; lost in a power failure,
    # this record is made again by the job (the archive keeps what it has).
    with db.relaxed_transaction():
        if stored is not None:
            _record_archive_ref(row)
        _set_state(row, "stored")
        finish_job(job)
    if stored is not None:
        _report_stored(app, row, *stored)


def deliver_group(app, jobs: list[db.Job]) -> None:
    """Run the first jobs of a group; local deliveries end in one commit.

    Each local message is handed to the archive plugins (each fsyncs what
    it writes); then the records, states and jobs of all of them are
    committed together, and only then are the plugins told.
    """
    from .queue import run_job

    local = [job for job in jobs if _stays_local(job_message(job))]
    stored: list = []

    def store_step(app, job):
        row = job_message(job)
        found = None if row.archive_ref else _store_in_archives(app, row, True)
        stored.append((job, row, found))

    for job in local:
        run_job(app, job, handler=store_step)
    with db.relaxed_transaction():
        for job, row, found in stored:
            if found is not None:
                _record_archive_ref(row)
            _set_state(row, "stored")
            finish_job(job)
    for _, row, found in stored:
        if found is not None:
            _report_stored(app, row, *found)
    for job in jobs:
        if job not in local:
            run_job(app, job)


def _stays_local(row: db.Message) -> bool:
    return row.location == "local" and row.recipient is not None


def _route_again(app, row: db.Message) -> None:
    route = resolve_route(app, row.called, row.kind)
    if route.email is None:
        raise JobFailure(
            f"no active user owns {row.called} and no default_recipient is set"
            " (ums config set default_recipient EMAIL, then ums queue retry)",
            permanent=True,
        )
    row.recipient = route.email
    row.default_recipient = route.default_recipient
    row.state = "received"
    row.error = ""
    row.save()
    log.info("msg %d: routed to %s", row.id, row.recipient)


def store_locally(app, row: db.Message, required: bool) -> None:
    """Hand the message to the active archive plugins and record where it went."""
    stored = _store_in_archives(app, row, required)
    if stored is None:
        return
    _record_archive_ref(row)
    _report_stored(app, row, *stored)


def _store_in_archives(app, row: db.Message, required: bool):
    """Return (message, results) of the archive plugins that stored ROW, or None.

    ROW.archive_ref is set to where it went; the caller records it.
    """
    ctx = PluginContext(app)
    message = to_model(app, row)
    results = [r for r in app.hook.ums_store_message(message=message, ctx=ctx) if r]
    if not results:
        if required:
            raise JobFailure("no active archive plugin stored the message")
        return None
    row.archive_ref = ";".join(f"{r.plugin}:{r.reference}" for r in results)
    return message, results


def _record_archive_ref(row: db.Message) -> None:
    db.Message.update(archive_ref=row.archive_ref).where(
        db.Message.id == row.id
    ).execute()


def _report_stored(app, row: db.Message, message, results) -> None:
    log.info("msg %d: stored locally (%s)", row.id, row.archive_ref)
    app.fire(
        "ums_message_stored", message=message, results=results, ctx=PluginContext(app)
    )


_SET_STATE = Statement(
    ("str", "str", "int"),
    lambda state, error, message_id: db.Message.update(state=state, error=error).where(
        db.Message.id == message_id
    ),
)
_MAIL_SENT = Statement(
    ("utc", "int"),
    lambda sent_at, mail_id: db.Mail.update(
        state="sent", sent_at=sent_at, last_error=""
    ).where(db.Mail.id == mail_id),
)


def _set_state(row: db.Message, state: str, error: str = "") -> None:
    row.state = state
    _SET_STATE.rowcount(state, error, row.id)


def send_mail(app, job: db.Job) -> None:
    """Send the queued e-mail of JOB through the active transport."""
    mail_row = _queued_mail(job.mail_id)
    mail = _load_mail(app, mail_row)
    ctx = PluginContext(app)
    result = app.hook.ums_send_mail(mail=mail, ctx=ctx)
    if result is None:
        raise JobFailure("no active transport plugin")
    if not result.ok:
        db.Mail.update(last_error=result.detail).where(
            db.Mail.id == mail_row.id
        ).execute()
        raise JobFailure(result.detail, permanent=result.permanent)
    _record_sent(app, job, mail_row)
    _log_sent(app, mail_row, mail, ctx)


RECORD_PAUSES = (0.5, 1, 2, 4, 8, 15, 30)


@attrs.frozen
class QueuedMail:
    """The columns of a mail row that sending it needs."""

    id: int
    message_id: int | None
    purpose: str
    sender: str
    recipients: str
    msgid: str
    path: str


_QUEUED_MAIL = Statement(
    ("int",),
    lambda mail_id: db.Mail.select(
        db.Mail.id,
        db.Mail.message,
        db.Mail.purpose,
        db.Mail.sender,
        db.Mail.recipients,
        db.Mail.msgid,
        db.Mail.path,
    ).where(db.Mail.id == mail_id),
)


def _queued_mail(mail_id: int) -> QueuedMail:
    found = _QUEUED_MAIL.first(mail_id)
    if found is None:
        raise JobFailure(f"mail {mail_id} is no longer queued", permanent=True)
    return QueuedMail(*found)


def _record_sent(app, job: db.Job, mail_row: db.Mail) -> None:
    """Commit that the mail server took MAIL_ROW, trying again for a while.

    Once the server said 250, failing to record it means sending it again
    later: a full disk or a database gone for a moment is waited out here
    (about a minute) before the job is left to the queue.
    """
    for pause in (*RECORD_PAUSES, None):
        try:
            with db.write_transaction():
                _mark_sent(app, job, mail_row)
            return
        except (pw.OperationalError, pw.InterfaceError, OSError) as exc:
            if pause is None:
                raise
            log.warning(
                "mail %d: the mail server accepted %s but recording it failed"
                " (%s); trying again in %gs",
                mail_row.id,
                mail_row.msgid,
                exc,
                pause,
            )
            time.sleep(pause)


def _mark_sent(app, job: db.Job, mail_row: db.Mail) -> None:
    _MAIL_SENT.rowcount(db.utcnow(), mail_row.id)
    if mail_row.purpose == "secret":
        _forget_secret_mail(app, mail_row)
    if mail_row.message_id and mail_row.purpose == "message":
        _SET_STATE.rowcount("delivered", "", mail_row.message_id)
    finish_job(job)


def _log_sent(app, mail_row, mail, ctx) -> None:
    subject = (
        f"msg {mail_row.message_id}" if mail_row.message_id else f"mail {mail_row.id}"
    )
    log.info("%s: mail server accepted %s", subject, mail_row.msgid)
    if (
        mail_row.message_id
        and mail_row.purpose == "message"
        and app.listens("ums_message_delivered")
    ):
        message = to_model(app, db.Message.get_by_id(mail_row.message_id))
        app.fire("ums_message_delivered", message=message, mail=mail, ctx=ctx)


def _forget_secret_mail(app, row: db.Mail) -> None:
    """Remove the file of a sent mail that carried a password or PIN."""
    try:
        os.unlink(app.content_path(row.path))
    except FileNotFoundError:
        pass


def _load_mail(app, row: db.Mail) -> Mail:
    """Return the queued e-mail of ROW; its wire form stays in its file."""
    path = app.content_path(row.path)
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise JobFailure(f"mail file {row.path} unreadable: {exc}", permanent=True)
    return Mail(
        id=row.id,
        sender=row.sender,
        recipients=tuple(row.recipients.split("\n")),
        message_id=row.msgid,
        message=row.message_id,
        path=path,
    )


def handle_final_failure(app, job: db.Job, reason: str) -> None:
    """Record a failed-for-good job on its message or mail and tell plugins."""
    ctx = PluginContext(app)
    if job.mail_id:
        db.Mail.update(state="failed", last_error=reason).where(
            db.Mail.id == job.mail_id
        ).execute()
    mail_row = db.Mail.get_by_id(job.mail_id) if job.mail_id else None
    if mail_row is not None and mail_row.purpose == "secret":
        _forget_secret_mail(app, mail_row)
        log.error(
            "mail %d carrying a password or PIN for %s failed for good and was"
            " deleted; issue a new one (ums users reset-password)",
            mail_row.id,
            mail_row.recipients,
        )
    if mail_row is not None and mail_row.purpose != "message":
        app.fire(
            "ums_mail_failed",
            mail=_load_mail_quietly(app, mail_row),
            reason=reason,
            ctx=ctx,
        )
        return
    if job.message_id is None:
        return
    row = db.Message.get_by_id(job.message_id)
    _set_state(row, "held" if row.recipient is None else "failed", reason)
    _keep_failed_locally(app, row)
    app.fire("ums_message_failed", message=to_model(app, row), reason=reason, ctx=ctx)


def _keep_failed_locally(app, row: db.Message) -> None:
    if row.archive_ref or row.recipient is None:
        return
    try:
        store_locally(app, row, required=False)
    except (JobFailure, UmsError, OSError) as exc:
        log.error("msg %d: could not store the failed message locally: %s", row.id, exc)


def _load_mail_quietly(app, row: db.Mail) -> Mail | None:
    try:
        return _load_mail(app, row)
    except JobFailure:
        return None
