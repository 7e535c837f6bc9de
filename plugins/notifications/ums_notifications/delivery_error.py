"""Tell the default recipient when a message could not be delivered for good."""

from __future__ import annotations

import datetime as dt
import logging

from ums_core.helpers import caller_label
from ums_core.hookspecs import hookimpl

from .render import render_notice

UMS_ROLE = "notice"
UMS_INFO_MAIL = False

log = logging.getLogger(__name__)


@hookimpl
def ums_message_failed(message, reason, ctx):
    target = ctx.config.get("default_recipient")
    if not target:
        log.warning("msg %d: failed, and no default_recipient to tell", message.id)
        return
    if message.recipient and message.recipient.lower() == target.lower():
        log.warning("msg %d: failed for the default recipient itself", message.id)
        return
    language = ctx.config.get("language")
    values = {
        "message": message,
        "reason": reason,
        "caller": caller_label(message, ctx, language),
        "called": ctx.format_number(message.called),
        "time": ctx.local_time(message.received_at).strftime("%Y-%m-%d %H:%M:%S %z"),
        "now": dt.datetime.now(dt.UTC),
        "message_id": ctx.message_id_for(message, purpose="failed"),
    }
    mail = render_notice(ctx, "delivery-error", language, target, values)
    ctx.queue_mail(mail, purpose="notice", message_id=message.id)
    log.info("msg %d: default recipient %s told of the failure", message.id, target)
