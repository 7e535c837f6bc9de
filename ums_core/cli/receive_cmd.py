"""``ums receive``: hand a fax, voice message or SMS to intake."""

from __future__ import annotations

import datetime as dt
import sys

import click

from ..errors import UmsError
from . import CliState


def _common(func):
    options = [
        click.option("--from", "sender", default="", help="Caller's number."),
        click.option("--to", "called", required=True, help="Called number."),
        click.option("--name", default="", help="Caller's name."),
        click.option("--station-id", default="", help="Sending station id (TSI)."),
        click.option("--received-at", default=None, help="ISO 8601 time."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@click.group("receive")
def receive_group():
    """Receive a message as the phone side would hand it over."""


def _received_at(text):
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 time") from None


def _receive(state, kind, called, sender, name, station_id, received_at, **extra):
    from ..intake import receive_message
    from ..model import IncomingMessage

    incoming = IncomingMessage(
        kind=kind,
        called=called,
        sender=sender or None,
        sender_name=name,
        station_id=station_id,
        received_at=_received_at(received_at),
        **extra,
    )
    click.echo(receive_message(state.app(), incoming))


@receive_group.command("fax")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@_common
@click.pass_obj
def fax_command(state: CliState, file, **options):
    """Receive the fax in FILE (TIFF or PDF); print the message id."""
    _receive(state, "fax", content_path=file, **options)


@receive_group.command("voice")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@_common
@click.pass_obj
def voice_command(state: CliState, file, **options):
    """Receive the voice message in FILE (WAV); print the message id."""
    _receive(state, "voice", content_path=file, **options)


@receive_group.command("sms")
@click.option("--text", default=None, help="The text (default: read stdin).")
@_common
@click.pass_obj
def sms_command(state: CliState, text, **options):
    """Receive an SMS; print the message id."""
    if text is None:
        raw = sys.stdin.buffer.read(1024 * 1024)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UmsError(
                f"the SMS text on stdin is not UTF-8 (byte {exc.start})",
                hint="convert it first, e.g. iconv -f ISO-8859-15 -t UTF-8",
            ) from None
    _receive(state, "sms", text=text, **options)
