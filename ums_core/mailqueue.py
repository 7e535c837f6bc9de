"""E-mails waiting for the transport: the .eml file, its row and its job."""

from __future__ import annotations

import logging
import secrets
from email import policy
from email.message import EmailMessage

from . import content, db
from .errors import UmsError

log = logging.getLogger(__name__)


def envelope_recipients(mail: EmailMessage) -> list[str]:
    """Return the addr-specs of To, Cc and Bcc."""
    found: list[str] = []
    for header in ("To", "Cc", "Bcc"):
        for value in mail.get_all(header, []):
            found += [a.addr_spec for a in value.addresses if a.addr_spec not in found]
    return found


def serialize_mail(mail: EmailMessage) -> bytes:
    """Return the wire form of MAIL (CRLF line ends, Bcc removed)."""
    del mail["Bcc"]
    return mail.as_bytes(policy=policy.SMTP)


def prepare_mail(app, mail: EmailMessage, purpose: str) -> tuple[dict, bytes]:
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


def write_mail_file(app, data: bytes) -> str:
    """Write DATA durably under mail/ and return its relative name."""
    return content.store_bytes(app.content_root, "mail", data, ".eml").name


def queue_mail(app, mail: EmailMessage, purpose: str, message_id=None) -> int:
    """Queue MAIL: the .eml file, a mail row and a send job, in one commit."""
    fields, data = prepare_mail(app, mail, purpose)
    name = write_mail_file(app, data)
    with db.write_transaction():
        row = insert_mail(fields, name, message_id)
    return row.id


def insert_mail(fields: dict, name: str, message_id=None) -> db.Mail:
    """Insert the mail row and its send job (inside the caller's transaction)."""
    existing = db.Mail.get_or_none(db.Mail.msgid == fields["msgid"])
    if existing is not None:
        log.warning("mail %s is already queued", fields["msgid"])
        return existing
    row = db.Mail.create(message=message_id, path=name, **fields)
    db.Job.create(kind="send_mail", mail=row, message=message_id)
    log.info("mail %d queued (%s) %s", row.id, fields["purpose"], fields["msgid"])
    return row
