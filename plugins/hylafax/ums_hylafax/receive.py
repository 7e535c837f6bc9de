"""Hand one fax HylaFAX received to intake: a recvq TIFF or an info file.

Every fax is committed with the source reference ``hylafax:<sha-256 of the
TIFF>``, so a file handed over twice (by FaxDispatch and by a later
``ums hylafax import`` of the same recvq) becomes one message. Nothing here
writes to, moves or deletes the file it reads.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat

import attrs

from ums_core.errors import BusyError, UmsError
from ums_core.helpers import header_text
from ums_core.intake import receive_message
from ums_core.model import IncomingMessage

from .qfile import parse_qfile
from .recvq_tags import RecvqTags, read_recvq_tags

log = logging.getLogger(__name__)

TIFF_MAGICS = (b"II*\0", b"MM\0*")
MAX_INFO_BYTES = 64 * 1024
NUMBER_LIKE = re.compile(r"\+?[0-9][0-9 ()./-]{2,30}")
INFO_FIELDS = {
    "cidnumber": "sender",
    "cidname": "name",
    "to": "called",
    "sender": "tsi",
    "commid": "commid",
    "msg": "error",
}


class Refusal(Exception):
    """An input that cannot become a message; ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@attrs.frozen
class ReceiveOptions:
    """What faxrcvd knows about a fax beyond the file; '' where it knows nothing."""

    sender: str = ""
    name: str = ""
    called: str = ""
    tsi: str = ""
    commid: str = ""
    error: str = ""


@attrs.frozen
class Outcome:
    """What became of one input: imported, skipped or refused."""

    status: str
    message_id: int | None = None
    reason: str = ""
    retry: bool = False

    def describe(self, label: str) -> str:
        """Return the one line the commands print for input LABEL."""
        if self.status == "imported":
            return f"imported {label} as message {self.message_id}"
        if self.status == "skipped":
            return f"skipped {label}: already received as message {self.message_id}"
        return f"refused {label}: {self.reason}"


def receive_safely(app, argument: str, options: ReceiveOptions) -> Outcome:
    """Receive ARGUMENT; any failure, even a bug, becomes a refusal."""
    try:
        return receive_file(app, argument, options)
    except Exception as exc:  # one bad file must not stop a batch or the watcher
        log.exception("hylafax: %s could not be received", argument)
        return Outcome("refused", reason=f"internal error: {type(exc).__name__}: {exc}")


def receive_file(app, argument: str, options: ReceiveOptions) -> Outcome:
    """Receive the recvq TIFF or info file ARGUMENT; refuse bad input with why."""
    try:
        path, options = open_item(app, argument, options)
        return import_tiff(app, path, options)
    except Refusal as exc:
        return Outcome("refused", reason=add_hylafax_error(exc.reason, options))
    except BusyError as exc:
        return Outcome("refused", reason=exc.message, retry=True)
    except UmsError as exc:
        return Outcome("refused", reason=add_hylafax_error(exc.message, options))


def add_hylafax_error(reason: str, options: ReceiveOptions) -> str:
    """Return REASON with the error HylaFAX reported for the reception, if any."""
    if not options.error:
        return reason
    return f"{reason} (HylaFAX reported: {header_text(options.error)})"


def open_item(app, argument: str, options: ReceiveOptions):
    """Return the TIFF that ARGUMENT is or names, and the options it adds."""
    path = locate_file(app, argument)
    head = read_head(path)
    if head.startswith(TIFF_MAGICS):
        return path, options
    info = read_info_file(path, head)
    tiff = locate_file(app, info["file"], os.path.dirname(path))
    check_named_tiff(tiff, info["file"])
    return tiff, merge_info(options, info)


def check_named_tiff(path: str, name: str) -> None:
    """Refuse the file NAME an info file points to unless it is a TIFF."""
    try:
        head = read_head(path)
    except Refusal as exc:
        raise Refusal(f"{name} (named by the info file): {exc.reason}") from None
    if not head.startswith(TIFF_MAGICS):
        raise Refusal(f"{name} (named by the info file) is not a TIFF file")


