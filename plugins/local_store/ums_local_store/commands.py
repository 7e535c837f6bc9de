"""``ums journal``: serve the web journal, apply the retention setting."""

from __future__ import annotations

import logging
import signal
import threading

import click

from ums_core.errors import UmsError


@click.group("journal")
def journal_group():
    """The web journal of the local store."""


def _open(state):
    app = state.app()
    if "local_store" not in app.active_names():
        raise UmsError(
            "the local store is not active, so the journal has nothing to show",
            hint="ums mode local (or: ums config set archiving true)",
        )
    return app


@journal_group.command("serve")
@click.option("--listen", help="HOST:PORT (default: the journal.listen setting).")
@click.pass_obj
def serve_command(state, listen):
    """Serve the journal alone until SIGINT or SIGTERM."""
    from ums_core.config import parse_listen
    from ums_core.context import PluginContext

    from .journal.service import JournalService

    app = _open(state)
    address = listen or app.config.get("journal.listen")
    if not address:
        raise UmsError("journal.listen is empty", hint="pass --listen HOST:PORT")
    try:
        address = parse_listen(address)
    except ValueError as exc:
        raise UmsError(f"--listen: {exc}") from None
    logging.getLogger().setLevel(logging.INFO)
    for handler in logging.getLogger().handlers:
        handler.setLevel(min(handler.level, logging.INFO))
    try:
        service = JournalService(PluginContext(app), address).start()
    except OSError as exc:
        raise UmsError(f"cannot listen on {address}: {exc.strerror}") from None
    click.echo(f"journal on http://{service.address}/ (stop with Ctrl-C)")
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    while not stopped.wait(1):
        if not service.thread.is_alive():
            raise UmsError("the journal server stopped unexpectedly")
    service.stop()


@journal_group.command("purge")
@click.option("--days", type=click.IntRange(1, 36500), help="Override the setting.")
@click.option("--dry-run", is_flag=True, help="Count what would go; delete nothing.")
@click.pass_obj
def purge_command(state, days, dry_run):
    """Delete stored messages older than journal.retention_days."""
    from .retention import purge_old

    app = _open(state)
    days = days or app.config.get("journal.retention_days")
    if not days:
        click.echo("journal.retention_days is 0: messages are kept; nothing to do")
        return
    result = purge_old(app.content_root, days, dry_run)
    verb = "would delete" if dry_run else "deleted"
    click.echo(
        f"{verb} {result.deleted} messages received before "
        f"{result.cutoff:%Y-%m-%d %H:%M} UTC ({days} days)"
        + (f"; {result.kept_busy} still in progress, kept" if result.kept_busy else "")
    )
