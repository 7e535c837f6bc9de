"""Shared rendering for notice mails: templates, headers, the system sender."""

from __future__ import annotations

from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from ums_core.helpers import mail_text, new_mail, set_text_body, template_environment

LANGUAGES = ("en", "de")


def render_notice(ctx, name: str, language: str, to: str, values: dict) -> EmailMessage:
    """Return the notice NAME for TO, rendered in LANGUAGE."""
    language = language if language in LANGUAGES else "en"
    env = template_environment(ctx, "ums_notifications")
    sender = ctx.system_sender()
    mail = new_mail()
    mail["From"] = Address(
        display_name=sender.display_name or "ums", addr_spec=sender.addr_spec
    )
    mail["To"] = Address(addr_spec=to)
    subject = env.get_template(f"{name}-subject.{language}.txt").render(values)
    mail["Subject"] = mail_text(subject, 250)
    mail["Date"] = format_datetime(values["now"])
    mail["Message-ID"] = values.get("message_id") or make_msgid(domain=sender.domain)
    mail["Auto-Submitted"] = "auto-generated"
    set_text_body(mail, env.get_template(f"{name}.{language}.txt").render(values))
    return mail


def service_values(ctx) -> dict:
    """Return what info mails say about the service: domains, journal, mode."""
    config = ctx.config
    local_store = config.get("mode") == "local" or config.get("archiving")
    return {
        "fax_domain": ctx.mail_domain("fax"),
        "sms_domain": ctx.mail_domain("sms"),
        "journal_url": config.get("journal.url") if local_store else "",
        "mode": config.get("mode"),
        "voicemail_number": config.get("voicemail.number"),
    }
