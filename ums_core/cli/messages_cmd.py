"""``ums messages``: list, show and export stored messages."""

from __future__ import annotations

import click

from . import CliState, echo_json


@click.group("messages")
def messages_group():
    """List, show and export messages."""


@messages_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--user", default=None, help="Only the messages of this e-mail.")
@click.option("--limit", default=1000, show_default=True, help="Newest N.")
@click.pass_obj
def list_command(state: CliState, as_json, user, limit):
    """List messages, newest first."""
    from ..messages import describe_message, list_messages

    state.app(load_plugins=False)
    rows = list_messages(user, limit)
    if as_json:
        echo_json([describe_message(row) for row in rows])
        return
    for row in rows:
        click.echo(_summary_line(row))


def _summary_line(row) -> str:
    who = row.recipient or "(no recipient)"
    flag = " [default recipient]" if row.default_recipient else ""
    if row.direction == "inbound":
        peer = f"{row.sender or row.sender_raw or 'withheld':<16} -> {row.called:<16}"
    else:
        peer = f"{'to':<16} -> {row.called:<16}"
    return (
        f"{row.id:>6}  {row.direction:<8} {row.kind:<5} {_size(row):<7} {peer} "
        f"{who}{flag}  {row.location or '-'}/{row.state}"
    )


def _size(row) -> str:
    if row.kind == "fax" and row.pages is not None:
        return f"{row.pages}p"
    if row.kind == "voice" and row.duration is not None:
        total = int(round(row.duration))
        return f"{total // 60}:{total % 60:02d}"
    if row.kind == "sms":
        return f"{len(row.text)}ch"
    return "-"


@messages_group.command("show")
@click.argument("message_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def show_command(state: CliState, message_id, as_json):
    """Show everything about message MESSAGE_ID."""
    from .. import db
    from ..messages import describe_message, get_message_row
    from ..queue import describe_job

    state.app(load_plugins=False)
    row = get_message_row(message_id)
    data = describe_message(row)
    data["jobs"] = [describe_job(job) for job in row.jobs.order_by(db.Job.id)]
    data["mails"] = [
        {"id": m.id, "message_id": m.msgid, "state": m.state, "to": m.recipients}
        for m in row.mails
    ]
    if as_json:
        echo_json(data)
        return
    for key, value in data.items():
        if isinstance(value, list):
            click.echo(f"{key}:")
            for item in value:
                click.echo("  " + ", ".join(f"{k}={v}" for k, v in item.items()))
        else:
            shown = "" if value is None else value
            if isinstance(value, bool):
                shown = str(value).lower()
            click.echo(f"{key}: {shown}")


@messages_group.command("export")
@click.argument("message_id", type=int)
@click.argument("folder", type=click.Path(file_okay=False))
@click.pass_obj
def export_command(state: CliState, message_id, folder):
    """Copy the content and metadata of MESSAGE_ID into FOLDER."""
    from ..messages import export_message

    app = state.app(load_plugins=False)
    for path in export_message(app, message_id, folder):
        click.echo(path)
