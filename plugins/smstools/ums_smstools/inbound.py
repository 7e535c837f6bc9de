"""Inbound SMS from smsd's incoming folder: parse, hand to intake, file away.

Each file becomes one intake call with the source reference
``smstools:<file name>:<sha256 of the content>``, so importing a file twice
stores one message. Status reports are recorded on the SMS they are about (or
skipped); binary messages, other programs' files and broken files are refused
and stay where they are. Only after intake committed the message does
``smstools.after`` leave, move or delete the file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import stat
import threading
import time
import zoneinfo
from collections.abc import Callable, Iterator

import attrs

from ums_core.context import PluginContext
from ums_core.errors import UmsError
from ums_core.intake import receive_message, received_as
from ums_core.model import IncomingMessage

from .fileformat import (
    SmsFile,
    SmsFileError,
    decode_text,
    international_number,
    is_status_report,
    parse_message_file,
    parse_smsd_time,
    read_status_report,
)
from .files import move_into, read_spool_file, remove_file
from .outbound import record_status_report
from .outcome import Outcome
from .settings import PLUGIN

log = logging.getLogger(__name__)

EARLIEST = dt.datetime(1990, 1, 1, tzinfo=dt.UTC)
SINGLE_HEADERS = {"from": "From", "to": "To", "alphabet": "Alphabet", "udh": "UDH"}


def import_file(app, path: str, run_now: bool = True, report: bool = False):
    """Take the smsd file at PATH: import its SMS, record a report, or refuse it.

    REPORT says smsd called it a status report (its REPORT event).
    """
    name = os.path.basename(path)
    try:
        data = read_spool_file(path)
        sms = parse_message_file(data)
        if report or is_status_report(sms):
            fields = read_status_report(sms)
            outcome = record_status_report(PluginContext(app), fields, name)
        else:
            outcome = receive_sms(app, sms, name, data, run_now)
    except SmsFileError as exc:
        return Outcome("refused", name, exc.reason)
    if outcome.action == "skipped" and "already received" not in outcome.detail:
        return outcome
    return dispose_file(app, path, data, outcome)


def receive_sms(app, sms: SmsFile, name: str, data: bytes, run_now: bool) -> Outcome:
    """Hand the received SMS to intake; return what happened."""
    incoming = incoming_message(app, sms)
    ref = source_ref(name, data)
    earlier = received_as(ref)
    if earlier is not None:
        return Outcome("skipped", name, f"already received as message {earlier}")
    try:
        message_id = receive_message(app, incoming, run_now=run_now, source_ref=ref)
    except UmsError as exc:
        raise SmsFileError(exc.message) from None
    log.info("msg %d: imported from the smstools file %s", message_id, name)
    sender = incoming.sender or "an unknown sender"
    return Outcome("imported", name, f"message {message_id} from {sender}")


def incoming_message(app, sms: SmsFile) -> IncomingMessage:
    """Return what intake needs from the received file SMS."""
    for key, shown in SINGLE_HEADERS.items():
        if sms.count(key) > 1:
            raise SmsFileError(f"the header {shown}: appears more than once")
    if not sms.header("from"):
        if sms.header("to"):
            raise SmsFileError(
                "an outgoing file (To: and no From:), not a received SMS"
            )
        raise SmsFileError("no From: header, so no received SMS")
    sender = international_number(sms.header("from"), sms.header("from_toa"))
    name = sms.header("name") or ("" if sender.startswith("+") else sender)
    return IncomingMessage(
        kind="sms",
        called=called_number(app, sms),
        sender=sender,
        sender_name=name,
        received_at=received_at(app, sms),
        text=decode_text(sms),
    )


def called_number(app, sms: SmsFile) -> str:
    """Return the number the SMS went to: its To:, else smstools.number."""
    if sms.header("to"):
        return international_number(sms.header("to"), sms.header("to_toa"))
    number = app.config.get("smstools.number")
    if not number:
        raise SmsFileError("no To: in the file and smstools.number is not set")
    return number


def received_at(app, sms: SmsFile) -> dt.datetime | None:
    """Return when smsd received SMS (its Received:, else Sent:), or None.

    smsd writes its local time without a zone; ums reads it in ``timezone``.
    A time before 1990 or in the future (a modem with a wrong clock) is dropped.
    """
    zone = zoneinfo.ZoneInfo(app.config.get("timezone"))
    for key in ("received", "sent"):
        when = parse_smsd_time(sms.header(key))
        if when is None:
            continue
        when = when.replace(tzinfo=zone)
        if EARLIEST <= when <= dt.datetime.now(dt.UTC) + dt.timedelta(hours=12):
            return when
        log.warning("smstools file: ignoring the implausible time %s", when)
    return None


def source_ref(name: str, data: bytes) -> str:
    """Return the source reference of the file NAME with content DATA."""
    shown = os.fsencode(name).decode("utf-8", "replace")
    return f"smstools:{shown}:{hashlib.sha256(data).hexdigest()}"


def dispose_file(app, path: str, data: bytes, outcome: Outcome) -> Outcome:
    """Leave, move or delete PATH by smstools.after, now that it is committed."""
    policy = app.config.get("smstools.after")
    if policy == "leave":
        return outcome
    try:
        if read_spool_file(path) != data:
            note = "left in place: it changed while it was imported"
        elif policy == "delete":
            remove_file(path)
            note = "deleted"
        else:
            note = "moved to " + move_into(path, done_folder(app), data)
    except (OSError, SmsFileError) as exc:
        reason = getattr(exc, "reason", None) or exc.strerror
        log.warning("smstools file %s not %sd: %s", path, policy, reason)
        note = f"left in place: cannot {policy} it: {reason}"
    return attrs.evolve(outcome, detail=f"{outcome.detail}; {note}")


def done_folder(app) -> str:
    """Return where smstools.after = move puts imported files."""
    configured = app.config.get("smstools.done")
    return configured or os.path.join(PluginContext(app).plugin_folder(PLUGIN), "done")


def import_folder(app, folder: str, seen: set | None = None) -> Iterator[Outcome]:
    """Import every file in FOLDER that smsd has finished; yield what happened.

    With SEEN (the watch loop) a file already handled and unchanged is passed
    over silently, and so is one that is still young or locked.
    """
    settle = app.config.get("smstools.settle")
    present = set()
    for entry, info in list_files(folder):
        key = (entry.name, info.st_size, info.st_mtime_ns)
        present.add(key)
        if seen is not None and key in seen:
            continue
        wait = why_wait(entry.path, info.st_mtime, settle)
        if wait:
            if seen is None:
                yield Outcome("skipped", entry.name, wait)
            continue
        yield import_file(app, entry.path)
        if seen is not None:
            seen.add(key)
    if seen is not None:
        seen.intersection_update(present)


def list_files(folder: str) -> list[tuple[os.DirEntry, os.stat_result]]:
    """Return the candidate files of FOLDER with their status, oldest first.

    Folders, hidden files and smsd's .LOCK files are no candidates.
    """
    found = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith(".") or ".LOCK" in entry.name:
                    continue
                info = stat_entry(entry)
                if info is not None and not stat.S_ISDIR(info.st_mode):
                    found.append((entry, info))
    except OSError as exc:
        raise UmsError(f"cannot read {folder}: {exc.strerror}") from None
    return sorted(found, key=lambda pair: (pair[1].st_mtime, pair[0].name))


def stat_entry(entry: os.DirEntry) -> os.stat_result | None:
    """Return the status of ENTRY itself (not a link's target), or None if gone."""
    try:
        return entry.stat(follow_symlinks=False)
    except FileNotFoundError:
        return None


def why_wait(path: str, changed: float, settle: float) -> str:
    """Return why the file at PATH is not to be read yet, or ''."""
    if os.path.lexists(path + ".LOCK"):
        return "locked by smsd (a .LOCK file is beside it)"
    age = time.time() - changed
    if age < settle:
        return f"changed {age:.1f} s ago, smsd may still be writing it; import again"
    return ""


def watch_folder(app, folder: str, report: Callable, stop: threading.Event) -> int:
    """Import from FOLDER until STOP is set, giving REPORT each outcome.

    Return how many files were refused.
    """
    seen: set = set()
    refused = 0
    poll = app.config.get("smstools.poll")
    while not stop.is_set():
        for outcome in import_folder(app, folder, seen):
            report(outcome)
            refused += outcome.refused
        stop.wait(poll)
    return refused
