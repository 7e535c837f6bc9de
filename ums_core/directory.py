"""Sender identification: find a caller's number in an address book.

The address book is a file in ``directory.file`` (relative paths are relative
to the instance folder), either CSV or vCard 3.0/4.0:

- CSV: UTF-8 (a BOM is fine), comma- or semicolon-separated, with the header
  ``name,company,phone,fax,other_fax,mobile,home,other``. Columns may come in
  any order, unknown ones are ignored, and ``other fax`` or ``Other-Fax`` mean
  ``other_fax``.
- vCard: every card's FN (else N), the first part of ORG, and every TEL
  whatever its TYPE (``TEL;TYPE=fax:``, ``TEL;type=WORK,FAX:``, ``item1.TEL:``,
  ``TEL;VALUE=uri:tel:+49…``). Folded lines are unfolded. A file is read as
  vCard when it is named ``*.vcf`` / ``*.vcard`` or starts with BEGIN:VCARD.

Every number is normalised to E.164 with the site rules, so ``030 555010`` and
``+49 (0)30 555010`` both find the caller +4930555010. A cell or TEL that is no
phone number is skipped with one warning line naming the line of the file; an
entry without name and company is skipped too. Identical entries count once.

The file is read again whenever its modification time or size changes. A file
that is missing or unreadable is logged once per change, and lookups answer
None until it is fixed: a broken address book never stops a delivery.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import threading
import unicodedata

import attrs

from .errors import NumberError, UmsError
from .hookspecs import hookimpl
from .model import Contact
from .numbers import SiteRules, normalize_number

log = logging.getLogger(__name__)

CSV_COLUMNS = ("name", "company", "phone", "fax", "other_fax", "mobile", "home")
CSV_COLUMNS += ("other",)
NUMBER_COLUMNS = CSV_COLUMNS[2:]
VCARD_SUFFIXES = (".vcf", ".vcard")
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_NAME_CHARS = 200
HINT = (
    "directory.file names a CSV file with the header "
    + ",".join(CSV_COLUMNS)
    + " or a vCard file; relative paths start at the instance folder"
)

_cache: dict[str, tuple[tuple, Directory | UmsError]] = {}
_cache_lock = threading.Lock()


@attrs.frozen
class Entry:
    """One contact as written in the file, numbers not yet normalised."""

    line: int
    name: str
    company: str
    numbers: tuple[tuple[str, str], ...]  # (field, text as written)


@attrs.frozen
class Directory:
    """An address book read into an index from E.164 number to contacts."""

    path: str
    index: dict[str, list[Contact]]

    def lookup(self, e164: str, match: str = "unique") -> Contact | None:
        """Return the contact with number E164, by the MATCH rule, or None.

        ``first`` takes the first contact in file order when several have the
        number; ``unique`` (and anything else) answers only when one does.
        """
        found = self.index.get(e164, [])
        if not found or (match != "first" and len(found) > 1):
            return None
        return found[0]


def load_directory(path: str, rules: SiteRules) -> Directory:
    """Read the address book at PATH; raise UmsError when it cannot be used."""
    text = read_address_book(path)
    if is_vcard(path, text):
        entries = parse_vcards(text)
    else:
        entries = parse_csv(text, path)
    return Directory(path=path, index=index_entries(path, entries, rules))


def find_directory(path: str, rules: SiteRules) -> Directory | None:
    """Return the address book at PATH, read again when it changed, or None."""
    signature = stat_signature(path, rules)
    with _cache_lock:
        cached = _cache.get(path)
        if cached is None or cached[0] != signature:
            cached = (signature, load_or_report(path, rules))
            _cache[path] = cached
    result = cached[1]
    return result if isinstance(result, Directory) else None


def stat_signature(path: str, rules: SiteRules) -> tuple:
    """Return what identifies the current state of the file at PATH."""
    try:
        info = os.stat(path)
    except OSError as exc:
        return (path, None, exc.errno, rules)
    return (path, info.st_mtime_ns, info.st_size, rules)


def load_or_report(path: str, rules: SiteRules) -> Directory | UmsError:
    """Return the address book at PATH, or the error after logging it once."""
    try:
        directory = load_directory(path, rules)
    except UmsError as exc:
        log.error("sender identification is off until fixed: %s", exc)
        return exc
    log.info("address book %s read: %d numbers", path, len(directory.index))
    return directory


def clear_cache() -> None:
    """Forget every address book read so far."""
    with _cache_lock:
        _cache.clear()


def read_address_book(path: str) -> str:
    """Return the text of the file at PATH (UTF-8); raise UmsError otherwise."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise UmsError(f"the address book {path} does not exist", hint=HINT) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UmsError(f"cannot read the address book {path}: {reason}") from None
    if len(data) > MAX_FILE_BYTES:
        raise UmsError(f"the address book {path} is larger than 64 MiB")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UmsError(
            f"the address book {path} is not UTF-8 (byte {exc.start})",
            hint="save it as UTF-8",
        ) from None


def is_vcard(path: str, text: str) -> bool:
    """Return whether the address book at PATH with TEXT is a vCard file."""
    if path.lower().endswith(VCARD_SUFFIXES):
        return True
    return text.lstrip()[:11].upper() == "BEGIN:VCARD"


def parse_csv(text: str, path: str) -> list[Entry]:
    """Return the entries of a CSV address book."""
    first_line = text.partition("\n")[0]
    delimiter = ";" if ";" in first_line and "," not in first_line else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        columns = map_columns(next(reader, []), path)
        return [csv_entry(reader.line_num, row, columns) for row in reader if any(row)]
    except csv.Error as exc:
        raise UmsError(
            f"the address book {path} is not valid CSV at line {reader.line_num}: {exc}"
        ) from None


