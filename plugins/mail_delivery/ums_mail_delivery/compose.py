"""Build the e-mail for a fax, voice message or SMS."""

from __future__ import annotations

import logging
import os
import tempfile
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from ums_core.helpers import (
    ascii_file_name,
    attach_file,
    caller_label,
    display_name,
    fax_pdf_data,
    fax_to_tiff,
    header_text,
    mail_text,
    new_mail,
    set_text_body,
    template_environment,
)

log = logging.getLogger(__name__)

CONTEXT = {"fax": "fax-message", "voice": "voice-message", "sms": "pager-message"}
LANGUAGES = ("en", "de")


def compose_message_mail(message, ctx) -> EmailMessage:
    """Return the e-mail that delivers MESSAGE to its recipient."""
    language = message.recipient_language
    language = language if language in LANGUAGES else "en"
    env = template_environment(ctx, "ums_mail_delivery")
    contact_name = _find_contact_name(message, ctx)
    values = _template_values(message, ctx, language, contact_name)
    mail = new_mail()
    mail["From"] = _from_address(message, ctx, values["caller"], contact_name)
    mail["To"] = Address(
        display_name=display_name(message.recipient_name), addr_spec=message.recipient
    )
    subject = env.get_template(f"subject.{language}.txt").render(values)
    mail["Subject"] = mail_text(subject, 250)
    mail["Date"] = format_datetime(message.received_at)
    mail["Message-ID"] = ctx.message_id_for(message)
    mail["Message-Context"] = CONTEXT[message.kind]
    mail["Auto-Submitted"] = "auto-generated"
    mail["X-UMS-Message"] = str(message.id)
    set_text_body(mail, env.get_template(f"message.{language}.txt").render(values))
    _attach_content(mail, message, ctx, values)
    return mail


def _find_contact_name(message, ctx) -> str:
    """Return the directory's name for the caller of MESSAGE, or ''."""
    if message.sender is None:
        return ""
    try:
        contact = ctx.lookup_caller(message.sender)
    except Exception:  # a broken directory plugin must not stop the delivery
        log.exception("msg %d: looking up the caller failed", message.id)
        return ""
    return header_text(getattr(contact, "label", "") or "")


def _template_values(message, ctx, language: str, contact_name: str) -> dict:
    local = ctx.local_time(message.received_at)
    caller = caller_label(message, ctx, language)
    if contact_name:
        caller = f"{contact_name} ({ctx.format_number(message.sender)})"
    return {
        "message": message,
        "kind": message.kind,
        "caller": caller,
        "subject_caller": contact_name or caller,
        "contact_name": contact_name,
        "called": ctx.format_number(message.called),
        "time": local.strftime("%Y-%m-%d %H:%M:%S %z (%Z)"),
        "pages": message.pages,
        "duration": _duration_text(message.duration),
        "station_id": header_text(message.station_id),
        "text": message.text,
    }


def _duration_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    total = int(round(seconds))
    return f"{total // 60}:{total % 60:02d}"


def _from_address(message, ctx, caller: str, contact_name: str) -> Address:
    domain = ctx.mail_domain(message.kind)
    if message.sender and domain:
        name = display_name(contact_name) or display_name(message.sender_name)
        name = name or ctx.format_number(message.sender)
        return Address(display_name=name, username=message.sender, domain=domain)
    sender = ctx.system_sender(required=False)
    return Address(display_name=display_name(caller), addr_spec=sender.addr_spec)


def _attach_content(mail: EmailMessage, message, ctx, values) -> None:
    if message.kind == "sms" or not message.content_path:
        return
    stamp = ctx.local_time(message.received_at).strftime("%Y%m%d-%H%M%S")
    who = (message.sender or "unknown").lstrip("+")
    if message.kind == "voice":
        name = ascii_file_name("voice", stamp, who, extension=".wav")
        attach_file(mail, message.content_path, "audio", "wav", name)
        return
    wanted = ctx.config.get("fax.attachment_format")
    if wanted in ("pdf", "both"):
        name = ascii_file_name("fax", stamp, who, extension=".pdf")
        _attach_fax(mail, message, "application/pdf", fax_pdf_data, name)
    if wanted in ("tiff", "both"):
        name = ascii_file_name("fax", stamp, who, extension=".tif")
        _attach_fax(mail, message, "image/tiff", _convert_to_tiff, name)


def _attach_fax(mail, message, content_type, convert, name) -> None:
    """Attach the fax as CONTENT_TYPE: the stored file itself, or converted."""
    maintype, subtype = content_type.split("/")
    if message.content_type == content_type:
        attach_file(mail, message.content_path, maintype, subtype, name)
        return
    data = convert(message.content_path)
    attach_file(mail, data, maintype, subtype, name)


def _convert_to_tiff(source) -> bytes:
    with tempfile.TemporaryDirectory(prefix="ums-") as folder:
        target = os.path.join(folder, "fax.tif")
        fax_to_tiff(source, target)
        with open(target, "rb") as handle:
            return handle.read()
