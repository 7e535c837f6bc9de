"""Deliver inbound messages as e-mails to the recipient's mailbox."""

from ums_core.hookspecs import hookimpl

from .compose import compose_message_mail

UMS_ROLE = "delivery"


@hookimpl
def ums_compose_mail(message, ctx):
    return compose_message_mail(message, ctx)
