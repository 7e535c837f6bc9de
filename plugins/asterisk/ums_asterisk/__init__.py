"""Import voice messages from an Asterisk voicemail spool (externnotify, watch)."""

from ums_core.hookspecs import hookimpl

UMS_ROLE = "intake"


@hookimpl
def ums_declare_config():
    """Return the asterisk.* configuration keys."""
    from .settings import declare_keys

    return declare_keys()


@hookimpl
def ums_add_commands(cli):
    """Add the ``ums asterisk`` command group."""
    from .commands import asterisk_group

    cli.add_command(asterisk_group)
