"""Outbound SMS through smsd: write the outgoing file, then read smsd's result.

ums writes ``ums-<id>`` into ``smstools.outgoing``: first as
``ums-<id>.LOCK`` (smsd never takes a file with ``.LOCK`` in its name, and
treats ``ums-<id>`` as locked while that file exists), fsynced, then renamed.
The ledger (:mod:`.ledger`) records the hand-over in two steps around the
rename, so a repeated job never writes a second file for one message.

smsd moves the file into its ``sent`` or ``failed`` folder when it is done
(``smstools.sent``, ``smstools.failed``), adding ``Sent:`` and
``Message_id:``, or ``Failed:`` and an error line; its eventhandler may also
tell ``ums smstools event SENT|FAILED FILE [MESSAGE_ID]``. Either becomes the
final TransmitResult. When neither comes within ``smstools.timeout`` the
message fails, and a file smsd never took is withdrawn from its outgoing folder.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re

from ums_core.helpers import header_text
from ums_core.model import TransmitResult

from .fileformat import (
    SmsFileError,
    build_outgoing_file,
    digits_of,
    parse_message_file,
    smstools_number,
)
from .files import (
    fsync_dir,
    move_into,
    read_spool_file,
    write_durably,
)
from .ledger import Ledger, file_name
from .outcome import Outcome
from .settings import PLUGIN

log = logging.getLogger(__name__)

FAILURE_KEYS = ("fail_reason", "error", "failed_reason", "reason")
FINAL_STATES = ("sent", "failed")
FILE_MODE = 0o660
MTIME_SLACK = 60.0
_OWN_NAME = re.compile(r"ums-([1-9][0-9]{0,17})")


def transmit_by_smstools(message, ctx) -> TransmitResult:
    """Hand MESSAGE to smsd, or return what smsd made of it."""
    ledger = Ledger(ctx)
    record = ledger.read(message.id)
    if record is None or record["state"] == "writing":
        try:
            return hand_over(message, ctx, ledger, record)
        except SmsFileError as exc:
            return TransmitResult(status="failed", reason=exc.reason, attempts=1)
        except OSError as exc:
            folder = ctx.config.get("smstools.outgoing")
            reason = f"cannot write into smstools.outgoing {folder}: {exc.strerror}"
            return TransmitResult(status="retry", reason=reason)
    if record["state"] not in FINAL_STATES:
        record = collect_result(ctx, ledger, record)
    if record["state"] in FINAL_STATES:
        return result_from(record)
    return TransmitResult(status="pending", reason="waiting for smsd")


def hand_over(message, ctx, ledger: Ledger, record: dict | None) -> TransmitResult:
    """Write the outgoing file for MESSAGE atomically, once."""
    number = smstools_number(message.called)
    folder = ctx.config.get("smstools.outgoing")
    final = os.path.join(folder, file_name(message.id))
    tmp = final + ".LOCK"
    data = build_outgoing_file(number, message.text, ctx.config.get("smstools.report"))
    if record is None:
        record = begin_hand_over(message, ledger, number, final, data)
    elif os.path.lexists(tmp):
        write_durably(tmp, data, FILE_MODE)
    else:
        log.info("msg %d: %s was renamed before an interruption", message.id, final)
    if os.path.lexists(tmp):
        os.replace(tmp, final)
        fsync_dir(folder)
    ledger.write({**record, "state": "handed"})
    log.info("msg %d: handed to smsd as %s", message.id, final)
    return TransmitResult(status="pending", reason=f"handed to smsd as {final}")


def begin_hand_over(message, ledger: Ledger, number: str, final: str, data: bytes):
    """Write DATA beside FINAL as its .LOCK file, then record that; return it.

    Once the record says ``writing``, a missing .LOCK file means the rename
    to FINAL happened, so a repeated job knows smsd may have it already.
    """
    if os.path.lexists(final):
        raise SmsFileError(
            f"{final} exists already and was not written by this instance"
        )
    write_durably(final + ".LOCK", data, FILE_MODE)
    record = {"id": message.id, "number": number, "state": "writing"}
    record.update(written_at=now_text(), reason="", smsd_id="")
    ledger.write(record)
    return record


def collect_result(ctx, ledger: Ledger, record: dict) -> dict:
    """Return RECORD updated with smsd's result, when there is one yet."""
    update = read_result_file(ctx, record) or check_timeout(ctx, record)
    if update is None:
        return record
    return store_result(ledger, record, update)


def read_result_file(ctx, record: dict) -> dict | None:
    """Return the outcome smsd left in its sent or failed folder, or None."""
    name = file_name(record["id"])
    for key, state in (("smstools.sent", "sent"), ("smstools.failed", "failed")):
        path = os.path.join(ctx.config.get(key), name)
        if not os.path.lexists(path) or os.path.lexists(path + ".LOCK"):
            continue
        sms = read_own_file(path, record)
        if sms is not None:
            return outcome_of(state, sms)
    return None


def read_own_file(path: str, record: dict):
    """Return the parsed file at PATH when it is the one written for RECORD."""
    try:
        changed = os.lstat(path).st_mtime
        sms = parse_message_file(read_spool_file(path))
    except OSError as exc:
        log.warning("msg %d: cannot read %s: %s", record["id"], path, exc.strerror)
        return None
    except SmsFileError as exc:
        log.warning("msg %d: cannot read %s: %s", record["id"], path, exc.reason)
        return None
    written = dt.datetime.fromisoformat(record["written_at"]).timestamp()
    if digits_of(sms.header("to")) != record["number"] or (
        changed < written - MTIME_SLACK
    ):
        log.warning("msg %d: %s is an older file of that name", record["id"], path)
        return None
    return sms


