"""What HylaFAX records in the tags of a received fax (recvq(5)).

faxgetty writes the sender's TSI as the first line of ImageDescription and the
call identification (CallID1 = caller number, CallID2 = caller name, then what
the site's CallID settings capture) on the lines after it. DateTime is the
time of reception on the fax server's clock; Make and Model name the modem,
HostComputer the server.
"""

from __future__ import annotations

import datetime as dt
import struct
import warnings

import attrs
from PIL import Image

TAG_IMAGE_DESCRIPTION = 270
TAG_MAKE = 271
TAG_MODEL = 272
TAG_DATETIME = 306
TAG_HOST_COMPUTER = 316
UNKNOWN_TSI = ("<UNSPECIFIED>", "<unknown>")
EARLIEST_YEAR = 1990
READ_ERRORS = (
    OSError,
    ValueError,
    TypeError,
    SyntaxError,
    EOFError,
    KeyError,
    IndexError,
    struct.error,
    Image.DecompressionBombError,
)


@attrs.frozen
class RecvqTags:
    """The HylaFAX facts found in a recvq TIFF; empty where a tag is missing."""

    tsi: str = ""
    callids: tuple[str, ...] = ()
    received_at: dt.datetime | None = None
    modem: str = ""
    host: str = ""

    def find_callid(self, number: int) -> str:
        """Return CallID NUMBER (counted from 1), or ''."""
        if 0 < number <= len(self.callids):
            return self.callids[number - 1]
        return ""


def read_recvq_tags(path) -> RecvqTags:
    """Return the HylaFAX tags of the TIFF at PATH; nothing when it is unreadable.

    A file too broken to read its tags is refused later by intake, with the
    reason; here it just has no tags.
    """
    values = read_first_ifd(path)
    lines = read_text(values, TAG_IMAGE_DESCRIPTION).split("\n")
    tsi = lines[0].strip()
    make, model = read_text(values, TAG_MAKE), read_text(values, TAG_MODEL)
    return RecvqTags(
        tsi="" if tsi in UNKNOWN_TSI else tsi,
        callids=tuple(line.strip() for line in lines[1:]),
        received_at=parse_tiff_time(read_text(values, TAG_DATETIME)),
        modem=" ".join(filter(None, (make.strip(), model.strip()))),
        host=read_text(values, TAG_HOST_COMPUTER).strip(),
    )


def read_first_ifd(path) -> dict:
    """Return the tags of the first page of the TIFF at PATH, or {}."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with Image.open(path) as image:
                return {key: image.tag_v2.get(key) for key in image.tag_v2}
        except READ_ERRORS:
            return {}


def read_text(values: dict, tag: int) -> str:
    """Return the ASCII tag TAG as text, or ''."""
    value = values.get(tag)
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if isinstance(value, tuple):
        value = value[0] if value else ""
    return value.rstrip("\0") if isinstance(value, str) else ""


def parse_tiff_time(text: str) -> dt.datetime | None:
    """Return the local time in a TIFF DateTime ('YYYY:MM:DD HH:MM:SS'), or None.

    Times before 1990 or more than half a day ahead are a wrong clock, not a
    fax time; intake then takes the time of import.
    """
    try:
        when = dt.datetime.strptime(text.strip(), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    latest = dt.datetime.now() + dt.timedelta(hours=12)
    if when.year < EARLIEST_YEAR or when > latest:
        return None
    return when
