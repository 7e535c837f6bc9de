"""Hand the messages of an Asterisk spool to ums intake, one by one.

A message is committed by :func:`ums_core.intake.receive_message` with the
source reference ``asterisk:<context>/<mailbox>/<msg_id>`` (or, for files
without a msg_id, ``<msgNNNN>-<origtime>``), so a repeat is recognised. Its
files are moved or deleted (``asterisk.after``) only after that returned.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os

import attrs

from ums_core import db
from ums_core.context import PluginContext
from ums_core.errors import BusyError, UmsError
from ums_core.helpers import probe_voice
from ums_core.intake import receive_message
from ums_core.model import IncomingMessage

from .metadata import VoicemailInfo, read_info
from .settings import PLUGIN, Settings
from .spool import VoicemailItem, choose_recording, delete_item, move_item

log = logging.getLogger(__name__)


@attrs.frozen
class Outcome:
    """What happened to one spool message, and the line that says so."""

    label: str
    action: str
    detail: str = ""
    message_id: int | None = None
    problem: bool = False
    retry: bool = False

    @property
    def line(self) -> str:
        """Return the one line the commands print for this outcome."""
        if self.action == "imported":
            tail = f"; {self.detail}" if self.detail else ""
            return f"imported {self.label} as message {self.message_id}{tail}"
        return f"{self.action} {self.label}: {self.detail}"


def import_item(app, item: VoicemailItem, settings: Settings) -> Outcome:
    """Import ITEM if its mailbox is mapped; then apply ``asterisk.after``."""
    number = settings.mapping.get(item.mailbox_key)
    if number is None:
        reason = f"mailbox {item.mailbox_key} is not mapped"
        return Outcome(item.label, "skipped", reason)
    try:
        info = read_info(item.info_path)
        ref = source_ref(item, info)
        existing = find_received(ref)
        if existing is not None:
            reason = f"already received as message {existing}"
            return finish(item, settings, Outcome(item.label, "skipped", reason))
        message_id = receive_item(app, item, info, number, ref)
    except BusyError as exc:
        return attrs.evolve(refuse(item, exc.message), retry=True)
    except UmsError as exc:
        return refuse(item, exc.message)
    except (OSError, ValueError) as exc:
        return refuse_unreadable(item, exc)
    log.info("msg %d: imported from Asterisk %s", message_id, item.label)
    return finish(item, settings, Outcome(item.label, "imported", "", message_id))


def receive_item(app, item, info: VoicemailInfo, number: str, ref: str) -> int:
    """Check the recording of ITEM and commit it; return the message id."""
    recording = choose_recording(item)
    try:
        probe_voice(recording)
    except UmsError as exc:
        raise UmsError(f"{os.path.basename(recording)}: {exc.message}") from None
    incoming = IncomingMessage(
        kind="voice",
        called=number,
        sender=info.caller_number,
        sender_name=info.caller_name,
        received_at=info.received_at,
        content_path=recording,
    )
    return receive_message(app, incoming, run_now=True, source_ref=ref)


def refuse(item: VoicemailItem, reason: str) -> Outcome:
    """Return the refusal of ITEM; its files stay where they are."""
    log.info("Asterisk %s refused: %s", item.label, reason)
    return Outcome(item.label, "refused", reason, problem=True)


def refuse_unreadable(item: VoicemailItem, exc: Exception) -> Outcome:
    """Return the outcome of ITEM when reading its files failed."""
    if isinstance(exc, FileNotFoundError) and not os.path.lexists(item.info_path):
        return Outcome(item.label, "skipped", "it left the spool meanwhile")
    return refuse(item, f"cannot read it: {exc}")


def source_ref(item: VoicemailItem, info: VoicemailInfo) -> str:
    """Return the reference that recognises ITEM when it is handed over again."""
    if info.msg_id:
        name = info.msg_id
    else:
        name = f"{item.stem}-{info.origtime or info.received_at.isoformat()}"
    return f"asterisk:{item.mailbox_key}/{name}"


def find_received(ref: str) -> int | None:
    """Return the id of the message already received as REF, or None."""
    row = db.Message.get_or_none(db.Message.source_ref == ref)
    return None if row is None else row.id


def finish(item: VoicemailItem, settings: Settings, outcome: Outcome) -> Outcome:
    """Move or delete the files of the committed ITEM as ``asterisk.after`` says."""
    try:
        if settings.after == "move":
            folder = move_item(item, settings.done_dir)
            log.info("Asterisk %s moved to %s", item.label, folder)
        elif settings.after == "delete":
            delete_item(item)
            log.info("Asterisk %s deleted from the spool", item.label)
    except OSError as exc:
        log.error("Asterisk %s could not be put away: %s", item.label, exc)
        note = f"not {settings.after}d: {exc.strerror or exc}"
        detail = f"{outcome.detail}; {note}" if outcome.detail else note
        return attrs.evolve(outcome, detail=detail, problem=True)
    return outcome


@contextlib.contextmanager
def import_lock(app):
    """Hold the plugin's lock, so a notify and a watcher never race."""
    folder = PluginContext(app).plugin_folder(PLUGIN)
    fd = os.open(os.path.join(folder, "import.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
