"""The smstools3 message file: header lines, one blank line, the text.

A header line is ``Key: value``. smsd writes received messages that way
(``From:``, ``From_TOA:``, ``From_SMSC:``, ``Sent:``, ``Received:``,
``Alphabet:``, ``UDH:`` ...), reads outgoing ones that have at least ``To:``
and a text, and adds ``Sent:`` / ``Message_id:`` or ``Failed:`` and an error
line when it moves a file into its sent or failed folder. smsd's own keys are
case-sensitive; ums reads them without regard to case and writes them as smsd
spells them.

``Alphabet:`` says how the body is encoded, and like smsd ums looks at its
first three letters: ``ISO`` / ``Latin`` / ``Ansi`` are ISO-8859-15 text;
``GSM`` is read as ISO-8859-15 too, because smsd has converted the GSM
alphabet before it writes the file; ``UCS2`` / ``Unicode`` / ``Chinese`` are
raw UCS-2 bytes (UTF-16 big-endian), ``UTF-8`` is UTF-8, and ``binary`` is
data, not text. A missing ``Alphabet:`` means ISO, as it does for smsd.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

import attrs

from ums_core.gateway.sms import plan_sms

MAX_HEADER_LINES = 100
REPORT_MARK = b"SMS STATUS REPORT"
_KEY = re.compile(r"([A-Za-z][A-Za-z0-9_-]{0,63}):[ \t]*(.*)")
_DIGITS = re.compile(r"[0-9]{3,20}")
_E164 = re.compile(r"\+[1-9][0-9]{3,17}")
_FOREIGN = (
    (b"\xfe\xff", "UTF-16 text with a byte order mark (gammu-smsd writes such files)"),
    (b"\xff\xfe", "UTF-16 text with a byte order mark (gammu-smsd writes such files)"),
    (b"AT+C", "a modem's AT command transcript (as in gammu's test dumps)"),
    (b"[SMSBACKUP", "a Gammu SMS backup file"),
    (b"; THIS FILE FORMAT WAS DESIGNED FOR GAMMU", "a Gammu SMS backup file"),
)
_TIME_FORMATS = ("%y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S")


class SmsFileError(Exception):
    """A file ums does not take; REASON says why in one line."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@attrs.frozen
class SmsFile:
    """One parsed message file: header values by lower-case key, the raw body."""

    headers: dict
    body: bytes

    def header(self, name: str) -> str:
        """Return the first value of header NAME, or ''."""
        values = self.headers.get(name.lower(), ())
        return values[0] if values else ""

    def count(self, name: str) -> int:
        """Return how often header NAME appears."""
        return len(self.headers.get(name.lower(), ()))


def parse_message_file(data: bytes) -> SmsFile:
    """Return the header and body of the smstools3 file DATA, or raise SmsFileError."""
    foreign = describe_foreign_format(data)
    if foreign:
        raise SmsFileError(f"{foreign}, not an smstools3 message file")
    headers: dict[str, list[str]] = {}
    position = 0
    for number in range(1, MAX_HEADER_LINES + 2):
        end = data.find(b"\n", position)
        if end < 0:
            raise SmsFileError("no blank line between the header and the text")
        line = data[position:end].removesuffix(b"\r")
        position = end + 1
        if not line:
            if number == 1:
                raise SmsFileError("the file starts with a blank line: no header")
            return SmsFile({k: tuple(v) for k, v in headers.items()}, data[position:])
        key, value = parse_header_line(line, number)
        headers.setdefault(key, []).append(value)
    raise SmsFileError(f"more than {MAX_HEADER_LINES} header lines")


def describe_foreign_format(data: bytes) -> str:
    """Return what other program's format DATA looks like, or ''."""
    head = data[:64].lstrip(b" \t\r\n").upper()
    for prefix, what in _FOREIGN:
        if head.startswith(prefix):
            return what
    return ""


def parse_header_line(line: bytes, number: int) -> tuple[str, str]:
    """Return the lower-case key and the value of header LINE (line NUMBER)."""
    text = decode_header(line)
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in text if c != "\t"):
        raise SmsFileError(f"header line {number} holds a control character")
    match = _KEY.fullmatch(text)
    if not match:
        raise SmsFileError(
            f"line {number} is no 'Key: value' header: not an smstools3 message file"
        )
    return match[1].lower(), match[2].strip()


def decode_header(line: bytes) -> str:
    """Return header LINE as text: UTF-8 when it is, else ISO-8859-15."""
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return line.decode("iso8859_15")


def read_alphabet(value: str) -> str:
    """Return iso, ucs2, utf8 or binary for the Alphabet header VALUE."""
    word = value.strip().lower()
    if not word:
        return "iso"
    if word.replace("-", "").replace("_", "").startswith("utf8"):
        return "utf8"
    kinds = {"iso": "iso", "lat": "iso", "ans": "iso", "gsm": "iso", "bin": "binary"}
    kinds.update({"ucs": "ucs2", "uni": "ucs2", "chi": "ucs2"})
    if word[:3] not in kinds:
        raise SmsFileError(f"unknown Alphabet: {value[:40]!r}")
    return kinds[word[:3]]


