"""``ums users``: the people who receive and send messages."""

from __future__ import annotations

import attrs
import click

from . import CliState, echo_json


@click.group("users")
def users_group():
    """Add, list, enable, disable and remove users."""


@users_group.command("add")
@click.argument("email")
@click.option("--name", default="", help="Display name.")
@click.option("--fax", multiple=True, help="A fax number the user owns.")
@click.option("--voice", multiple=True, help="A voice number the user owns.")
@click.option("--sms", multiple=True, help="An SMS number the user owns.")
@click.option("--lang", type=click.Choice(["en", "de"]), default=None)
@click.pass_obj
def add_command(state: CliState, email, name, fax, voice, sms, lang):
    """Add the user EMAIL with the numbers they own."""
    from ..users import add_user

    app = state.app()
    numbers = {"fax": list(fax), "voice": list(voice), "sms": list(sms)}
    language = lang or app.config.get("language")
    user = add_user(email, app.site_rules, name, language, numbers)
    owned = ", ".join(f"{kind} {e164}" for kind, e164 in user.numbers) or "no numbers"
    click.echo(f"added {user.email} ({owned})")
    issue_password(app, user, "new")


def issue_password(app, user, reason: str) -> None:
    """Give USER a fresh password: mail it, or show it once to the admin."""
    from ..accounts import issue_password as issue

    password = issue(app, user, reason)
    if password is None:
        click.echo(f"password mail queued for {user.email}")
        return
    from ..accounts import why_not_mailed

    click.echo(f"password: {password}")
    click.echo(f"(not mailed: {why_not_mailed(app)}; hand the password on yourself)")


@users_group.command("reset-password")
@click.argument("email")
@click.pass_obj
def reset_password_command(state: CliState, email):
    """Give EMAIL a new password (a new one each time) and mail it."""
    from ..users import get_user_row, to_model

    app = state.app()
    issue_password(app, to_model(get_user_row(email)), "reset")


@users_group.command("send-infomail")
@click.argument("email", required=False)
@click.option("--all", "everyone", is_flag=True, help="Every active user.")
@click.pass_obj
def send_infomail_command(state: CliState, email, everyone):
    """Mail the info mail that explains the service to EMAIL (or --all)."""
    from ..accounts import send_infomail
    from ..errors import UmsError
    from ..users import get_user_row, list_users, to_model

    app = state.app()
    if everyone == bool(email):
        raise UmsError("name one user's e-mail address, or give --all")
    users = (
        [u for u in list_users() if u.active]
        if everyone
        else [to_model(get_user_row(email))]
    )
    from ..accounts import why_not_mailed

    sent = sum(1 for user in users if send_infomail(app, user))
    if sent < len(users):
        raise UmsError(
            f"info mail queued for {sent} of {len(users)} user(s):"
            f" {why_not_mailed(app)}",
        )
    click.echo(f"info mail queued for {sent} user(s)")


@users_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def list_command(state: CliState, as_json):
    """List every user with their numbers."""
    from ..users import list_users

    state.app(load_plugins=False)
    users = list_users()
    if as_json:
        echo_json([_user_json(u) for u in users])
        return
    for user in users:
        flag = "" if user.active else " (disabled)"
        numbers = " ".join(f"{kind}:{e164}" for kind, e164 in user.numbers)
        click.echo(f"{user.email}{flag}  {user.name}  [{user.language}]  {numbers}")


def _user_json(user) -> dict:
    data = attrs.asdict(user)
    data["numbers"] = [{"kind": kind, "number": e164} for kind, e164 in user.numbers]
    return data


@users_group.command("disable")
@click.argument("email")
@click.pass_obj
def disable_command(state: CliState, email):
    """Disable EMAIL: new messages to their numbers go to the default recipient."""
    from ..users import disable_user

    state.app(load_plugins=False)
    click.echo(f"disabled {disable_user(email).email}")


@users_group.command("enable")
@click.argument("email")
@click.pass_obj
def enable_command(state: CliState, email):
    """Enable EMAIL again."""
    from ..users import enable_user

    state.app(load_plugins=False)
    click.echo(f"enabled {enable_user(email).email}")


@users_group.command("remove")
@click.argument("email")
@click.confirmation_option(prompt="Remove this user? Their messages stay.")
@click.pass_obj
def remove_command(state: CliState, email):
    """Remove EMAIL and their numbers (their messages stay)."""
    from ..users import remove_user

    state.app(load_plugins=False)
    remove_user(email)
    click.echo(f"removed {email}")


def _add_csv_commands() -> None:
    from .users_csv_cmd import export_command, import_command

    users_group.add_command(import_command, "import")
    users_group.add_command(export_command, "export")


_add_csv_commands()
