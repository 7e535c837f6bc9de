"""The welcome mail of a voice mailbox: its number, the PIN and how to call it.

An informational mail: off when ``info_mails`` is false, and then the command
that made the PIN shows it to the admin instead. Also sent for a new PIN.
Queued with purpose ``secret``: its file goes once the mail server took it.
"""

from __future__ import annotations

import datetime as dt
import logging

from ums_core.hookspecs import hookimpl

from .render import render_notice, service_values

UMS_ROLE = "notice"
UMS_INFO_MAIL = True

log = logging.getLogger(__name__)


@hookimpl
def ums_voicemail_created(user, mailbox, pin, ctx):
    values = {
        **service_values(ctx),
        "user": user,
        "mailbox": mailbox,
        "mailbox_display": ctx.format_number(mailbox),
        "pin": pin,
        "max_failures": ctx.config.get("voicemail.max_failures"),
        "now": dt.datetime.now(dt.UTC),
    }
    mail = render_notice(ctx, "voicemail-welcome", user.language, user.email, values)
    ctx.queue_mail(mail, purpose="secret")
    log.info("voicemail: welcome mail queued for %s", user.email)
    return True
