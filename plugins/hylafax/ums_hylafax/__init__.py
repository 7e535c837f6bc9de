"""Receive faxes from HylaFAX's recvq and send faxes with HylaFAX's sendfax."""

from ums_core.hookspecs import hookimpl

from .settings import BACKEND, CONFIG_KEYS

UMS_ROLE = "intake"


@hookimpl
def ums_declare_config():
    return list(CONFIG_KEYS)


@hookimpl
def ums_add_commands(cli):
    from .commands import hylafax_group

    cli.add_command(hylafax_group)


@hookimpl
def ums_transmit_message(message, ctx):
    if message.kind != "fax" or ctx.transmit_backend("fax") != BACKEND:
        return None
    from .transmit import transmit_fax

    return transmit_fax(message, ctx)
