"""The two transmit backends that ship with the core.

``outbox`` hands each outbound message to an external connector through a
folder; ``simulation`` pretends to dial, for demos and tests, and says so.

Outbox layout (``transmit.outbox``, default ``DIR/outbox``)::

    outbox/jobs/ums-<id>.json      written by ums (tmp name, fsync, rename)
    outbox/jobs/ums-<id>.pdf       the fax document, renamed in before the .json
    outbox/results/ums-<id>.json   written by the connector, same way
    outbox/done/                   where ums moves both after reading the result

A job file::

    {"id": 17, "kind": "fax", "number": "+4989123456", "subaddress": "",
     "document": "ums-17.pdf", "pages": 2, "text": null, "segments": null,
     "sender": "alice@example.test"}

A result file: ``{"status": "sent" | "failed" | "retry", "reason": "...",
"pages": 2, "duration": 41.5, "attempts": 1, "remote_station": "+49 89 1"}``.
``retry`` means busy or no answer: ums retries by ``retry.schedule`` and
writes the job file again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil

from .content import fsync_dir
from .model import TransmitResult

log = logging.getLogger(__name__)

SECONDS_PER_PAGE = 20.0


def outbox_folder(ctx, part: str) -> str:
    """Return (and create) the outbox sub-folder PART."""
    base = ctx.config.get("transmit.outbox") or os.path.join(
        ctx.content_folder, "outbox"
    )
    path = os.path.join(base, part)
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def _write_json(path: str, data: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, ensure_ascii=False, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path))


def _job_data(message, document: str | None) -> dict:
    return {
        "id": message.id,
        "kind": message.kind,
        "number": message.called,
        "subaddress": message.station_id,
        "document": document,
        "pages": message.pages,
        "text": message.text if message.kind == "sms" else None,
        "segments": message.segments,
        "sender": message.recipient,
    }


def submit_to_outbox(message, ctx) -> None:
    """Write the job (and its document) for MESSAGE unless it is there."""
    jobs = outbox_folder(ctx, "jobs")
    name = f"ums-{message.id}"
    if os.path.exists(os.path.join(jobs, name + ".json")):
        return
    document = None
    if message.content_path:
        document = name + ".pdf"
        tmp = os.path.join(jobs, document + ".tmp")
        shutil.copyfile(message.content_path, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, os.path.join(jobs, document))
    _write_json(os.path.join(jobs, name + ".json"), _job_data(message, document))
    log.info("msg %d: handed to the outbox as %s", message.id, name)


def read_outbox_result(message, ctx) -> TransmitResult | None:
    """Return the connector's result for MESSAGE and file it away, or None."""
    name = f"ums-{message.id}"
    path = os.path.join(outbox_folder(ctx, "results"), name + ".json")
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        result = _result_from(data)
    except (OSError, ValueError, TypeError) as exc:
        log.error("msg %d: unreadable outbox result %s: %s", message.id, path, exc)
        result = TransmitResult(status="retry", reason=f"unreadable result: {exc}")
    _file_away(ctx, name, path)
    return result


def _result_from(data: dict) -> TransmitResult:
    if not isinstance(data, dict):
        raise ValueError("a result must be a JSON object")
    return TransmitResult(
        status=str(data.get("status")),
        reason=str(data.get("reason") or "")[:500],
        pages=data.get("pages"),
        duration=data.get("duration"),
        attempts=data.get("attempts"),
        remote_station=str(data.get("remote_station") or "")[:64],
    )


def _file_away(ctx, name: str, result_path: str) -> None:
    done = outbox_folder(ctx, "done")
    jobs = outbox_folder(ctx, "jobs")
    for entry in os.listdir(jobs):
        if entry.startswith(name + "."):
            os.replace(os.path.join(jobs, entry), os.path.join(done, entry))
    os.replace(result_path, os.path.join(done, name + ".result.json"))


def transmit_by_outbox(message, ctx) -> TransmitResult:
    """Submit MESSAGE to the outbox, or collect its result."""
    result = read_outbox_result(message, ctx)
    if result is not None:
        return result
    submit_to_outbox(message, ctx)
    return TransmitResult(status="pending", reason="waiting for the connector")


def transmit_by_simulation(message, ctx) -> TransmitResult:
    """Pretend to transmit: fail the numbers in simulation.fail, send the rest."""
    if message.called in ctx.config.get("simulation.fail"):
        log.info("msg %d: simulation: no answer from %s", message.id, message.called)
        return TransmitResult(
            status="failed", reason="no answer (simulation)", attempts=1
        )
    pages = message.pages or 0
    log.info("msg %d: simulation: sent to %s", message.id, message.called)
    return TransmitResult(
        status="sent",
        reason="sent (simulation)",
        pages=message.pages,
        duration=SECONDS_PER_PAGE * pages if message.kind == "fax" else 1.0,
        attempts=1,
        remote_station="SIMULATION",
    )
