"""``ums templates``: list, show and preview the mails ums writes."""

from __future__ import annotations

import click

from . import CliState


@click.group("templates")
def templates_group():
    """List, show and preview templates (override one in DIR/templates/)."""


@templates_group.command("list")
@click.pass_obj
def list_command(state: CliState):
    """List every template and whether the admin overrides it."""
    from ..templates import list_templates

    for info in list_templates(state.app()):
        flag = "  (overridden)" if info.overridden else ""
        click.echo(f"{info.name:<36} {info.plugin}{flag}")


@templates_group.command("show")
@click.argument("name")
@click.pass_obj
def show_command(state: CliState, name):
    """Print the template NAME as it is used now."""
    from ..templates import read_template

    info = read_template(state.app(), name)
    click.echo(f"# {info.path}")
    with open(info.path, encoding="utf-8") as handle:
        click.echo(handle.read(), nl=False)


@templates_group.command("preview")
@click.argument("kind")
@click.option("--user", "email", required=True, help="Render it for this user.")
@click.pass_obj
def preview_command(state: CliState, kind, email):
    """Render the mail KIND (password, infomail, …) for a user; send nothing."""
    from ..templates import preview_notice
    from ..users import get_user_row, to_model

    app = state.app()
    for text in preview_notice(app, kind, to_model(get_user_row(email))):
        click.echo(text)