def decode_text(sms: SmsFile) -> str:
    """Return the text of SMS decoded by its Alphabet; refuse binary messages."""
    alphabet = read_alphabet(sms.header("alphabet"))
    if alphabet == "binary":
        raise SmsFileError("a binary message (Alphabet: binary): ums takes text only")
    if is_yes(sms.header("udh")) and not sms.body.strip():
        raise SmsFileError("binary data: a user data header (UDH) and no text")
    if alphabet == "ucs2":
        return decode_ucs2(sms.body)
    if alphabet == "utf8":
        return decode_utf8(sms.body)
    return sms.body.decode("iso8859_15")


def decode_ucs2(body: bytes) -> str:
    """Return raw UCS-2 (UTF-16BE) BODY as text; a lone final newline byte is cut."""
    if len(body) % 2 and body.endswith(b"\n"):
        body = body[:-1]
    if len(body) % 2:
        raise SmsFileError(f"the UCS-2 text has an odd number of bytes ({len(body)})")
    try:
        text = body.decode("utf-16-be")
    except UnicodeDecodeError as exc:
        raise SmsFileError(f"the UCS-2 text is broken at byte {exc.start}") from None
    return text.removeprefix("\ufeff")


def decode_utf8(body: bytes) -> str:
    """Return UTF-8 BODY as text."""
    try:
        return body.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise SmsFileError(f"the text is not UTF-8 (byte {exc.start})") from None


def is_yes(value: str) -> bool:
    """Return True for smsd's yes values (yes, true, on, 1)."""
    return value.strip().lower() in ("yes", "true", "on", "1")


def is_status_report(sms: SmsFile) -> bool:
    """Return True when SMS is a status report, not a message someone wrote."""
    first = sms.body.lstrip().split(b"\n", 1)[0].strip()
    if first.upper() == REPORT_MARK:
        return True
    return bool(sms.header("status")) and bool(
        sms.header("message_id") or sms.header("discharge_timestamp")
    )


def read_status_report(sms: SmsFile) -> dict[str, str]:
    """Return the fields of the status report SMS (headers and body lines)."""
    fields = {key: values[0] for key, values in sms.headers.items()}
    for raw in sms.body.split(b"\n")[1:]:
        match = _KEY.fullmatch(decode_header(raw.strip()))
        if match:
            fields[match[1].lower()] = match[2].strip()
    return fields


def international_number(value: str, toa: str = "") -> str:
    """Return VALUE (a From: or To: number) with '+' when smsd wrote it international.

    smsd writes international numbers as digits without '+'. A ``From_TOA:``
    that names another type of address (national, unknown) leaves VALUE as it
    is, and so does a sender name such as ``Vodafone``.
    """
    value = value.strip()
    if not _DIGITS.fullmatch(value):
        return value
    kind = toa.strip().lower()
    if kind and not (kind.startswith("91") or "international" in kind):
        return value
    return "+" + value


def smstools_number(e164: str) -> str:
    """Return E164 as smsd wants it in To:, the digits without '+'."""
    if not _E164.fullmatch(e164 or ""):
        raise SmsFileError(f"{e164!r} is not an international number smsd can send to")
    return e164[1:]


def digits_of(value: str) -> str:
    """Return only the digits of the number VALUE."""
    return "".join(c for c in value if c in "0123456789")


def encode_text(text: str) -> tuple[str, bytes]:
    """Return the Alphabet value and the body in which smsd is to send TEXT.

    GSM texts go as ISO-8859-15, which smsd converts to the GSM alphabet;
    texts that need UCS-2 (or hold GSM characters ISO-8859-15 lacks, such
    as Greek capitals) go as raw UTF-16 big-endian.
    """
    if plan_sms(text).alphabet == "gsm7":
        try:
            return "ISO", text.encode("iso8859_15")
        except UnicodeEncodeError:
            pass
    return "UCS2", text.encode("utf-16-be")


def build_outgoing_file(number: str, text: str, report: bool = False) -> bytes:
    """Return the outgoing smstools3 file that sends TEXT to NUMBER (digits)."""
    alphabet, body = encode_text(text)
    lines = [f"To: {number}", f"Alphabet: {alphabet}"]
    if report:
        lines.append("Report: yes")
    return ("\n".join(lines) + "\n\n").encode("ascii") + body


def parse_smsd_time(value: str) -> dt.datetime | None:
    """Return the local time smsd wrote (YY-MM-DD HH:MM:SS) without zone, or None."""
    for layout in _TIME_FORMATS:
        try:
            return dt.datetime.strptime(value.strip(), layout)
        except ValueError:
            continue
    return None
