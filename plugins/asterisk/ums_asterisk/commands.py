"""``ums asterisk``: import voice messages from an Asterisk voicemail spool."""

from __future__ import annotations

import logging
import sys

import click

from .settings import is_spool_name, parse_map, read_settings
from .spool import check_spool, list_inbox, list_spool

log = logging.getLogger(__name__)


def check_map_option(ctx, param, value: tuple[str, ...]) -> tuple[str, ...]:
    """Refuse a --map value that is not CONTEXT/MAILBOX=NUMBER."""
    try:
        parse_map(list(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def check_spool_name(ctx, param, value: str) -> str:
    """Refuse a context or mailbox that could leave the spool (``..``, ``/``)."""
    if param.name == "context" and value == "":
        return "default"
    if not is_spool_name(value):
        raise click.BadParameter(f"{value!r} is not a voicemail {param.name} name")
    return value


map_option = click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="CONTEXT/MAILBOX=NUMBER",
    callback=check_map_option,
    help="Deliver that mailbox's messages to NUMBER (repeatable; adds to "
    "asterisk.map).",
)


def echo_outcome(outcome) -> None:
    """Print the one line of OUTCOME."""
    click.echo(outcome.line)


def exit_for(problem: bool) -> None:
    """End the command with status 1 when anything was refused."""
    if problem:
        sys.exit(1)


@click.group("asterisk")
def asterisk_group():
    """Import voice messages from an Asterisk voicemail spool."""


@asterisk_group.command("import")
@click.argument(
    "voicemail_dir", required=False, type=click.Path(exists=True, file_okay=False)
)
@map_option
@click.option("--watch", is_flag=True, help="Keep polling until SIGTERM or SIGINT.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    default=None,
    help="Seconds between polls with --watch (default: asterisk.poll).",
)
@click.option(
    "--polls",
    type=click.IntRange(min=1),
    default=None,
    help="With --watch: stop after N polls.",
)
@click.pass_obj
def import_command(state, voicemail_dir, maps, watch, interval, polls):
    """Import the INBOX of every mapped mailbox under VOICEMAIL_DIR.

    VOICEMAIL_DIR is Asterisk's voicemail folder (default: asterisk.spool),
    holding CONTEXT/MAILBOX/INBOX/msgNNNN.txt and msgNNNN.wav. One line is
    printed per message; the status is 1 when any was refused.
    """
    if polls is not None and not watch:
        raise click.UsageError("--polls needs --watch")
    from .watch import SpoolWatcher, import_once  # the intake: not for --help

    app = state.app()
    settings = read_settings(app, maps, voicemail_dir or "")
    check_spool(settings.spool)
    if watch:
        watcher = SpoolWatcher(
            app, settings, lambda: list_spool(settings.spool), echo_outcome
        )
        exit_for(watcher.run(interval or settings.poll, polls))
        return
    exit_for(
        import_once(app, lambda: list_spool(settings.spool), settings, echo_outcome)
    )


@asterisk_group.command("notify")
@click.argument("context", callback=check_spool_name)
@click.argument("mailbox", callback=check_spool_name)
@click.argument("new", type=int, required=False)
@click.argument("old", type=int, required=False)
@click.argument("urgent", type=int, required=False)
@click.option(
    "--spool",
    "voicemail_dir",
    type=click.Path(file_okay=False),
    help="Asterisk's voicemail folder (default: asterisk.spool).",
)
@map_option
@click.pass_obj
def notify_command(state, context, mailbox, new, old, urgent, voicemail_dir, maps):
    """Import the INBOX of CONTEXT/MAILBOX: the command for externnotify.

    Asterisk runs 'externnotify CONTEXT MAILBOX NEW OLD URGENT' whenever a
    mailbox changes; the counts are only logged.
    """
    from .watch import import_once

    app = state.app()
    settings = read_settings(app, maps, voicemail_dir or "")
    check_spool(settings.spool)
    log.info(
        "Asterisk notify for %s/%s: new %s, old %s, urgent %s",
        context,
        mailbox,
        new,
        old,
        urgent,
    )
    exit_for(
        import_once(
            app,
            lambda: list_inbox(settings.spool, context, mailbox),
            settings,
            echo_outcome,
        )
    )
