"""smstools3 (smsd): SMS in from its incoming folder, out through its outgoing one."""

from ums_core.hookspecs import hookimpl

UMS_ROLE = "intake"
BACKEND = "smstools"


@hookimpl
def ums_declare_config():
    """Return the smstools.* configuration keys."""
    from .settings import KEYS

    return list(KEYS)


@hookimpl
def ums_add_commands(cli):
    """Add ``ums smstools``."""
    from .commands import smstools_group

    cli.add_command(smstools_group)


@hookimpl
def ums_transmit_message(message, ctx):
    """Transmit an SMS through smsd when transmit.sms names smstools."""
    if message.kind != "sms" or ctx.transmit_backend("sms") != BACKEND:
        return None
    from .outbound import transmit_by_smstools

    return transmit_by_smstools(message, ctx)
