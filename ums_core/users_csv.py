"""Users to and from CSV files (``ums users import`` / ``ums users export``).

The columns, named in a header row (any order, any case)::

    email,name,language,active,fax,voice,sms

- ``email``: required; stored in lower case; once per file.
- ``name``: display name; line breaks and control characters become spaces.
- ``language``: ``en`` or ``de``; empty means the configured ``language``.
- ``active``: ``true`` or ``false`` (also yes/no, on/off, 1/0); empty means true.
- ``fax``, ``voice``, ``sms``: zero or more numbers separated by ``;``, written
  as people write them (``089 123456; +49 89 123457``); stored and exported
  in E.164.

The file is UTF-8 (a BOM is fine), with ``,`` between cells or ``;`` as German
spreadsheets write it (the header tells which); CR/LF or LF line ends. Rows
whose cells are all empty are ignored. Row numbers count as a spreadsheet
shows them: the header is row 1.

An import is all or nothing: every row is checked first, against the file and
the database, and every bad row is reported; one bad row and nothing changes,
unless ``skip_bad``, which imports the good rows and reports the others. A user
already in the database is a bad row unless ``update``: then the row replaces
the user's name, language, active flag and numbers; their password stays.
Users not in the file are left alone. Two active users cannot own the same
number, within the file or with the database.

An export writes every user, disabled ones too, and never a password. It
defuses spreadsheet formulas: a cell that starts with ``= + - @``, a tab, a CR
or ``'`` gets a leading ``'`` (so numbers appear as ``'+4989123456``), and an
import strips that ``'`` again.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import logging
import os
import tempfile
from collections.abc import Callable, Iterable

import attrs

from . import db
from .config import parse_bool
from .errors import UmsError
from .numbers import SiteRules, normalize_number
from .users import NUMBER_KINDS, clean_name, list_users, normalize_email

log = logging.getLogger(__name__)

COLUMNS = ("email", "name", "language", "active", "fax", "voice", "sms")
LANGUAGES = ("en", "de")
GUARDED_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")
FORMAT_HINT = "'ums users export FILE' writes a file in the expected format"


@attrs.frozen(order=True)
class RowError:
    """Why row ROW_NUMBER of a file cannot be imported."""

    row_number: int
    message: str

    def __str__(self) -> str:
        return f"row {self.row_number}: {self.message}"


@attrs.frozen
class UserRow:
    """One user as a row of the file gives it, checked and normalised."""

    row_number: int
    email: str
    name: str = ""
    language: str = "en"
    active: bool = True
    numbers: tuple[tuple[str, str], ...] = ()

    @property
    def e164s(self) -> set[str]:
        """Return the numbers of the row, whatever their kind."""
        return {e164 for _, e164 in self.numbers}


@attrs.frozen
class UserTable:
    """What a file holds: the rows that read well and the bad ones."""

    rows: tuple[UserRow, ...]
    errors: tuple[RowError, ...]


@attrs.frozen
class ImportReport:
    """What an import did, or with ``dry_run`` would do."""

    added: tuple[str, ...]
    updated: tuple[str, ...]
    skipped: tuple[RowError, ...]
    dry_run: bool = False


class BadRowsError(UmsError):
    """Rows that stop an import; nothing was changed."""

    def __init__(self, errors: Iterable[RowError]):
        self.errors = tuple(sorted(errors))
        count = len(self.errors)
        super().__init__(
            f"{count} bad row{'s' if count != 1 else ''}; nothing was imported",
            hint="fix them, or pass --skip-bad to import the good rows",
        )


def defuse_cell(text: str) -> str:
    """Return TEXT so that a spreadsheet shows it and never runs it."""
    return "'" + text if text.startswith(GUARDED_STARTS) else text


def restore_cell(text: str) -> str:
    """Return TEXT without the ``'`` that ``defuse_cell`` put in front."""
    if text.startswith("'") and text[1:].startswith(GUARDED_STARTS):
        return text[1:]
    return text


def read_user_rows(path: str, rules: SiteRules, language: str = "en") -> UserTable:
    """Read and check the users in the CSV file PATH, collecting every bad row.

    A file that is no UTF-8 CSV or has a wrong header raises UmsError; bad rows
    are collected. Conflicts with the database are checked by ``import_users``.
    """
    records = _read_records(path)
    columns = _read_header(records[0] if records else [], path)
    rows: list[UserRow] = []
    errors: list[RowError] = []
    for row_number, cells in enumerate(records[1:], start=2):
        if all(map(_is_blank, cells)):
            continue
        parsed = _parse_row(row_number, columns, cells, rules, language)
        (errors if isinstance(parsed, RowError) else rows).append(parsed)
    return UserTable(tuple(rows), tuple(errors))


