"""``ums smstools``: import smsd's incoming files, take its eventhandler calls."""

from __future__ import annotations

import click

from ums_core.cli import CliState
from ums_core.errors import UmsError

from .settings import PLUGIN


@click.group("smstools")
def smstools_group():
    """Exchange SMS with smstools3 (smsd) through its spool folders."""


@smstools_group.command("import")
@click.argument("incoming_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--watch", is_flag=True, help="Keep importing every smstools.poll until stopped."
)
@click.pass_obj
def import_command(state: CliState, incoming_dir, watch):
    """Import the SMS files in INCOMING_DIR, smsd's incoming folder.

    Prints one line per file (imported, recorded, skipped or refused) and
    exits with status 1 when a file was refused.
    """
    from .inbound import import_folder

    app = open_instance(state, need_number=True)
    if watch:
        refused = run_watch(app, incoming_dir)
    else:
        refused = sum(echo_outcome(o) for o in import_folder(app, incoming_dir))
    exit_if_refused(refused)


@smstools_group.command("event")
@click.argument("event")
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("message_id", nargs=-1)
@click.pass_obj
def event_command(state: CliState, event, file, message_id):
    """Take one eventhandler call of smsd: EVENT FILE [MESSAGE_ID].

    EVENT is RECEIVED, SENT, FAILED, REPORT or CALL. Exits with status 1 when
    the file was refused.
    """
    from .events import handle_event

    app = open_instance(state, need_number=event.strip().upper() == "RECEIVED")
    outcome = handle_event(app, event, file, message_id[0] if message_id else "")
    exit_if_refused(echo_outcome(outcome))


def open_instance(state: CliState, need_number: bool):
    """Return the open instance; refuse when the plugin or its number is missing."""
    app = state.app()
    if PLUGIN not in app.active_names():
        raise UmsError(
            "the smstools plugin is not active", hint="ums plugins enable smstools"
        )
    if need_number and not app.config.get("smstools.number"):
        raise UmsError(
            "smstools.number is not set: ums needs the modem's own number"
            " as the called number of received SMS",
            hint="ums config set smstools.number +491701234567",
        )
    return app


def echo_outcome(outcome) -> bool:
    """Print the line of OUTCOME; return True when it was a refusal."""
    click.echo(outcome.line())
    return outcome.refused


def run_watch(app, folder: str) -> int:
    """Import from FOLDER until SIGINT or SIGTERM; return the refusals."""
    import signal
    import threading

    from .inbound import watch_folder

    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set())
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        return watch_folder(app, folder, echo_outcome, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def exit_if_refused(refused: int) -> None:
    """Exit with status 1 when anything was refused."""
    if refused:
        raise SystemExit(1)
