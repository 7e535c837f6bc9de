"""Read the ``msgNNNN.txt`` file Asterisk writes beside each voice message.

The file is the ``[message]`` section of an Asterisk configuration file, one
``key=value`` per line: ``callerid="Name" <number>``, ``origtime`` (seconds
since 1970), ``origdate`` (``Mon Aug 19 10:49:28 PM UTC 2024``), ``duration``,
``origmailbox``, ``context`` (the dialplan context of the call), ``msg_id``.
Anything that would let the file say more than one value per key (a CR or LF
inside a value, a repeated key, a line outside the section) is refused.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
import unicodedata

import attrs

from ums_core.errors import UmsError

MAX_INFO_BYTES = 64 * 1024
WITHHELD = {"", "unknown", "<unknown>"}
QUOTED_CALLER = re.compile(r'"((?:[^"\\]|\\.)*)"\s*<([^<>]*)>')
PLAIN_CALLER = re.compile(r"([^\"<>]*?)\s*<([^<>]*)>")
NUMBER_ONLY = re.compile(r"[+0-9][0-9 ()./*#-]*")
MSG_ID = re.compile(r"[A-Za-z0-9._:-]{1,80}")
ORIGDATE = re.compile(
    r"[A-Za-z]{3} +([A-Za-z]{3}) +(\d{1,2}) +(\d{1,2}):(\d{2}):(\d{2})"
    r"(?: *([AaPp][Mm]))?(?: +([A-Za-z][A-Za-z0-9+-]*))? +(\d{4})"
)
MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()
UTC_NAMES = {"utc", "gmt", "z", "ut"}


class InfoError(UmsError):
    """A message file that cannot be read safely."""


@attrs.frozen
class VoicemailInfo:
    """What the message file says about one voice message.

    ``received_at`` is aware (UTC) when it came from ``origtime`` or a UTC
    ``origdate``, naive otherwise (intake reads it in the instance's zone).
    """

    caller_name: str
    caller_number: str | None
    received_at: dt.datetime
    origtime: str = ""
    duration: int | None = None
    origmailbox: str = ""
    context: str = ""
    msg_id: str = ""


def read_info(path: str) -> VoicemailInfo:
    """Return what the message file at PATH says; refuse a hostile one."""
    fields = parse_fields(read_text(path))
    name, number = parse_callerid(require(fields, "callerid"))
    received_at, origtime = parse_received_at(fields)
    return VoicemailInfo(
        caller_name=name,
        caller_number=number,
        received_at=received_at,
        origtime=origtime,
        duration=parse_duration(fields.get("duration", "")),
        origmailbox=fields.get("origmailbox", ""),
        context=fields.get("context", ""),
        msg_id=parse_msg_id(fields.get("msg_id", "")),
    )


def read_text(path: str) -> str:
    """Return the text of the message file at PATH (UTF-8, else Latin-1)."""
    info = os.lstat(path)
    if not stat.S_ISREG(info.st_mode):
        raise InfoError(f"{os.path.basename(path)} is not a regular file")
    with open(path, "rb") as handle:
        data = handle.read(MAX_INFO_BYTES + 1)
    if len(data) > MAX_INFO_BYTES:
        raise InfoError(
            f"{os.path.basename(path)} is larger than {MAX_INFO_BYTES // 1024} KiB; "
            "Asterisk writes a few hundred bytes"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def parse_fields(text: str) -> dict[str, str]:
    """Return the keys of the ``[message]`` section of TEXT."""
    fields: dict[str, str] = {}
    section = None
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        check_line(number, line)
        stripped = line.strip()
        if not stripped or stripped.startswith(";"):
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1].strip().lower()
            continue
        if section is None:
            raise InfoError(f"line {number} comes before the [message] section")
        if section == "message":
            add_field(fields, number, stripped)
    if section is None:
        raise InfoError("it has no [message] section")
    return fields


def check_line(number: int, line: str) -> None:
    """Refuse LINE when it holds a control character (a CR, a NUL, ...)."""
    for char in line:
        if char != "\t" and unicodedata.category(char) == "Cc":
            shown = {"\r": "CR", "\0": "NUL"}.get(char, f"U+{ord(char):04X}")
            raise InfoError(f"line {number} has a control character ({shown})")


def add_field(fields: dict[str, str], number: int, line: str) -> None:
    """Add the ``key=value`` LINE to FIELDS; a repeated key is refused."""
    key, sign, value = line.partition("=")
    key = key.strip().lower()
    if not sign or not key:
        raise InfoError(f"line {number} is not key=value")
    if key in fields:
        raise InfoError(f"{key} appears twice (again on line {number})")
    fields[key] = value.strip()


def require(fields: dict[str, str], key: str) -> str:
    """Return the value of KEY; refuse a file without it."""
    if key not in fields:
        raise InfoError(f"{key} is missing")
    return fields[key]


def parse_callerid(text: str) -> tuple[str, str | None]:
    """Return (name, number) from an Asterisk caller id; None for withheld."""
    text = text.strip()
    if text.lower() in WITHHELD:
        return "", None
    quoted = QUOTED_CALLER.fullmatch(text)
    if quoted:
        name = re.sub(r"\\(.)", r"\1", quoted[1])
        return clean_name(name), clean_number(quoted[2])
    plain = PLAIN_CALLER.fullmatch(text)
    if plain:
        return clean_name(plain[1]), clean_number(plain[2])
    if any(char in text for char in '"<>'):
        raise InfoError(f"callerid {text[:80]!r} is malformed")
    if NUMBER_ONLY.fullmatch(text):
        return "", clean_number(text)
    return clean_name(text), None


def clean_name(name: str) -> str:
    """Return NAME trimmed; Asterisk's "Unknown" means no name."""
    name = name.strip()
    return "" if name.lower() in WITHHELD else name


def clean_number(number: str) -> str | None:
    """Return NUMBER trimmed, or None when it is empty or "Unknown"."""
    number = number.strip()
    return None if number.lower() in WITHHELD else number


def parse_received_at(fields: dict[str, str]) -> tuple[dt.datetime, str]:
    """Return the time the message was left and the raw origtime.

    ``origtime`` wins; ``origdate`` is read only when origtime is absent.
    """
    if "origtime" in fields:
        return parse_origtime(fields["origtime"]), fields["origtime"]
    if "origdate" in fields:
        return parse_origdate(fields["origdate"]), ""
    raise InfoError("it has neither origtime nor origdate")


def parse_origtime(text: str) -> dt.datetime:
    """Return the UTC time of an origtime (whole seconds since 1970)."""
    if not re.fullmatch(r"\d{1,12}", text):
        raise InfoError(f"origtime {text[:40]!r} is not a time in seconds since 1970")
    try:
        return dt.datetime.fromtimestamp(int(text), dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise InfoError(f"origtime {text!r} is out of range") from None


def parse_origdate(text: str) -> dt.datetime:
    """Return the time of an origdate such as ``Mon Aug 19 10:49:28 PM UTC 2024``."""
    match = ORIGDATE.fullmatch(text.strip())
    month = match[1].lower() if match else ""
    if not match or month not in MONTHS:
        raise InfoError(f"origdate {text[:60]!r} is not a date Asterisk writes")
    year, day, minute, second = (int(match[i]) for i in (8, 2, 4, 5))
    hour = int(match[3])
    if match[6] and not 1 <= hour <= 12:
        raise InfoError(f"origdate {text[:60]!r} has the hour {hour} with AM/PM")
    if match[6]:
        hour = hour % 12 + (12 if match[6].lower() == "pm" else 0)
    try:
        when = dt.datetime(year, MONTHS.index(month) + 1, day, hour, minute, second)
    except ValueError as exc:
        raise InfoError(f"origdate {text[:60]!r} is not a valid date: {exc}") from None
    zone = (match[7] or "").lower()
    return when.replace(tzinfo=dt.UTC) if zone in UTC_NAMES else when


def parse_duration(text: str) -> int | None:
    """Return the duration in whole seconds, or None when it is not given."""
    if text == "":
        return None
    if not re.fullmatch(r"\d{1,7}", text):
        raise InfoError(f"duration {text[:40]!r} is not a whole number of seconds")
    return int(text)


def parse_msg_id(text: str) -> str:
    """Return the msg_id, or '' when it is not given; refuse a strange one."""
    if text and not MSG_ID.fullmatch(text):
        raise InfoError(f"msg_id {text[:40]!r} is not an Asterisk message id")
    return text
