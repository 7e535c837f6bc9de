"""Tell the default recipient that an e-mail from an unknown sender was deleted.

An informational mail: off when ``info_mails`` is false. The claimed sender is
never written to (that would be backscatter).
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
def ums_outgoing_deleted(sender, recipients, subject, reason, ctx):
    target = ctx.config.get("default_recipient")
    if not target:
        log.warning("gateway: no default_recipient to tell of a deleted mail")
        return
    values = {
        "sender": sender,
        "recipients": recipients,
        "subject": subject,
        "reason": reason,
        "now": dt.datetime.now(dt.UTC),
    }
    language = ctx.config.get("language")
    mail = render_notice(ctx, "deleted-notice", language, target, values)
    ctx.queue_mail(mail, purpose="notice")
    log.info("gateway: deleted-notice queued for %s", target)
