"""Plain values that travel between the core and its plugins.

They are attrs classes, validated at construction and independent of the
database: a plugin receives these, never a database row.
"""

from __future__ import annotations

import datetime as dt
import io

import attrs

KINDS = ("fax", "voice", "sms")
DIRECTIONS = ("inbound", "outbound")
LOCATIONS = ("local", "mailserver")
STATES = (
    "received",
    "held",
    "stored",
    "queued",
    "delivered",
    "sent",
    "rejected",
    "failed",
)
TRANSMIT_STATUSES = ("sent", "failed", "retry", "pending")
ROLES = (
    "delivery",
    "archive",
    "notice",
    "transport",
    "user_source",
    "intake",
    "converter",
    "extension",
)


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError("datetime must be timezone-aware")
    return value.astimezone(dt.UTC)


@attrs.frozen
class User:
    """A person who receives and sends messages."""

    email: str
    name: str = ""
    language: str = "en"
    active: bool = True
    numbers: tuple[tuple[str, str], ...] = ()  # (kind, E.164) pairs


@attrs.frozen
class IncomingMessage:
    """What the phone side hands to intake, before it is stored."""

    kind: str = attrs.field(validator=attrs.validators.in_(KINDS))
    called: str
    sender: str | None = None
    sender_name: str = ""
    station_id: str = ""
    received_at: dt.datetime | None = None
    text: str = ""
    content_path: str | None = None


@attrs.frozen
class Message:
    """A stored message as plugins see it.

    ``sender`` is E.164 or None when the caller withheld the number or it was
    unusable; ``sender_raw`` is what the phone side said, already cleaned of
    control characters. ``content_path`` is absolute, or None for an SMS.
    """

    id: int
    kind: str = attrs.field(validator=attrs.validators.in_(KINDS))
    direction: str = attrs.field(validator=attrs.validators.in_(DIRECTIONS))
    called: str
    sender: str | None
    sender_raw: str
    sender_name: str
    station_id: str
    received_at: dt.datetime = attrs.field(converter=_utc)
    recipient: str | None
    recipient_name: str
    recipient_language: str
    default_recipient: bool
    location: str | None
    state: str
    pages: int | None = None
    duration: float | None = None
    text: str = ""
    content_path: str | None = None
    content_type: str | None = None
    subject: str = ""
    segments: int | None = None
    attempts: int = 0
    remote_station: str = ""


@attrs.frozen
class Contact:
    """A directory entry found for a caller's number (sender identification)."""

    name: str
    company: str = ""
    number: str = ""

    @property
    def label(self) -> str:
        """Return the company, else the name; both when they differ."""
        if self.company and self.name and self.company != self.name:
            return f"{self.name} ({self.company})"
        return self.company or self.name


@attrs.frozen
class TransmitResult:
    """What the telephony side says about one outgoing message.

    ``status`` is ``sent``, ``failed`` (for good), ``retry`` (busy, no answer:
    try again later) or ``pending`` (handed over; ask again later).
    """

    status: str = attrs.field(validator=attrs.validators.in_(TRANSMIT_STATUSES))
    reason: str = ""
    pages: int | None = None
    duration: float | None = None
    attempts: int | None = None
    remote_station: str = ""


@attrs.frozen
class Mail:
    """An e-mail ready for the transport: envelope plus wire form (CRLF).

    The wire form is the file PATH when it is set (a queued e-mail: read it
    in pieces with :meth:`open`, it may be large), else the bytes DATA.
    """

    id: int
    sender: str
    recipients: tuple[str, ...]
    data: bytes = attrs.field(default=b"", repr=lambda d: f"<{len(d)} bytes>")
    message_id: str = ""
    message: int | None = None
    path: str | None = None

    def open(self):
        """Return a binary stream of the wire form."""
        if self.path is not None:
            return open(self.path, "rb")
        return io.BytesIO(self.data)

    def read_bytes(self) -> bytes:
        """Return the whole wire form (for small e-mails only)."""
        with self.open() as stream:
            return stream.read()


@attrs.frozen
class SendResult:
    """What a transport says about one e-mail.

    ``ok`` means the peer accepted it. Otherwise ``permanent`` tells a 5xx-like
    refusal (do not retry) from a temporary one (retry later).
    """

    ok: bool
    permanent: bool = False
    code: int | None = None
    detail: str = ""


@attrs.frozen
class StoreResult:
    """Where an archive plugin put a message."""

    plugin: str
    reference: str


@attrs.frozen
class PluginInfo:
    """One installed plugin as ``ums plugins list`` shows it."""

    name: str
    version: str
    role: str
    enabled: bool
    active: bool
    reason: str
    distribution: str = ""
    description: str = ""
