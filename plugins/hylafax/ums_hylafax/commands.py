"""``ums hylafax``: receive faxes from HylaFAX (FaxDispatch) or its recvq."""

from __future__ import annotations

import click


@click.group("hylafax")
def hylafax_group():
    """Take faxes HylaFAX received; see also transmit.fax = hylafax."""


@hylafax_group.command("receive")
@click.argument("files", nargs=-1, required=True)
@click.option("--from", "sender", default="", help="Caller id number (CIDNUMBER).")
@click.option("--name", default="", help="Caller id name (CIDNAME).")
@click.option("--to", "called", default="", help="Called number / DID.")
@click.option("--tsi", default="", help="Sender's TSI (SENDER).")
@click.option("--commid", default="", help="HylaFAX communication id (COMMID).")
@click.option("--error", default="", help="Reception error faxrcvd got (MSG).")
@click.pass_obj
def receive_command(state, files, **options):
    """Receive each recvq TIFF or info file in FILES; print what became of it.

    A FILE relative to hylafax.spool (as faxrcvd passes it, e.g.
    recvq/fax00012.tif) is found there. Exits with status 1 when any FILE was
    refused.
    """
    from .receive import ReceiveOptions, receive_safely

    app = state.app()
    refused = 0
    for name in files:
        outcome = receive_safely(app, name, ReceiveOptions(**options))
        refused += outcome.status == "refused"
        click.echo(outcome.describe(name))
    if refused:
        raise SystemExit(1)


@hylafax_group.command("import")
@click.argument("recvq", type=click.Path(file_okay=False))
@click.option("--watch", is_flag=True, help="Keep looking until SIGTERM/SIGINT.")
@click.option(
    "--interval",
    default=5.0,
    type=click.FloatRange(min=0.1),
    show_default=True,
    help="Seconds between looks with --watch.",
)
@click.option(
    "--passes",
    default=0,
    type=click.IntRange(min=0),
    help="With --watch, stop after this many looks (0: until a signal).",
)
@click.pass_obj
def import_command(state, recvq, watch, interval, passes):
    """Import the finished fax*.tif files of the recvq folder RECVQ.

    Files HylaFAX is still receiving are left for later; nothing is deleted.
    Without --watch, exits with status 1 when any file was refused.
    """
    from .recvq import RecvqImporter, watch_recvq

    importer = RecvqImporter(state.app(), recvq, click.echo)
    if watch:
        watch_recvq(importer, interval, passes)
        return
    importer.run_pass()
    if importer.refused:
        raise SystemExit(1)