def outcome_of(state: str, sms=None) -> dict:
    """Return the ledger update for STATE as the smsd file SMS (or None) tells it."""
    if state == "sent":
        modem = header_text(sms.header("modem"), 40) if sms else ""
        reason = f"sent by smsd (modem {modem})" if modem else "sent by smsd"
    else:
        reason = failure_reason(sms)
    smsd_id = header_text(sms.header("message_id"), 20) if sms else ""
    return {"state": state, "reason": reason, "smsd_id": smsd_id}


def failure_reason(sms) -> str:
    """Return why smsd could not send, from the error line of its failed file."""
    for key in FAILURE_KEYS:
        text = header_text(sms.header(key), 300) if sms else ""
        if text:
            return f"smsd could not send it: {text}"
    return "smsd could not send it (no reason given; see smsd's log)"


def check_timeout(ctx, record: dict) -> dict | None:
    """Return a failure when smsd gave no result within smstools.timeout."""
    timeout = ctx.config.get("smstools.timeout")
    written = dt.datetime.fromisoformat(record["written_at"])
    if dt.datetime.now(dt.UTC) - written < dt.timedelta(seconds=timeout):
        return None
    hours = f"{timeout / 3600:g} h"
    final = os.path.join(ctx.config.get("smstools.outgoing"), file_name(record["id"]))
    if not os.path.lexists(final):
        reason = f"smsd gave no result within {hours}; see smsd's log"
        return {"state": "failed", "reason": reason}
    try:
        withdrawn = os.path.join(ctx.plugin_folder(PLUGIN), "withdrawn")
        move_into(final, withdrawn, read_spool_file(final))
    except (OSError, SmsFileError):
        return None
    reason = f"smsd did not take the SMS within {hours} (is it running?); withdrawn"
    return {"state": "failed", "reason": reason}


def store_result(ledger: Ledger, record: dict, update: dict) -> dict:
    """Write UPDATE into RECORD; link smsd's message id for status reports."""
    record = {**record, **update, "result_at": now_text()}
    ledger.write(record)
    if record["state"] == "sent" and record.get("smsd_id"):
        ledger.link(record["number"], record["smsd_id"], record["id"])
    log.info("msg %d: smsd result: %s (%s)", record["id"], record["state"], update)
    return record


def result_from(record: dict) -> TransmitResult:
    """Return the TransmitResult of a final RECORD."""
    return TransmitResult(
        status=record["state"], reason=record.get("reason", ""), attempts=1
    )


def record_smsd_event(ctx, event: str, path: str, smsd_id: str = "") -> Outcome:
    """Record what smsd's eventhandler says (SENT or FAILED) about the file PATH."""
    name = os.path.basename(path)
    match = _OWN_NAME.fullmatch(name)
    if not match:
        return Outcome("skipped", name, "not a file ums wrote (ums-<id>)")
    ledger = Ledger(ctx)
    record = ledger.read(int(match[1]))
    if record is None:
        return Outcome("skipped", name, "this instance handed no SMS to smsd as it")
    if record["state"] in FINAL_STATES:
        return Outcome("skipped", name, f"already recorded as {record['state']}")
    sms = read_event_file(path)
    if sms is not None and digits_of(sms.header("to")) != record["number"]:
        return Outcome("skipped", name, "its To: is not the number ums sent to")
    update = outcome_of("sent" if event == "SENT" else "failed", sms)
    update["smsd_id"] = header_text(smsd_id, 20) or update["smsd_id"]
    record = store_result(ledger, record, update)
    return Outcome("recorded", name, describe_result(record))


def read_event_file(path: str):
    """Return the parsed file smsd names in an event, or None when it is gone."""
    try:
        return parse_message_file(read_spool_file(path))
    except SmsFileError as exc:
        log.info("smstools event file %s not read: %s", path, exc.reason)
        return None


def describe_result(record: dict) -> str:
    """Return the one-line summary of a final RECORD."""
    text = f"message {record['id']} {record['state']}"
    if record["state"] == "failed":
        text += f": {record['reason']}"
    if record.get("smsd_id"):
        text += f" (Message_id {record['smsd_id']})"
    return text


def record_status_report(ctx, fields: dict, name: str) -> Outcome:
    """Store the status report FIELDS on the SMS it is about, or skip it."""
    smsd_id = header_text(fields.get("message_id", ""), 20)
    status = header_text(fields.get("status", ""), 200) or "no status"
    ledger = Ledger(ctx)
    message_id = ledger.find(digits_of(fields.get("from", "")), smsd_id)
    record = ledger.read(message_id) if message_id else None
    if record is None:
        detail = f"a status report (Message_id {smsd_id or '?'}: {status})"
        return Outcome("skipped", name, detail + " that matches no SMS ums sent")
    report = {"status": status, "file": name, "received_at": now_text()}
    report["discharge"] = header_text(fields.get("discharge_timestamp", ""), 40)
    ledger.write({**record, "report": report})
    log.info("msg %d: status report from smsd: %s", message_id, status)
    return Outcome(
        "recorded", name, f"status report for message {message_id}: {status}"
    )


def now_text() -> str:
    """Return the current time in UTC as ISO 8601."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