def locate_file(app, name: str, base: str = "") -> str:
    """Return NAME as given (or below BASE), else inside the HylaFAX spool.

    faxrcvd passes the qfile relative to the spool, e.g. recvq/fax00012.tif.
    """
    if not name:
        raise Refusal("no file name given")
    candidates = [os.path.join(base, name)]
    if not os.path.isabs(name):
        candidates.append(os.path.join(app.config.get("hylafax.spool"), name))
    for candidate in candidates:
        if os.path.lexists(candidate):
            return candidate
    raise Refusal("no such file (looked at " + ", ".join(candidates) + ")")


def read_head(path: str) -> bytes:
    """Return the first bytes of the regular, non-empty file PATH (no symlink)."""
    try:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            raise Refusal("a symbolic link; give the file in recvq itself")
        if not stat.S_ISREG(info.st_mode):
            raise Refusal("not a regular file")
        if info.st_size == 0:
            raise Refusal("the file is empty")
        with open(path, "rb") as handle:
            return handle.read(8)
    except OSError as exc:
        raise Refusal(f"cannot read it: {exc.strerror or exc}") from None


def read_info_file(path: str, head: bytes) -> dict[str, str]:
    """Return the tags of an info file (qfile syntax with a file: line)."""
    not_tiff = f"not a TIFF file (it starts with {describe_head(head)})"
    if os.path.getsize(path) > MAX_INFO_BYTES:
        raise Refusal(not_tiff)
    try:
        with open(path, encoding="utf-8") as handle:
            tags = parse_qfile(handle.read())
    except (OSError, UnicodeDecodeError):
        raise Refusal(not_tiff) from None
    if not tags.get("file"):
        raise Refusal(f"{not_tiff} and not an info file with a file: line")
    return tags


def describe_head(head: bytes) -> str:
    """Return the first four bytes of a file as people read them."""
    start = head[:4]
    if all(32 <= byte < 127 for byte in start):
        return repr(start.decode("ascii"))
    return start.hex(" ")


def merge_info(options: ReceiveOptions, info: dict[str, str]) -> ReceiveOptions:
    """Return OPTIONS with the gaps filled from the info file's tags."""
    changes = {}
    for tag, field in INFO_FIELDS.items():
        if info.get(tag) and not getattr(options, field):
            changes[field] = info[tag]
    return attrs.evolve(options, **changes)


def import_tiff(app, path: str, options: ReceiveOptions) -> Outcome:
    """Commit the recvq TIFF at PATH unless it was received before."""
    source_ref = "hylafax:" + hash_file(path)
    existing = find_received(source_ref)
    if existing is not None:
        return Outcome("skipped", existing)
    tags = read_recvq_tags(path)
    incoming = build_incoming(app, path, options, tags)
    message_id = receive_message(app, incoming, run_now=True, source_ref=source_ref)
    log_import(message_id, path, options, tags)
    return Outcome("imported", message_id)


def hash_file(path: str) -> str:
    """Return the SHA-256 of the file at PATH in hex."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise Refusal(f"cannot read it: {exc.strerror or exc}") from None
    return digest.hexdigest()


def find_received(source_ref: str) -> int | None:
    """Return the id of the message committed as SOURCE_REF, or None."""
    from ums_core import db

    row = db.Message.get_or_none(db.Message.source_ref == source_ref)
    return row.id if row is not None else None


def build_incoming(app, path, options: ReceiveOptions, tags: RecvqTags):
    """Return the IncomingMessage: the options first, then the TIFF's tags."""
    did = tags.find_callid(app.config.get("hylafax.did_callid"))
    called = options.called or (did if NUMBER_LIKE.fullmatch(did) else "")
    called = called or app.config.get("hylafax.default_to")
    if not called:
        raise Refusal(
            "no called number: pass --to, or set hylafax.default_to for a "
            "single-number site"
        )
    return IncomingMessage(
        kind="fax",
        called=called,
        sender=options.sender or tags.find_callid(1) or None,
        sender_name=options.name or tags.find_callid(2),
        station_id=options.tsi or tags.tsi,
        received_at=tags.received_at,
        content_path=path,
    )


def log_import(message_id: int, path: str, options: ReceiveOptions, tags) -> None:
    """Log where the fax came from and any reception problem HylaFAX reported."""
    log.info(
        "msg %d: from HylaFAX file %s (commid %s, modem %s, host %s)",
        message_id,
        path,
        header_text(options.commid) or "-",
        tags.modem or "-",
        tags.host or "-",
    )
    if options.error:
        log.warning(
            "msg %d: HylaFAX reported a reception problem: %s",
            message_id,
            header_text(options.error),
        )