def _read_records(path: str) -> list[list[str]]:
    text = _read_text(path)
    first_line = text.partition("\n")[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        return list(reader)
    except csv.Error as exc:
        raise UmsError(
            f"{path}: line {reader.line_num} is not CSV: {exc}", hint=FORMAT_HINT
        )


def _read_text(path: str) -> str:
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except OSError as exc:
        raise UmsError(f"cannot read {path}: {exc.strerror}")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]  # so the byte offsets below are right
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UmsError(
            f"{path} is not UTF-8 (byte {data[exc.start]:#04x} on line {line}); "
            "nothing was imported",
            hint="save it as 'CSV UTF-8' or convert it, e.g. iconv -f latin1 -t utf-8",
        )


def _read_header(cells: list[str], path: str) -> tuple[str, ...]:
    names = [cell.strip().lower() for cell in cells]
    while names and not names[-1]:
        names.pop()
    missing = [name for name in COLUMNS if name not in names]
    unknown = [name for name in names if name not in COLUMNS]
    twice = sorted({name for name in names if names.count(name) > 1})
    groups = {"missing": missing, "unknown": unknown, "twice": twice}
    found = "; ".join(f"{k}: {', '.join(v)}" for k, v in groups.items() if v)
    if found:
        raise UmsError(
            f"{path}: row 1 must name the columns {','.join(COLUMNS)} ({found})",
            hint=FORMAT_HINT,
        )
    return tuple(names)


def _parse_row(
    row_number: int,
    columns: tuple[str, ...],
    cells: list[str],
    rules: SiteRules,
    language: str,
) -> UserRow | RowError:
    filled = len(cells) - len(list(itertools.takewhile(_is_blank, cells[::-1])))
    if len(cells) < len(columns) or filled > len(columns):
        count = len(cells) if len(cells) < len(columns) else filled
        return RowError(row_number, f"{count} cells, the header has {len(columns)}")
    values = dict(zip(columns, (restore_cell(c.strip()) for c in cells), strict=False))
    problems: list[str] = []
    email = _attempt(problems, _parse_email, values["email"])
    chosen = _attempt(problems, _parse_language, values["language"], language)
    active = _attempt(problems, _parse_active, values["active"])
    numbers = _parse_numbers(problems, values, rules)
    if problems:
        return RowError(row_number, "; ".join(problems))
    name = clean_name(values["name"])
    return UserRow(row_number, email, name, chosen, active, numbers)


def _attempt(problems: list[str], parse: Callable, *args):
    """Return what PARSE gives for ARGS; on UmsError note it in PROBLEMS."""
    try:
        return parse(*args)
    except UmsError as exc:
        problems.append(exc.message)
        return None


def _is_blank(cell: str) -> bool:
    return not cell.strip()


def _parse_email(text: str) -> str:
    if not text:
        raise UmsError("no e-mail address")
    return normalize_email(text)


def _parse_language(text: str, default: str) -> str:
    value = text.lower() or default
    if value not in LANGUAGES:
        raise UmsError(f"unknown language {text!r} (expected {' or '.join(LANGUAGES)})")
    return value


def _parse_active(text: str) -> bool:
    try:
        return parse_bool(text) if text else True
    except ValueError:
        raise UmsError(f"active must be true or false, not {text!r}")


def _parse_numbers(
    problems: list[str], values: dict[str, str], rules: SiteRules
) -> tuple[tuple[str, str], ...]:
    owned: list[tuple[str, str]] = []
    for kind in NUMBER_KINDS:
        for text in filter(None, (part.strip() for part in values[kind].split(";"))):
            try:
                e164 = normalize_number(text, rules)
            except UmsError as exc:
                problems.append(f"{kind} {exc.message.rstrip('.')}")
                continue
            if (kind, e164) not in owned:
                owned.append((kind, e164))
    return tuple(owned)


def import_users(
    table: UserTable,
    update: bool = False,
    skip_bad: bool = False,
    dry_run: bool = False,
    on_row: Callable[[UserRow], None] | None = None,
) -> ImportReport:
    """Add (and with UPDATE replace) the users of TABLE in one transaction.

    Raise BadRowsError, changing nothing, when a row is bad and not SKIP_BAD.
    With DRY_RUN, check everything and report what would change, writing
    nothing. ON_ROW is called after each row is written.
    """
    transaction = db.database.atomic() if dry_run else db.write_transaction()
    with transaction:
        existing = {user.email: user for user in db.User.select()}
        conflicts = _find_conflicts(table.rows, existing, update, skip_bad)
        errors = sorted(table.errors + conflicts)
        if errors and not skip_bad:
            raise BadRowsError(errors)
        bad = {error.row_number for error in errors}
        rows = [row for row in table.rows if row.row_number not in bad]
        if not dry_run:
            _write_rows(rows, existing, on_row)
    report = _report(rows, existing, errors, dry_run)
    if not dry_run:
        log.info(
            "users imported: %d new, %d updated, %d rows skipped",
            len(report.added),
            len(report.updated),
            len(report.skipped),
        )
    return report


