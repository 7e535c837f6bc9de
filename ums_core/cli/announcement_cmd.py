"""``ums announcement``: the company-wide announcement and its access data.

Access data is shown only when no plugin mailed it, once, on the lines
``username: ann-NNNN`` and ``pin: NNNNNN``. ``login`` exits 0 when the caller
is let in, 1 when refused.
"""

from __future__ import annotations

import sys

import click

from . import CliState, echo_json


@click.group("announcement")
def announcement_group():
    """Set the global announcement; issue and revoke access for recording it."""


@announcement_group.command("access")
@click.option("--to", "recipient", required=True, help="Who gets the access data.")
@click.pass_obj
def access_command(state: CliState, recipient):
    """Make access data for recording the announcement and mail it."""
    from ..accounts import why_not_mailed
    from ..announcement import issue_access

    app = state.app()
    issued = issue_access(app, recipient)
    click.echo(f"access data for recording the announcement: {issued.recipient}")
    if issued.mailed:
        click.echo(f"mail with the access data queued for {issued.recipient}")
        return
    click.echo(f"number: {issued.number}")
    click.echo(f"username: {issued.username}")
    click.echo(f"pin: {issued.pin}")
    reason = why_not_mailed(app)
    click.echo(f"The access data was not mailed ({reason}); hand it on yourself.")


@announcement_group.command("revoke")
@click.pass_obj
def revoke_command(state: CliState):
    """Invalidate every set of access data."""
    from ..announcement import revoke_access

    state.app(load_plugins=False)
    click.echo(f"revoked {revoke_access()} set(s) of access data")


@announcement_group.command("set")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.pass_obj
def set_command(state: CliState, path):
    """Make the WAV file PATH the announcement, replacing the previous one."""
    from ..announcement import set_announcement

    data = set_announcement(state.app(load_plugins=False), path)
    click.echo(f"announcement set: {data['detail']} ({data['file']})")


@announcement_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def show_command(state: CliState, as_json):
    """Show the announcement and who holds access data (never a PIN)."""
    from ..announcement import show_announcement

    data = show_announcement(state.app(load_plugins=False))
    if as_json:
        echo_json(data)
        return
    if data["file"] is None:
        click.echo("announcement: not set")
    else:
        click.echo(f"announcement: {data['file']}")
        click.echo(f"duration: {data['duration'] or 0:.1f}s ({data['detail']})")
        click.echo(f"set at: {data['set_at']}")
    if not data["access"]:
        click.echo("access data: none")
    for access in data["access"]:
        flag = " (locked)" if access["locked"] else ""
        click.echo(
            f"access data: {access['recipient']} as {access['username']}{flag}, "
            f"issued {access['created_at']}"
        )


@announcement_group.command("login")
@click.argument("username")
@click.option("--pin", envvar="UMS_PIN", default=None, help="The PIN entered.")
@click.pass_obj
def login_command(state: CliState, username, pin):
    """Check a login to record the announcement (exit 0 ok, 1 refused)."""
    from ..announcement import check_access_login

    result = check_access_login(state.app(load_plugins=False), username, pin)
    click.echo(result.describe())
    if not result.ok:
        sys.exit(1)


@announcement_group.command("unlock")
@click.argument("username")
@click.pass_obj
def unlock_command(state: CliState, username):
    """Unlock the access data USERNAME after too many wrong PINs."""
    from ..announcement import unlock_access

    state.app(load_plugins=False)
    unlock_access(username)
    click.echo(f"access data {username} unlocked")
