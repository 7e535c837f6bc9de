"""Intake: validate what the phone side hands over and commit it durably.

A message is acknowledged (this function returns its id) only after its row,
its content file and its first job are committed.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import stat
import unicodedata
import zoneinfo

import peewee

from . import content, db
from .context import PluginContext
from .errors import BusyError, MediaError, NumberError, UmsError
from .messages import remember_recipient, to_model
from .model import IncomingMessage
from .numbers import normalize_number, parse_caller
from .routing import resolve_route
from .statements import insert_row

log = logging.getLogger(__name__)

MAX_SMS_CHARS = 10000
MAX_FIELD_CHARS = 200
EARLIEST = dt.datetime(1990, 1, 1, tzinfo=dt.UTC)


def received_as(source_ref: str) -> int | None:
    """Return the id of the message already received as SOURCE_REF, or None.

    For intake plugins that report a repeated hand-over as skipped.
    """
    row = db.Message.get_or_none(db.Message.source_ref == source_ref)
    return row.id if row else None


def clean_text(text: str | None, limit: int = MAX_FIELD_CHARS) -> str:
    """Return TEXT on one line: control characters become spaces, then trim."""
    from .helpers import header_text

    return header_text(str(text) if text else "", limit)


def clean_sms(text: str | None) -> str:
    """Return an SMS text with line ends normalised and other controls removed."""
    text = text or ""
    if any(unicodedata.category(c) == "Cs" for c in text):
        raise MediaError("the SMS text is not valid Unicode (it has lone surrogates)")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    kept = [c for c in text if c in "\n\t" or unicodedata.category(c) != "Cc"]
    return "".join(kept).strip()


def receive_message(
    app, incoming: IncomingMessage, run_now: bool = True, source_ref=None
) -> int:
    """Validate and commit INCOMING; return the new message id.

    With RUN_NOW the first job (store locally, or compose the e-mail) runs at
    once; if it fails it stays queued for ``ums serve`` or ``ums queue run``.
    SOURCE_REF names the hand-over (a spool entry) so a repeat is recognised.
    """
    if source_ref:
        existing = db.Message.get_or_none(db.Message.source_ref == source_ref)
        if existing is not None:
            log.info("msg %d: already received as %s", existing.id, source_ref)
            return existing.id
    fields = _validate(app, incoming)
    stored = _store_content(app, incoming, fields)
    try:
        row, job = _commit(app, incoming, fields, stored, source_ref, run_now)
    except peewee.IntegrityError:
        _discard(app, stored)
        existing = db.Message.get_or_none(db.Message.source_ref == source_ref)
        if source_ref and existing is not None:
            log.info("msg %d: received meanwhile as %s", existing.id, source_ref)
            return existing.id
        raise
    except peewee.OperationalError as exc:
        _discard(app, stored)
        raise BusyError(
            f"the database is busy ({exc}); nothing was stored", hint="try again"
        ) from None
    except BaseException:  # a resolver plugin failed, or worse: nothing committed
        _discard(app, stored)
        raise
    announce_received(app, row)
    if run_now:
        from .queue import run_job

        run_job(app, job)
    return row.id


def announce_received(app, row) -> None:
    """Log the committed message ROW and tell the plugins it was received."""
    log.info(
        "msg %d: %s received from %s to %s",
        row.id,
        row.kind,
        row.sender_raw or "-",
        row.called,
    )
    events = [
        e for e in ("ums_message_received", "ums_message_routed") if app.listens(e)
    ]
    if events:
        message, ctx = to_model(app, row), PluginContext(app)
        for event in events:
            app.fire(event, message=message, ctx=ctx)


def _validate(app, incoming: IncomingMessage) -> dict:
    rules = app.site_rules
    try:
        called = normalize_number(incoming.called, rules)
    except NumberError as exc:
        raise UmsError(f"bad called number: {exc.message}") from None
    fields = {
        "kind": incoming.kind,
        "called": called,
        "sender": parse_caller(incoming.sender, rules),
        "sender_raw": clean_text(incoming.sender, 64),
        "sender_name": clean_text(incoming.sender_name),
        "station_id": clean_text(incoming.station_id, 64),
        "received_at": _received_at(app, incoming.received_at),
    }
    if incoming.kind == "sms":
        fields["text"] = _validate_sms(incoming.text)
    else:
        fields.update(_probe_content(app, incoming))
    return fields


def _discard(app, stored) -> None:
    if stored is not None:
        try:
            os.unlink(app.content_path(stored.name))
        except FileNotFoundError:
            pass


def _received_at(app, when: dt.datetime | None) -> dt.datetime:
    now = db.utcnow()
    if when is None:
        return now
    try:
        if when.tzinfo is None:
            zone = zoneinfo.ZoneInfo(app.config.get("timezone"))
            when = when.replace(tzinfo=zone)
        when = when.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        when = None
    if when is None or not EARLIEST <= when <= now + dt.timedelta(days=1):
        raise UmsError(
            "received_at must lie between 1990 and tomorrow",
            hint="give an ISO 8601 time such as 2026-12-04T08:15:00+01:00",
        )
    return when


def _validate_sms(text: str) -> str:
    text = clean_sms(text)
    if not text:
        raise MediaError("an SMS needs a text; it is empty")
    if len(text) > MAX_SMS_CHARS:
        raise MediaError(f"SMS text is too long ({len(text)} > {MAX_SMS_CHARS})")
    return text


def _probe_content(app, incoming: IncomingMessage) -> dict:
    path = incoming.content_path
    if not path:
        raise MediaError(f"a {incoming.kind} message needs a content file")
    try:
        info = os.stat(path)
    except OSError as exc:
        raise MediaError(f"cannot read {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise MediaError(f"{path} is not a regular file")
    size = info.st_size
    limit = app.config.get("limits.max_content_mb") * 1024 * 1024
    if size > limit:
        raise MediaError(
            f"{incoming.kind} file is too large ({size} bytes, limit {limit})",
            hint="raise limits.max_content_mb",
        )
    from . import media

    probe = media.probe_fax if incoming.kind == "fax" else media.probe_voice
    info = probe(path)
    return {
        "pages": info.pages,
        "duration": info.duration,
        "content_type": info.content_type,
        "extension": info.extension,
    }


def _store_content(app, incoming, fields, sync_folder=True):
    if incoming.kind == "sms":
        return None
    extension = fields.pop("extension")
    stored = content.store_file(
        app.content_root, "content", incoming.content_path, extension, sync_folder
    )
    if incoming.kind == "fax":
        from .media_fax import carry_pages

        carry_pages(incoming.content_path, app.content_path(stored.name))
    return stored


def _commit(app, incoming, fields, stored, source_ref, run_now=False):
    from .queue import leased_job_fields

    lease = leased_job_fields(app) if run_now else {}
    with db.write_transaction():
        return insert_message(app, fields, stored, source_ref, lease)


def insert_message(app, fields, stored, source_ref, lease):
    """Insert the message row and its first job (inside the caller's transaction)."""
    route = resolve_route(app, fields["called"], fields["kind"])
    row = insert_row(
        db.Message,
        **fields,
        direction="inbound",
        recipient=route.email,
        default_recipient=route.default_recipient,
        location=route.location,
        state="received" if route.email else "held",
        content_name=stored.name if stored else None,
        content_size=stored.size if stored else 0,
        content_sha256=stored.sha256 if stored else None,
        source_ref=source_ref,
        error="" if route.email else "no owner and no default_recipient set",
    )
    job = insert_row(db.Job, kind="deliver_message", message=row, **lease)
    if route.email and not route.default_recipient:
        remember_recipient(row, route)
    return row, job
