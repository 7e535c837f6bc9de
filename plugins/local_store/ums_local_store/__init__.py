"""Keep every message in the local store, and show it in the web journal."""

from ums_core.hookspecs import hookimpl

from .store import store_message

UMS_ROLE = "archive"


@hookimpl
def ums_store_message(message, ctx):
    return store_message(message, ctx)


@hookimpl
def ums_add_commands(cli):
    """Add ``ums journal``."""
    from .commands import journal_group

    cli.add_command(journal_group)


@hookimpl
def ums_start_service(ctx):
    """Serve the journal beside ``ums serve`` (journal.listen; '' turns it off)."""
    from .journal.service import start_journal

    return start_journal(ctx)
