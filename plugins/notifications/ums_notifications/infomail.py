"""The info mail: how a user receives and sends faxes and SMS here."""

from __future__ import annotations

import datetime as dt
import logging

from ums_core.hookspecs import hookimpl

from .render import render_notice, service_values

UMS_ROLE = "notice"
UMS_INFO_MAIL = True

log = logging.getLogger(__name__)


@hookimpl
def ums_infomail_requested(user, ctx):
    numbers = [(kind, ctx.format_number(e164)) for kind, e164 in user.numbers]
    values = {"user": user, "numbers": numbers, "now": dt.datetime.now(dt.UTC)}
    values.update(service_values(ctx))
    mail = render_notice(ctx, "infomail", user.language, user.email, values)
    ctx.queue_mail(mail, purpose="notice")
    log.info("info mail queued for %s", user.email)
    return True
