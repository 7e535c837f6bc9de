"""E-mails waiting for the transport: the .eml file, its row and its job."""

from __future__ import annotations

import binascii
import io
import logging
import os
import secrets
from email import policy
from email.message import EmailMessage

import attrs

from . import content, db
from .errors import UmsError
from .helpers import mail_text
from .queue import MAIL_QUEUED
from .statements import Statement, insert_row

log = logging.getLogger(__name__)

# 57 input bytes make one 76-character base64 line.
BASE64_CHUNK = 57 * 16384
STREAM_MARK = "ums-streamed-part-"


@attrs.frozen
class StreamedWire:
    """The wire form of an e-mail whose big parts are still files.

    TEMPLATE is the serialised e-mail with a marker line where each part's
    base64 goes; FILES maps each marker to its file (or bytes).
    """

    template: bytes
    files: dict


def attach_streamed(mail: EmailMessage, source, maintype, subtype, filename) -> None:
    """Attach SOURCE (a path or bytes) to MAIL as base64 filled in at queueing."""
    if not isinstance(source, bytes):
        source = os.fspath(source)
        if not os.path.isfile(source):
            raise UmsError(f"cannot attach {source}: no such file")
    mail.add_attachment(
        b"",
        maintype=maintype,
        subtype=subtype,
        filename=mail_text(filename),  # no line break, no encoded word
        cte="base64",
    )
    part = mail.get_payload()[-1]
    marker = STREAM_MARK + secrets.token_hex(16)
    part.set_payload(marker)
    part.ums_stream_source = (marker, source)


def _streamed_files(mail: EmailMessage) -> dict:
    found = {}
    for part in mail.walk():
        source = getattr(part, "ums_stream_source", None)
        if source is not None:
            found[source[0].encode("ascii")] = source[1]
    return found


def iter_wire(wire):
    """Yield the wire bytes of WIRE (bytes or StreamedWire) in pieces."""
    if isinstance(wire, bytes):
        yield wire
        return
    rest = wire.template
    for marker, source in wire.files.items():
        before, found, rest = rest.partition(marker)
        if not found:
            raise UmsError("the e-mail lost the place of an attachment")
        yield before
        yield from _base64_lines(source)
    yield rest


def _base64_lines(source):
    """Yield the base64 of SOURCE (path or bytes) in CRLF lines, no final CRLF."""
    pending = b""
    opened = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")
    with opened as stream:
        while chunk := stream.read(BASE64_CHUNK):
            if pending:
                yield pending + b"\r\n"
            pending = _base64_crlf(chunk)
    yield pending


def _base64_crlf(chunk: bytes) -> bytes:
    """Return the base64 of CHUNK in 76-character lines joined by CRLF.

    One C call encodes it all; base64.encodebytes makes one per line.
    """
    encoded = binascii.b2a_base64(chunk, newline=False)
    return b"\r\n".join([encoded[at : at + 76] for at in range(0, len(encoded), 76)])


def envelope_recipients(mail: EmailMessage) -> list[str]:
    """Return the addr-specs of To, Cc and Bcc."""
    found: list[str] = []
    for header in ("To", "Cc", "Bcc"):
        for value in mail.get_all(header, []):
            found += [a.addr_spec for a in value.addresses if a.addr_spec not in found]
    return found


def serialize_mail(mail: EmailMessage):
    """Return the wire form of MAIL (CRLF line ends, Bcc removed).

    That is bytes, or a StreamedWire when files were attached with
    :func:`attach_streamed`.
    """
    del mail["Bcc"]
    data = mail.as_bytes(policy=policy.SMTP)
    files = _streamed_files(mail)
    return StreamedWire(data, files) if files else data


def prepare_mail(app, mail: EmailMessage, purpose: str) -> tuple[dict, object]:
    """Return the row fields and wire bytes for MAIL; write nothing yet."""
    recipients = envelope_recipients(mail)
    if not recipients:
        raise UmsError("an e-mail without recipients cannot be queued")
    if mail["Message-ID"] is None:
        mail["Message-ID"] = f"<ums.{secrets.token_hex(10)}@localhost>"
    from .context import PluginContext

    sender = PluginContext(app).system_sender(required=False).addr_spec
    fields = {
        "purpose": purpose,
        "sender": sender,
        "recipients": "\n".join(recipients),
        "msgid": str(mail["Message-ID"]).strip(),
    }
    return fields, serialize_mail(mail)


def write_mail_file(app, data) -> str:
    """Write DATA (bytes or a StreamedWire) durably under mail/; return its name."""
    return content.store_chunks(app.content_root, "mail", iter_wire(data), ".eml").name


def queue_mail(app, mail: EmailMessage, purpose: str, message_id=None) -> int:
    """Queue MAIL: the .eml file, a mail row and a send job, in one commit."""
    fields, data = prepare_mail(app, mail, purpose)
    name = write_mail_file(app, data)
    with db.write_transaction():
        row = insert_mail(fields, name, message_id)
    MAIL_QUEUED.set()
    return row.id


def insert_mail(fields: dict, name: str, message_id=None) -> db.Mail:
    """Insert the mail row and its send job (inside the caller's transaction)."""
    existing = _QUEUED.first(fields["msgid"])
    if existing is not None:
        log.warning("mail %s is already queued", fields["msgid"])
        return db.Mail.get_by_id(existing[0])
    row = insert_row(db.Mail, message=message_id, path=name, **fields)
    insert_row(db.Job, kind="send_mail", mail=row, message=message_id)
    log.info("mail %d queued (%s) %s", row.id, fields["purpose"], fields["msgid"])
    return row


_QUEUED = Statement(
    ("str",), lambda msgid: db.Mail.select(db.Mail.id).where(db.Mail.msgid == msgid)
)
