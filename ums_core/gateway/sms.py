"""Turn the body of an e-mail into SMS text and plan how it is sent.

An SMS carries 160 septets of the GSM 03.38 default alphabet (3GPP TS 23.038) or
70 UTF-16 code units (UCS-2) when a character is not in that alphabet. A longer
text is sent as concatenated parts; the user data header takes room, leaving 153
septets or 67 code units a part. An extension character (``€``, ``[`` ...) is an
escape septet and a character septet, and a character outside the Basic
Multilingual Plane (most emoji) is a surrogate pair: neither is ever cut in two,
so it moves whole to the next part.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

import attrs

GSM7_BASIC = (
    "@\u00a3$\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\n\u00d8\u00f8\r\u00c5\u00e5"
    "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\x1b"
    "\u00c6\u00e6\u00df\u00c9"
    " !\"#\u00a4%&'()*+,-./"
    "0123456789:;<=>?"
    "\u00a1ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZ\u00c4\u00d6\u00d1\u00dc\u00a7"
    "\u00bfabcdefghijklmno"
    "pqrstuvwxyz\u00e4\u00f6\u00f1\u00fc\u00e0"
)
GSM7_EXTENSION = "\f^{}\\[~]|\u20ac"

SINGLE_LIMITS = {"gsm7": 160, "ucs2": 70}
PART_LIMITS = {"gsm7": 153, "ucs2": 67}

# The escape code is in the table, but on its own it would swallow the next septet.
_GSM7_SEPTETS = {
    **{char: 1 for char in GSM7_BASIC if char != "\x1b"},
    **{char: 2 for char in GSM7_EXTENSION},
}
_SIGNATURE = re.compile(r"^-- $", re.MULTILINE)
_BLANK_RUN = re.compile(r"\n{4,}")


@attrs.frozen
class SmsPlan:
    """How one SMS text is encoded and split into parts."""

    alphabet: str
    units: int
    segments: int
    parts: tuple[str, ...]


def sms_text_from_body(text: str) -> str:
    """Return the SMS text for the plain-text mail body TEXT.

    Line ends become "\\n"; the signature, from a line that is exactly "-- "
    on (the RFC 3676 separator; a bare "--" may be content), is cut; other
    control characters are dropped; trailing white space is stripped from each
    line; runs of three or more blank lines become two; the ends are stripped.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(c for c in text if c == "\n" or unicodedata.category(c) != "Cc")
    signature = _SIGNATURE.search(text)
    if signature:
        text = text[: signature.start()]
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _BLANK_RUN.sub("\n\n\n", text).strip()


def plan_sms(text: str) -> SmsPlan:
    """Return the alphabet, size and parts in which TEXT is sent as an SMS."""
    if all(char in _GSM7_SEPTETS for char in text):
        alphabet, measure = "gsm7", _count_septets
    else:
        alphabet, measure = "ucs2", _count_utf16_units
    units = sum(measure(char) for char in text)
    if units <= SINGLE_LIMITS[alphabet]:
        parts = (text,)
    else:
        parts = _split_parts(text, measure, PART_LIMITS[alphabet])
    return SmsPlan(alphabet, units, len(parts), parts)


def _count_septets(char: str) -> int:
    """Return the septets CHAR takes in GSM-7: 2 for an extension character."""
    return _GSM7_SEPTETS[char]


def _count_utf16_units(char: str) -> int:
    """Return the UTF-16 code units CHAR takes: 2 outside the BMP."""
    return 2 if ord(char) > 0xFFFF else 1


def _split_parts(
    text: str, measure: Callable[[str], int], limit: int
) -> tuple[str, ...]:
    """Return TEXT cut into parts of at most LIMIT units, no character split."""
    parts: list[str] = []
    start = used = 0
    for index, char in enumerate(text):
        size = measure(char)
        if used + size > limit:
            parts.append(text[start:index])
            start, used = index, 0
        used += size
    parts.append(text[start:])
    return tuple(parts)
