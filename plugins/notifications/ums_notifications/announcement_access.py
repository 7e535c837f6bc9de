"""The access data for recording the global announcement, mailed to its holder.

An informational mail: off when ``info_mails`` is false, and then the command
shows the user name and PIN to the admin instead. Written in the instance's
``language``: the holder need not be a user. Queued with purpose ``secret``:
its file goes once the mail server took it.
"""

from __future__ import annotations

import datetime as dt
import logging

from ums_core.hookspecs import hookimpl

from .render import render_notice

UMS_ROLE = "notice"
UMS_INFO_MAIL = True

log = logging.getLogger(__name__)


@hookimpl
def ums_announcement_access_issued(recipient, username, pin, number, ctx):
    values = {
        "username": username,
        "pin": pin,
        "number": number,
        "max_failures": ctx.config.get("voicemail.max_failures"),
        "now": dt.datetime.now(dt.UTC),
    }
    language = ctx.config.get("language")
    mail = render_notice(ctx, "announcement-access", language, recipient, values)
    ctx.queue_mail(mail, purpose="secret")
    log.info("announcement: access data mail queued for %s", recipient)
    return True
