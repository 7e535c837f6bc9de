"""The password mail: a user's new login password for the web journal.

An informational mail (off when ``info_mails`` is false; the command then
shows the password to the admin). The mail is queued with purpose
``secret``: its file is removed once the mail server has accepted it.
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
def ums_password_set(user, password, reason, ctx):
    values = {
        "user": user,
        "password": password,
        "reason": reason,
        "now": dt.datetime.now(dt.UTC),
        **service_values(ctx),
    }
    mail = render_notice(ctx, "password", user.language, user.email, values)
    ctx.queue_mail(mail, purpose="secret")
    log.info("password mail queued for %s", user.email)
    return True
