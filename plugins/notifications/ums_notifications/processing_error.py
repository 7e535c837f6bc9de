"""The error mail: tell a known sender why their e-mail was not sent."""

from __future__ import annotations

import datetime as dt
import logging

from ums_core.hookspecs import hookimpl

from .render import render_notice

UMS_ROLE = "notice"
UMS_INFO_MAIL = False

log = logging.getLogger(__name__)


@hookimpl
def ums_outgoing_rejected(message, reason, outcomes, ctx):
    if not message.recipient:
        return
    values = {
        "message": message,
        "reason": reason,
        "outcomes": outcomes,
        "number": ctx.format_number(message.called),
        "now": dt.datetime.now(dt.UTC),
        "message_id": ctx.message_id_for(message, purpose="error"),
    }
    mail = render_notice(
        ctx, "processing-error", message.recipient_language, message.recipient, values
    )
    ctx.queue_mail(mail, purpose="notice", message_id=message.id)
    log.info("msg %d: error mail queued for %s", message.id, message.recipient)
