"""Reading stored messages: plain values, listings and export."""

from __future__ import annotations

import os

from . import content, db
from .errors import UmsError
from .model import Message
from .statements import Statement


def to_model(app, row: db.Message) -> Message:
    """Return the plain value plugins receive for a message row."""
    user = _recipient_user(row)
    return Message(
        id=row.id,
        kind=row.kind,
        direction=row.direction,
        called=row.called,
        sender=row.sender,
        sender_raw=row.sender_raw,
        sender_name=row.sender_name,
        station_id=row.station_id,
        received_at=row.received_at,
        recipient=row.recipient,
        recipient_name=user.name if user else "",
        recipient_language=user.language if user else app.config.get("language"),
        default_recipient=row.default_recipient,
        location=row.location,
        state=row.state,
        pages=row.pages,
        duration=row.duration,
        text=row.text,
        content_path=app.content_path(row.content_name) if row.content_name else None,
        content_type=row.content_type,
        subject=row.subject,
        segments=row.segments,
        attempts=row.attempts,
        remote_station=row.remote_station,
    )


def _recipient_user(row: db.Message):
    """Return the user row of ROW's recipient, looked up once per row object.

    One message is turned into a value several times on its way (events,
    archive, e-mail); the row object remembers the answer for its recipient.
    """
    if not row.recipient:
        return None
    remembered = row.__dict__.get("_ums_recipient")
    if remembered is not None and remembered[0] == row.recipient:
        return remembered[1]
    found = _NAME_AND_LANGUAGE.first(row.recipient)
    user = None
    if found is not None:
        user = db.User(__no_default__=1, name=found[0], language=found[1])
    row.__dict__["_ums_recipient"] = (row.recipient, user)
    return user


_NAME_AND_LANGUAGE = Statement(
    ("str",),
    lambda email: db.User.select(db.User.name, db.User.language).where(
        db.User.email == email
    ),
)


def remember_recipient(row: db.Message, user) -> None:
    """Tell ROW its recipient's name and language (USER has both), unasked."""
    row.__dict__["_ums_recipient"] = (row.recipient, user)


def get_message_row(message_id: int) -> db.Message:
    """Return the row of message MESSAGE_ID or raise a clear error."""
    row = db.Message.get_or_none(db.Message.id == message_id)
    if row is None:
        raise UmsError(
            f"no message {message_id}", hint="'ums messages list' shows them"
        )
    return row


def describe_message(row: db.Message) -> dict:
    """Return the JSON-able summary of a message row."""
    return {
        "id": row.id,
        "kind": row.kind,
        "direction": row.direction,
        "sender": row.sender,
        "sender_raw": row.sender_raw,
        "sender_name": row.sender_name,
        "called": row.called,
        "recipient": row.recipient,
        "default_recipient": row.default_recipient,
        "location": row.location,
        "state": row.state,
        "received_at": row.received_at.isoformat(),
        "pages": row.pages,
        "duration": row.duration,
        "station_id": row.station_id,
        "text": row.text,
        "content_type": row.content_type,
        "content_size": row.content_size,
        "archived": bool(row.archive_ref),
        "error": row.error,
        "subject": row.subject,
        "segments": row.segments,
        "attempts": row.attempts,
        "remote_station": row.remote_station,
    }


def list_messages(user: str | None = None, limit: int = 1000) -> list[db.Message]:
    """Return the newest messages first, optionally only those of USER."""
    query = db.Message.select().order_by(db.Message.id.desc()).limit(limit)
    if user:
        query = query.where(db.Message.recipient == user.strip().lower())
    return list(query)


def export_message(app, message_id: int, folder: str) -> list[str]:
    """Write the content, the SMS text and the metadata of a message to FOLDER."""
    import json

    row = get_message_row(message_id)
    os.makedirs(folder, exist_ok=True)
    written = []
    base = os.path.join(folder, f"ums-{row.id}-{row.kind}")
    if row.content_name:
        target = base + os.path.splitext(row.content_name)[1]
        content.export_file(app.content_root, row.content_name, target)
        written.append(target)
    if row.kind == "sms":
        with open(base + ".txt", "w", encoding="utf-8") as handle:
            handle.write(row.text + "\n")
        written.append(base + ".txt")
    with open(base + ".json", "w", encoding="utf-8") as handle:
        json.dump(describe_message(row), handle, indent=2, ensure_ascii=False)
    written.append(base + ".json")
    return written
