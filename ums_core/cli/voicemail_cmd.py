"""``ums voicemail``: voice mailboxes, and the logins the phone side asks for.

A PIN is shown only when no plugin mailed it, once, on a line ``pin: NNNNNN``.
``login`` and ``messages`` exit 0 when the caller is let in, 1 when refused.
"""

from __future__ import annotations

import sys

import click

from . import CliState, echo_json

PIN_HELP = "The PIN the caller entered (or set UMS_PIN)."


@click.group("voicemail")
def voicemail_group():
    """Give users a voice mailbox; log callers in for the phone side."""


@voicemail_group.command("enable")
@click.argument("email")
@click.option(
    "--trust-own-numbers",
    is_flag=True,
    help="Let calls from the user's own numbers log in without a PIN.",
)
@click.pass_obj
def enable_command(state: CliState, email, trust_own_numbers):
    """Give EMAIL a mailbox at their first voice number and mail its PIN."""
    from ..voicemail import enable_mailbox

    issued = enable_mailbox(state.app(), email, trust_own_numbers)
    click.echo(f"voice mailbox {issued.number} enabled for {issued.email}")
    _echo_pin(state, issued)


@voicemail_group.command("reset-pin")
@click.argument("email")
@click.pass_obj
def reset_pin_command(state: CliState, email):
    """Give the mailbox of EMAIL a new PIN (this also unlocks it) and mail it."""
    from ..voicemail import reset_pin

    issued = reset_pin(state.app(), email)
    click.echo(f"new PIN for voice mailbox {issued.number} of {issued.email}")
    _echo_pin(state, issued)


def _echo_pin(state: CliState, issued) -> None:
    from ..accounts import why_not_mailed

    if issued.mailed:
        click.echo(f"welcome mail with the PIN queued for {issued.email}")
        return
    click.echo(f"pin: {issued.pin}")
    reason = why_not_mailed(state.app())
    click.echo(f"The PIN was not mailed ({reason}); hand it to {issued.email}.")


@voicemail_group.command("disable")
@click.argument("email")
@click.pass_obj
def disable_command(state: CliState, email):
    """Remove the mailbox of EMAIL (their voice messages stay)."""
    from ..voicemail import disable_mailbox

    state.app(load_plugins=False)
    disable_mailbox(email)
    click.echo(f"voice mailbox of {email} disabled")


@voicemail_group.command("unlock")
@click.argument("email")
@click.pass_obj
def unlock_command(state: CliState, email):
    """Unlock the mailbox of EMAIL after too many wrong PINs."""
    from ..voicemail import unlock_mailbox

    state.app(load_plugins=False)
    unlock_mailbox(email)
    click.echo(f"voice mailbox of {email} unlocked")


@voicemail_group.command("set")
@click.argument("email")
@click.option(
    "--trust-own-numbers/--no-trust-own-numbers",
    default=None,
    help="Whether the user's own numbers log in without a PIN.",
)
@click.pass_obj
def set_command(state: CliState, email, trust_own_numbers):
    """Change the options of the mailbox of EMAIL."""
    from ..voicemail import set_trust_own_numbers

    if trust_own_numbers is None:
        raise click.UsageError("nothing to set: pass --[no-]trust-own-numbers")
    state.app(load_plugins=False)
    set_trust_own_numbers(email, trust_own_numbers)
    answer = "yes" if trust_own_numbers else "no"
    click.echo(f"voice mailbox of {email}: trust own numbers = {answer}")


@voicemail_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def status_command(state: CliState, as_json):
    """List every mailbox (never a PIN)."""
    from ..voicemail import list_mailboxes

    state.app(load_plugins=False)
    mailboxes = list_mailboxes()
    if as_json:
        echo_json(mailboxes)
        return
    for box in mailboxes:
        click.echo(_status_line(box))


def _status_line(box: dict) -> str:
    flags = ["locked" if box["locked"] else "open"]
    if box["trust_own_numbers"]:
        flags.append("trusts own numbers")
    if not box["active"]:
        flags.append("user disabled")
    return (
        f"{box['number']:<16} {box['email']}  {', '.join(flags)}  "
        f"wrong PINs {box['failures']}"
    )


@voicemail_group.command("login")
@click.argument("number")
@click.option("--pin", envvar="UMS_PIN", default=None, help=PIN_HELP)
@click.option("--from", "caller", default=None, help="The caller's number.")
@click.pass_obj
def login_command(state: CliState, number, pin, caller):
    """Check a caller's login to the mailbox at NUMBER (exit 0 ok, 1 refused)."""
    from ..voicemail import check_login

    result = check_login(state.app(load_plugins=False), number, pin, caller)
    click.echo(result.describe())
    if not result.ok:
        sys.exit(1)


@voicemail_group.command("messages")
@click.argument("number")
@click.option("--pin", envvar="UMS_PIN", default=None, help=PIN_HELP)
@click.option("--from", "caller", default=None, help="The caller's number.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def messages_command(state: CliState, number, pin, caller, as_json):
    """List the voice messages of the mailbox at NUMBER (remote inquiry)."""
    from ..voicemail import inquire_messages

    inquiry = inquire_messages(state.app(load_plugins=False), number, pin, caller)
    if not inquiry.login.ok:
        click.echo(inquiry.login.describe())
        sys.exit(1)
    if as_json:
        echo_json(inquiry.messages)
        return
    for message in inquiry.messages:
        click.echo(_message_line(message))


def _message_line(message: dict) -> str:
    caller = message["caller"] or "withheld"
    duration = f"{message['duration']:.1f}s" if message["duration"] else "-"
    return (
        f"{message['id']:>6}  {message['received_at']}  {caller:<16} "
        f"{duration:>7}  {message['content_path']}"
    )
