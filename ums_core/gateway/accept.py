"""What the gateway does with one e-mail after DATA: drop, delete or commit.

Automatic replies and bounces are dropped (an out-of-office reply must not
become a fax). An e-mail whose sender is no active user is deleted and the
default recipient may be told; the claimed sender gets nothing. Otherwise
one outbound message per recipient number is committed, with its first job,
before the gateway answers 250.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
from email import policy
from email.parser import BytesHeaderParser

import attrs

from .. import content, db
from ..context import PluginContext
from ..helpers import MAIL_POLICY, header_text
from ..messages import remember_recipient, to_model
from ..statements import insert_row

log = logging.getLogger(__name__)


@attrs.frozen
class Envelope:
    """What the SMTP session knows about one e-mail."""

    peer: str
    authenticated: bool
    mail_from: str
    destinations: tuple  # gateway.addresses.Destination, one per RCPT
    raw: bytes
    login: str = ""  # the AUTH user of the session, if any


def decode_raw_header(text: str) -> str:
    """Return TEXT with raw 8-bit bytes read as UTF-8, else as windows-1252."""
    if not any("\udc80" <= c <= "\udcff" for c in text):
        return text
    raw = text.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", "replace")


def read_subject(headers) -> str:
    """Return the Subject of HEADERS; raw 8-bit text is read by decode_raw_header.

    The email package turns raw 8-bit bytes in a header into U+FFFD when it
    parses it, before decode_raw_header could try windows-1252 on them.
    """
    for name, value in headers.raw_items():
        if name.lower() == "subject":
            if any("\udc80" <= c <= "\udcff" for c in value):
                # Read the bytes first; encoded words beside them still count.
                text = " ".join(decode_raw_header(value).split())
                return str(policy.default.header_factory("Subject", text))
            break
    return str(headers.get("Subject", ""))


def in_networks(peer: str, networks: list[str]) -> bool:
    """Return True when the address PEER lies in one of NETWORKS."""
    try:
        address = ipaddress.ip_address(peer.split("%")[0])
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net) for net in networks)


def automatic_reason(mail_from: str, headers) -> str:
    """Return why the e-mail is an automatic reply or bounce, or ''."""
    if not mail_from or mail_from == "<>":
        return "null sender (a bounce)"
    auto = str(headers.get("Auto-Submitted", "no")).strip().lower()
    if auto and auto.split(";")[0].strip() != "no":
        return f"Auto-Submitted: {auto[:40]}"
    precedence = str(headers.get("Precedence", "")).strip().lower()
    if precedence in ("bulk", "junk", "list"):
        return f"Precedence: {precedence}"
    if headers.get_content_type() == "multipart/report":
        return "a delivery or read report (multipart/report)"
    if headers.get("X-Autoreply") or headers.get("X-Autorespond"):
        return "an auto-responder header"
    if headers.get("X-Failed-Recipients") or _null_return_path(headers):
        return "a bounce (X-Failed-Recipients or Return-Path <>)"
    if _daemon_sender(headers):
        return "sent by a mailer daemon"
    return ""


def _null_return_path(headers) -> bool:
    return any(str(v).strip() == "<>" for v in headers.get_all("Return-Path", []))


def _daemon_sender(headers) -> bool:
    try:
        addresses = headers["From"].addresses if headers.get("From") else ()
    except (AttributeError, IndexError, ValueError):
        return False
    daemons = ("mailer-daemon", "postmaster", "mail-daemon")
    return any(a.username.lower() in daemons for a in addresses)


def header_block(raw: bytes) -> bytes:
    """Return the header lines of RAW through the blank line that ends them.

    The header parser reads and splits every line it is given, the body's
    too, before it looks only at the headers.
    """
    found = []
    for mark in (b"\r\n\r\n", b"\n\n"):
        at = raw.find(mark)
        if at >= 0:
            found.append(at + len(mark))
    return raw[: min(found)] if found else raw


def identify_sender(app, envelope: Envelope, headers):
    """Return the active user who sent the e-mail, or None."""
    ctx = PluginContext(app)
    if envelope.login:
        return app.hook.ums_identify_sender(address=envelope.login, ctx=ctx)
    user = app.hook.ums_identify_sender(address=envelope.mail_from, ctx=ctx)
    if user is not None:
        return user
    trusted = envelope.authenticated or in_networks(
        envelope.peer, app.config.get("gateway.trusted_clients")
    )
    if trusted and headers.get("From") is not None:
        for address in headers["From"].addresses:
            user = app.hook.ums_identify_sender(address=address.addr_spec, ctx=ctx)
            if user is not None:
                return user
    return None


def accept_mail(app, envelope: Envelope) -> str:
    """Handle one e-mail after DATA; return the SMTP reply to send."""
    headers = BytesHeaderParser(policy=MAIL_POLICY).parsebytes(
        header_block(envelope.raw)
    )
    recipients = [d.address for d in envelope.destinations]
    subject = header_text(read_subject(headers), 200)
    reason = automatic_reason(envelope.mail_from, headers)
    if reason:
        log.info(
            "gateway: dropped mail from <%s> to %s: %s",
            envelope.mail_from,
            recipients,
            reason,
        )
        return "250 2.0.0 Dropped: automatic replies are not transmitted"
    user = identify_sender(app, envelope, headers)
    if user is None:
        delete_unknown(app, envelope, recipients, subject)
        return "250 2.0.0 Accepted"
    ids = commit_outgoing(app, envelope, user, headers, subject)
    if len(ids) > 5:
        return f"250 2.0.0 Queued as {len(ids)} messages ({ids[0]}-{ids[-1]})"
    return "250 2.0.0 Queued as " + ",".join(map(str, ids))


def delete_unknown(app, envelope: Envelope, recipients: list[str], subject: str):
    """Delete an e-mail from an unknown sender; tell plugins, never the sender."""
    log.warning(
        "gateway: deleted mail from unknown sender <%s> to %s (subject %r)",
        envelope.mail_from,
        recipients,
        subject,
    )
    app.fire(
        "ums_outgoing_deleted",
        sender=envelope.mail_from,
        recipients=recipients,
        subject=subject,
        reason="the sender is not a known user",
        ctx=PluginContext(app),
    )


def _source_ref(envelope: Envelope, destination, raw_sha256: str) -> str:
    """Return what makes a repeat of the same hand-over recognisable.

    Only a true retry (the same bytes from the same sender to the same
    destination) is merged; two different mails that share a Message-ID are not.
    RAW_SHA256 is the hex digest of the e-mail's bytes.
    """
    digest = raw_sha256[:32]
    sender = hashlib.sha256(envelope.mail_from.encode("utf-8", "replace"))
    where = f"{destination.kind}:{destination.number}/{destination.subaddress}"
    return f"gw:{digest}:{sender.hexdigest()[:16]}:{where}"


def commit_outgoing(app, envelope: Envelope, user, headers, subject) -> list[int]:
    """Store the e-mail and one outbound message plus job per destination.

    The e-mail is written first; a true retry of a mail already committed
    finds its messages inside the transaction, and the new copy is removed.
    """
    stored = content.store_bytes(app.content_root, "content", envelope.raw, ".eml")
    refs = [_source_ref(envelope, d, stored.sha256) for d in envelope.destinations]
    created = []
    with db.write_transaction():
        known = {
            row.source_ref: row.id
            for row in db.Message.select(db.Message.id, db.Message.source_ref).where(
                db.Message.source_ref.in_(refs)
            )
        }
        for destination, ref in zip(envelope.destinations, refs, strict=True):
            if ref in known:
                continue
            row = _create_outgoing(
                app, envelope, user, destination, ref, subject, stored.name
            )
            known[ref] = row.id
            created.append(row)
    if not created:
        _remove_copy(app, stored)
    ctx = PluginContext(app)
    tell = app.listens("ums_outgoing_accepted")
    for row in created:
        log.info(
            "msg %d: outbound %s from %s to %s accepted",
            row.id,
            row.kind,
            row.recipient,
            row.called,
        )
        remember_recipient(row, user)
        if tell:
            app.fire("ums_outgoing_accepted", message=to_model(app, row), ctx=ctx)
    return [known[ref] for ref in refs]


def _create_outgoing(app, envelope, user, destination, ref, subject, source):
    """Insert one outbound message and its first job (in the caller's transaction).

    SOURCE is the stored name of the e-mail.
    """
    row = insert_row(
        db.Message,
        kind=destination.kind,
        direction="outbound",
        called=destination.number,
        sender_raw=header_text(envelope.mail_from, 200),
        station_id=destination.subaddress,
        received_at=db.utcnow(),
        recipient=user.email,
        location=app.config.get("mode"),
        state="received",
        subject=subject,
        source_name=source,
        source_ref=ref,
    )
    insert_row(db.Job, kind="prepare_outgoing", message=row)
    return row


def _remove_copy(app, stored) -> None:
    try:
        os.unlink(app.content_path(stored.name))
    except FileNotFoundError:
        pass