def map_columns(header: list[str], path: str) -> dict[str, int]:
    """Return the position of each known column in HEADER."""
    columns: dict[str, int] = {}
    for position, cell in enumerate(header):
        name = re.sub(r"[\s-]+", "_", cell.strip().lower())
        if name in CSV_COLUMNS:
            columns.setdefault(name, position)
    named = "name" in columns or "company" in columns
    if not named or not any(column in columns for column in NUMBER_COLUMNS):
        raise UmsError(
            f"the address book {path} has no header with a name or company column "
            "and a number column",
            hint=HINT,
        )
    return columns


def csv_entry(line: int, row: list[str], columns: dict[str, int]) -> Entry:
    """Return the entry of one CSV ROW that ends on LINE."""

    def cell(column: str) -> str:
        position = columns.get(column, len(row))
        return row[position].strip() if position < len(row) else ""

    numbers = tuple((column, cell(column)) for column in NUMBER_COLUMNS if cell(column))
    return Entry(line, clean_name(cell("name")), clean_name(cell("company")), numbers)


def parse_vcards(text: str) -> list[Entry]:
    """Return the entries of a vCard file, one per BEGIN:VCARD … END:VCARD."""
    entries = []
    card: dict | None = None
    for line, content in unfold_lines(text):
        name, value = split_content_line(content)
        if name == "BEGIN" and value.strip().upper() == "VCARD":
            card = {"line": line, "FN": "", "N": "", "ORG": "", "TEL": []}
        elif card is not None and name == "END":
            entries.append(vcard_entry(card))
            card = None
        elif card is not None and name == "TEL":
            card["TEL"].append(("TEL", value.strip()))
        elif card is not None and name in ("FN", "N", "ORG") and not card[name]:
            card[name] = value
    return entries


def unfold_lines(text: str) -> list[tuple[int, str]]:
    """Return the logical lines of TEXT with the number of their first line."""
    logical: list[tuple[int, str]] = []
    for number, line in enumerate(re.split(r"\r\n|\r|\n", text), start=1):
        if line[:1] in (" ", "\t") and logical:
            start, previous = logical[-1]
            logical[-1] = (start, previous + line[1:])
        elif line.strip():
            logical.append((number, line))
    return logical


def split_content_line(content: str) -> tuple[str, str]:
    """Return the property name (upper case, no group) and value of CONTENT."""
    quoted = False
    for position, char in enumerate(content):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            head, value = content[:position], content[position + 1 :]
            name = head.split(";", 1)[0].rpartition(".")[2]
            return name.strip().upper(), value
    return "", ""


def vcard_entry(card: dict) -> Entry:
    """Return the entry of one vCard read into the dict CARD."""
    name = unescape_value(card["FN"])
    if not name.strip() and card["N"]:
        family, given = (split_components(card["N"]) + ["", ""])[:2]
        name = f"{given} {family}"
    company = split_components(card["ORG"])[0] if card["ORG"] else ""
    return Entry(
        card["line"], clean_name(name), clean_name(company), tuple(card["TEL"])
    )


def split_components(value: str) -> list[str]:
    """Return the unescaped parts of a structured vCard VALUE (split at ';')."""
    return [unescape_value(part) for part in re.split(r"(?<!\\);", value)]


def unescape_value(value: str) -> str:
    """Return a vCard text VALUE with its backslash escapes resolved."""
    return re.sub(r"\\(.)", lambda m: " " if m[1] in "nN" else m[1], value)


def clean_name(text: str) -> str:
    """Return TEXT on one line without control characters, trimmed."""
    chars = [" " if unicodedata.category(c)[0] == "C" else c for c in text]
    return " ".join("".join(chars).split())[:MAX_NAME_CHARS]


def index_entries(
    path: str, entries: list[Entry], rules: SiteRules
) -> dict[str, list[Contact]]:
    """Return ENTRIES indexed by E.164 number, in file order."""
    index: dict[str, list[Contact]] = {}
    for entry in entries:
        numbers = normalize_entry_numbers(path, entry, rules)
        if not (entry.name or entry.company):
            if entry.numbers:
                log.warning("%s line %d: no name or company; skipped", path, entry.line)
            continue
        for number in numbers:
            contact = Contact(name=entry.name, company=entry.company, number=number)
            found = index.setdefault(number, [])
            if contact not in found:
                found.append(contact)
    return index


def normalize_entry_numbers(path: str, entry: Entry, rules: SiteRules) -> list[str]:
    """Return ENTRY's numbers in E.164; warn once about those that are none."""
    numbers, skipped = [], []
    for field, text in entry.numbers:
        try:
            number = normalize_number(text, rules)
        except NumberError:
            skipped.append(f"{field} {text[:40]!r}")
            continue
        if number not in numbers:
            numbers.append(number)
    if skipped:
        log.warning(
            "%s line %d: not a phone number, skipped: %s",
            path,
            entry.line,
            ", ".join(skipped),
        )
    return numbers


def directory_path(ctx) -> str:
    """Return the address book's path from directory.file, or '' when unset."""
    value = ctx.config.get("directory.file")
    if not value:
        return ""
    return os.path.join(ctx.home, os.path.expanduser(value))


class AddressBook:
    """Identify callers from the address book in directory.file (CSV or vCard)."""

    UMS_ROLE = "user_source"
    UMS_FEATURE = "sender_identification"

    @hookimpl(trylast=True)
    def ums_lookup_caller(self, number, ctx):
        config = ctx.config
        if config.get("mode") != "mailserver" or not config.get(
            "sender_identification"
        ):
            return None
        path = directory_path(ctx)
        if not path or not number:
            return None
        directory = find_directory(path, ctx.site_rules)
        if directory is None:
            return None
        return directory.lookup(number, config.get("directory.match"))