def _find_conflicts(
    rows: Iterable[UserRow], existing: dict, update: bool, skip_bad: bool
) -> tuple[RowError, ...]:
    """Return the rows that clash with another row or with the database.

    With SKIP_BAD a skipped row keeps its user's numbers in the database, which
    may make another row bad in turn: repeat until no new row is found bad.
    """
    bad: dict[int, RowError] = {}
    while True:
        remaining = [row for row in rows if row.row_number not in bad]
        found = _check_rules(remaining, existing, update, skip_bad)
        bad.update((error.row_number, error) for error in found)
        if not found or not skip_bad:
            return tuple(bad.values())


def _check_rules(
    rows: list[UserRow], existing: dict, update: bool, skip_bad: bool
) -> list[RowError]:
    replaced = ({row.email for row in rows} & set(existing)) if update else set()
    owners: dict[str, str | int] = _find_number_owners(exclude=replaced)
    emails: dict[str, int] = {}
    errors: list[RowError] = []
    for row in rows:
        problems = _check_row(row, emails, owners, existing, update)
        emails.setdefault(row.email, row.row_number)
        if problems:
            errors.append(RowError(row.row_number, "; ".join(problems)))
        if row.active and not (problems and skip_bad):
            for e164 in row.e164s:
                owners.setdefault(e164, row.row_number)
    return errors


def _check_row(
    row: UserRow, emails: dict, owners: dict, existing: dict, update: bool
) -> list[str]:
    problems = []
    if row.email in emails:
        problems.append(f"{row.email} is already in row {emails[row.email]}")
    elif row.email in existing and not update:
        problems.append(f"user {row.email} already exists (--update replaces it)")
    for e164 in sorted(row.e164s) if row.active else ():
        owner = owners.get(e164, row.row_number)
        if isinstance(owner, str):
            problems.append(f"{e164} already belongs to {owner}")
        elif owner != row.row_number:
            problems.append(f"{e164} is already in row {owner}")
    return problems


def _find_number_owners(exclude: set[str]) -> dict[str, str | int]:
    """Return {E.164: e-mail} for the active users not in EXCLUDE."""
    query = (
        db.Number.select(db.Number.e164, db.User.email)
        .join(db.User)
        .where(db.User.active == True)  # noqa: E712
        .tuples()
    )
    return {e164: email for e164, email in query if email not in exclude}


def _write_rows(
    rows: list[UserRow], existing: dict, on_row: Callable | None = None
) -> None:
    for row in rows:
        fields = {"name": row.name, "language": row.language, "active": row.active}
        user = existing.get(row.email)
        if user is None:
            user = db.User.create(email=row.email, **fields)
        else:
            db.User.update(**fields).where(db.User.id == user.id).execute()
            db.Number.delete().where(db.Number.user == user.id).execute()
        if row.numbers:
            numbers = [{"user": user.id, "kind": k, "e164": e} for k, e in row.numbers]
            db.Number.insert_many(numbers).execute()
        if on_row is not None:
            on_row(row)


def _report(rows, existing, errors, dry_run) -> ImportReport:
    added = tuple(row.email for row in rows if row.email not in existing)
    updated = tuple(row.email for row in rows if row.email in existing)
    return ImportReport(added, updated, tuple(errors), dry_run)


def _refuse_special(path: str) -> None:
    import stat

    if os.path.lexists(path) and not stat.S_ISREG(os.lstat(path).st_mode):
        raise UmsError(f"{path} exists and is not a regular file; choose a file")


def export_users(path: str, overwrite: bool = False) -> int:
    """Write every user to the CSV file PATH (never a password); return how many.

    Refuse to replace an existing PATH unless OVERWRITE. The file is owner-only.
    """
    _refuse_special(path)
    users = list_users()
    _write_private_file(path, _format_csv(users), overwrite)
    log.info("%d users exported to %s", len(users), path)
    return len(users)


def _format_csv(users) -> str:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for user in users:
        numbers = {
            kind: "; ".join(e164 for k, e164 in user.numbers if k == kind)
            for kind in NUMBER_KINDS
        }
        active = "true" if user.active else "false"
        cells = [user.email, user.name, user.language, active]
        cells += [numbers[kind] for kind in NUMBER_KINDS]
        writer.writerow([defuse_cell(cell) for cell in cells])
    return out.getvalue()


def _write_private_file(path: str, text: str, overwrite: bool) -> None:
    fd, target = _create_private_file(path, overwrite)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
        if target != path:
            os.replace(target, path)
    except OSError as exc:
        os.unlink(target)
        raise UmsError(f"cannot write {path}: {exc.strerror}")


def _create_private_file(path: str, overwrite: bool) -> tuple[int, str]:
    """Open PATH, or with OVERWRITE a temporary file beside it, owner-only."""
    try:
        if overwrite:
            folder = os.path.dirname(os.path.abspath(path))
            return tempfile.mkstemp(prefix=".ums-export-", suffix=".csv", dir=folder)
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), path
    except FileExistsError:
        raise UmsError(f"{path} already exists", hint="pass --force to overwrite it")
    except OSError as exc:
        raise UmsError(f"cannot write {path}: {exc.strerror}")
