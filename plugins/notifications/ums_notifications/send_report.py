"""The send report: tell the sender whether their fax or SMS went out.

Mailed when the message was handled in ``mailserver`` mode; in ``local``
mode the outcome is kept with the outbound message and shown there.
"""

from __future__ import annotations

import datetime as dt
import logging

from ums_core.helpers import ascii_file_name
from ums_core.hookspecs import hookimpl

from .render import render_notice

UMS_ROLE = "notice"
UMS_INFO_MAIL = False

log = logging.getLogger(__name__)


def _report(message, result, ctx, sent: bool) -> None:
    if message.location != "mailserver" or not message.recipient:
        log.info("msg %d: send report kept locally", message.id)
        return
    now = dt.datetime.now(dt.UTC)
    values = {
        "message": message,
        "result": result,
        "sent": sent,
        "number": ctx.format_number(message.called),
        "time": ctx.local_time(now).strftime("%Y-%m-%d %H:%M:%S %z"),
        "now": now,
        "message_id": ctx.message_id_for(message, purpose="report"),
    }
    mail = render_notice(
        ctx, "send-report", message.recipient_language, message.recipient, values
    )
    if message.kind == "fax" and message.content_path:
        with open(message.content_path, "rb") as handle:
            data = handle.read()
        name = ascii_file_name("fax", message.called.lstrip("+"), extension=".pdf")
        mail.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    ctx.queue_mail(mail, purpose="report", message_id=message.id)
    log.info("msg %d: send report queued for %s", message.id, message.recipient)


@hookimpl
def ums_outgoing_sent(message, result, ctx):
    _report(message, result, ctx, sent=True)


@hookimpl
def ums_outgoing_failed(message, result, ctx):
    _report(message, result, ctx, sent=False)
