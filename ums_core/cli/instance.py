"""``ums init`` and ``ums mode``."""

from __future__ import annotations

import click

from ..errors import UmsError
from . import CliState


@click.command("init")
@click.option(
    "--database",
    default="",
    metavar="URL",
    help="postgresql://… shared with other nodes (default: SQLite here).",
)
@click.pass_obj
def init_command(state: CliState, database):
    """Create an instance on the embedded default (local mode, no mail server)."""
    from ..app import App, create_instance, default_home
    from ..config import parse_database

    home = state.home or default_home()
    try:
        database = parse_database(database)
    except ValueError as exc:
        raise UmsError(f"--database: {exc}") from None
    create_instance(home, database)
    app = App.open(home, load_plugins=False)
    click.echo(f"Created an ums instance in {app.home}")
    click.echo("mode: local, info mails: off (no mail server needed)")


@click.command("mode")
@click.argument("mode", required=False, type=click.Choice(["local", "mailserver"]))
@click.pass_obj
def mode_command(state: CliState, mode):
    """Print the storage mode, or change it to MODE.

    Changing the mode moves nothing: every message keeps the location it was
    given when it was handled.
    """
    app = state.app(load_plugins=False)
    if mode is None:
        click.echo(app.config.get("mode"))
        return
    old = app.config.get("mode")
    app.config.set("mode", mode)
    app.config.save()
    click.echo(f"mode: {mode}" + ("" if old != mode else " (unchanged)"))
    if mode == "mailserver" and not app.config.get("smtp.host"):
        click.echo(
            "Note: smtp.host is not set; e-mails wait in the queue until it is"
            " (ums config set smtp.host HOST)",
            err=True,
        )
