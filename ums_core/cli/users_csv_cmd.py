"""``ums users import`` and ``ums users export``: users in CSV files."""

from __future__ import annotations

import contextlib
import sys

import click

from . import CliState


def stderr_is_terminal() -> bool:
    """Return whether stderr is a terminal (the progress bar shows only there)."""
    return sys.stderr.isatty()


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Check FILE and show what would change.")
@click.option("--skip-bad", is_flag=True, help="Import the good rows, list the bad.")
@click.option("--update", is_flag=True, help="Replace users that already exist.")
@click.pass_obj
def import_command(state: CliState, file, dry_run, skip_bad, update):
    """Import the users in the CSV FILE: all rows, or none if one is bad.

    \b
    Columns (header row, any order): email,name,language,active,fax,voice,sms
      language  en or de; empty: the configured language
      active    true or false; empty: true
      fax, voice, sms  numbers separated by ";"

    The file is UTF-8 (a BOM is fine), cells separated by "," or ";". Each bad
    row is reported with its row number (the header is row 1) and nothing is
    changed, unless --skip-bad. A user who exists already is a bad row, unless
    --update: then the row replaces their name, language, active flag and
    numbers. Users not in FILE stay as they are. Passwords are not in FILE.
    """
    from ..users_csv import BadRowsError, import_users, read_user_rows

    app = state.app(load_plugins=False)
    table = read_user_rows(file, app.site_rules, app.config.get("language"))
    try:
        with _progress(len(table.rows), hidden=dry_run) as on_row:
            report = import_users(
                table, update=update, skip_bad=skip_bad, dry_run=dry_run, on_row=on_row
            )
    except BadRowsError as exc:
        _echo_row_errors(exc.errors)
        raise
    _echo_row_errors(report.skipped)
    _echo_report(report)


@contextlib.contextmanager
def _progress(total: int, hidden: bool):
    """Yield a callback that advances a progress bar on stderr, or None."""
    if hidden or not stderr_is_terminal():
        yield None
        return
    with click.progressbar(length=total, label="importing", file=sys.stderr) as bar:
        yield lambda row: bar.update(1)


def _echo_row_errors(errors) -> None:
    for error in errors:
        click.echo(str(error), err=True)


def _echo_report(report) -> None:
    if report.dry_run:
        for email in report.added:
            click.echo(f"would add {email}")
        for email in report.updated:
            click.echo(f"would update {email}")
    count = len(report.added) + len(report.updated)
    summary = (
        f"{'would import' if report.dry_run else 'imported'} "
        f"{count} user{'' if count == 1 else 's'} "
        f"({len(report.added)} new, {len(report.updated)} updated), "
        f"{len(report.skipped)} skipped"
    )
    click.echo(summary + ("; dry run, nothing changed" if report.dry_run else ""))


@click.command("export")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@click.pass_obj
def export_command(state: CliState, file, force):
    """Write every user to the CSV FILE, in the columns import reads.

    Passwords are never written. A cell that starts with = + - @ (numbers
    too) gets a leading ' so a spreadsheet shows it instead of running it;
    import removes that ' again.
    """
    from ..users_csv import export_users

    state.app(load_plugins=False)
    count = export_users(file, overwrite=force)
    click.echo(f"exported {count} user{'' if count == 1 else 's'} to {file}")
