"""Outbound jobs: build what is sent from the e-mail, then transmit it."""

from __future__ import annotations

import datetime as dt
import logging

from . import content, db
from .context import PluginContext
from .errors import UmsError
from .messages import to_model
from .queue import JobFailure, finish_job

log = logging.getLogger(__name__)


def _read_source(app, row: db.Message) -> bytes:
    with open(app.content_path(row.source_name), "rb") as handle:
        return handle.read()


def prepare_outgoing(app, job: db.Job) -> None:
    """Build the PDF or SMS text of an outbound message and queue transmission."""
    from .gateway.document import DocumentError, parse_mail

    row = db.Message.get_by_id(job.message_id)
    try:
        mail = parse_mail(_read_source(app, row))
        if row.kind == "fax":
            fields = _build_fax(app, mail)
        else:
            fields = _build_sms(app, mail)
    except DocumentError as exc:
        _reject(app, row, job, exc.message, exc.outcomes)
        return
    except UmsError as exc:
        _reject(app, row, job, exc.message, ())
        return
    with db.write_transaction():
        db.Message.update(state="queued", **fields).where(
            db.Message.id == row.id
        ).execute()
        db.Job.create(kind="transmit", message=row)
        finish_job(job)
    log.info("msg %d: outbound %s ready to transmit", row.id, row.kind)


def _build_fax(app, mail) -> dict:
    from .gateway.document import DocumentError, build_fax_document

    ctx = PluginContext(app)

    def convert(data, content_type, filename):
        return app.hook.ums_convert_document(
            data=data, content_type=content_type, filename=filename, ctx=ctx
        )

    document = build_fax_document(
        mail, max_pages=app.config.get("gateway.max_pages"), convert=convert
    )
    refused = [o for o in document.outcomes if o.action == "refused"]
    if refused:
        names = ", ".join(o.name for o in refused)
        raise DocumentError(
            f"not sent: {names} cannot be faxed", outcomes=document.outcomes
        )
    stored = content.store_bytes(app.content_root, "content", document.pdf, ".pdf")
    return {
        "pages": document.pages,
        "content_name": stored.name,
        "content_type": "application/pdf",
        "content_size": stored.size,
        "content_sha256": stored.sha256,
    }


def _build_sms(app, mail) -> dict:
    from .gateway.document import extract_text
    from .gateway.sms import plan_sms, sms_text_from_body

    text = sms_text_from_body(extract_text(mail))
    if not text:
        raise UmsError("nothing to send: the e-mail has no text for the SMS")
    plan = plan_sms(text)
    limit = app.config.get("gateway.max_segments")
    if plan.segments > limit:
        raise UmsError(
            f"the SMS would need {plan.segments} segments; the limit is {limit}."
            " Shorten the text and send it again."
        )
    return {"text": text, "segments": plan.segments}


def _reject(app, row: db.Message, job: db.Job, reason: str, outcomes) -> None:
    with db.write_transaction():
        db.Message.update(state="rejected", error=reason).where(
            db.Message.id == row.id
        ).execute()
        finish_job(job)
    log.warning("msg %d: outbound %s rejected: %s", row.id, row.kind, reason)
    message = to_model(app, db.Message.get_by_id(row.id))
    app.fire(
        "ums_outgoing_rejected",
        message=message,
        reason=reason,
        outcomes=tuple(outcomes),
        ctx=PluginContext(app),
    )


def transmit(app, job: db.Job) -> None:
    """Hand the message to the telephony side and record the outcome."""
    row = db.Message.get_by_id(job.message_id)
    if row.state == "sent":
        log.info("msg %d: sent before a restart; reporting it", row.id)
        _fire_outcome(app, row.id, _recorded_result(row))
        finish_job(job)
        return
    ctx = PluginContext(app)
    result = app.hook.ums_transmit_message(message=to_model(app, row), ctx=ctx)
    if result is None:
        raise JobFailure("no active transmit backend")
    if result.status == "pending":
        _wait_for_result(app, job)
        return
    if result.status == "retry":
        _count_attempt(row, result)
        raise JobFailure(result.reason or "busy or no answer")
    finish_transmission(app, row, job, result)


def _wait_for_result(app, job: db.Job) -> None:
    due = db.db_now() + dt.timedelta(seconds=app.config.get("transmit.poll"))
    db.Job.update(
        state="queued", due_at=due, attempts=db.Job.attempts - 1, lease_owner=None
    ).where(db.Job.id == job.id).execute()
    raise_pending()


class Pending(Exception):
    """The job is waiting for the outside world; not a failure."""


def raise_pending() -> None:
    """Tell the worker the job was rescheduled on purpose."""
    raise Pending()


def _count_attempt(row: db.Message, result) -> None:
    db.Message.update(
        attempts=result.attempts or (row.attempts + 1), error=result.reason
    ).where(db.Message.id == row.id).execute()


def finish_transmission(app, row, job, result, mark_done: bool = True) -> None:
    """Record a final TransmitResult and fire the event for the send report.

    The job is done only after the event: a crash in between runs the job
    again, which reports a sent message without transmitting it twice.
    """
    state = "sent" if result.status == "sent" else "failed"
    with db.write_transaction():
        db.Message.update(
            state=state,
            error="" if state == "sent" else result.reason,
            attempts=result.attempts or max(row.attempts, 1),
            remote_station=(result.remote_station or "")[:64],
            duration=result.duration,
        ).where(db.Message.id == row.id).execute()
    log.info(
        "msg %d: outbound %s to %s %s %s",
        row.id,
        row.kind,
        row.called,
        state,
        result.reason,
    )
    _fire_outcome(app, row.id, result)
    if mark_done:
        finish_job(job)


def _fire_outcome(app, message_id: int, result) -> None:
    message = to_model(app, db.Message.get_by_id(message_id))
    ctx = PluginContext(app)
    if result.status == "sent":
        app.fire("ums_outgoing_sent", message=message, result=result, ctx=ctx)
    else:
        app.fire("ums_outgoing_failed", message=message, result=result, ctx=ctx)


def _recorded_result(row: db.Message):
    from .model import TransmitResult

    return TransmitResult(
        status=row.state,
        reason=row.error,
        pages=row.pages,
        duration=row.duration,
        attempts=row.attempts,
        remote_station=row.remote_station,
    )


def handle_final_failure(app, job: db.Job, reason: str) -> None:
    """Record an outbound job that failed for good (retries used up, a crash)."""
    from .model import TransmitResult

    row = db.Message.get_by_id(job.message_id)
    if job.kind == "prepare_outgoing":
        _reject(app, row, job, f"the e-mail could not be processed: {reason}", ())
        return
    result = TransmitResult(status="failed", reason=reason, attempts=row.attempts)
    finish_transmission(app, row, job, result, mark_done=False)
