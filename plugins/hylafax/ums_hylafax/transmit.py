"""Send outbound faxes with HylaFAX and follow each job to its end.

The first call submits the PDF with sendfax and answers ``pending``; later
calls read the job's qfile (local server) or ``faxstat -s -d`` and answer
``sent``, ``failed``, ``retry`` (HylaFAX requeued the job after a failed
attempt; it keeps the job and dials again itself) or ``pending``. The job id
is kept in the job book, so a repeated call never submits a second time.
"""

from __future__ import annotations

import logging

import attrs

from ums_core.model import TransmitResult

from .clients import (
    FAXSTAT_TIMEOUT,
    SENDFAX_TIMEOUT,
    ClientError,
    build_faxstat_command,
    build_sendfax_command,
    parse_request_id,
    run_client,
)
from .job_book import read_job_entry, write_job_entry
from .job_status import JobStatus, make_result, parse_faxstat, read_spool_status
from .settings import PLUGIN

log = logging.getLogger(__name__)

MAX_MISSES = 3
FINAL = ("sent", "failed")


def transmit_fax(message, ctx) -> TransmitResult:
    """Submit MESSAGE to HylaFAX once, then report where its job stands."""
    folder = ctx.plugin_folder(PLUGIN)
    entry = read_job_entry(folder, message.id)
    if entry is None:
        return submit_fax(message, ctx, folder)
    if entry.get("state") == "final":
        return TransmitResult(**entry["result"])
    if entry.get("state") != "submitted":
        reason = (
            "the hand-over to sendfax was interrupted; HylaFAX may have the fax "
            "(see faxstat -s -d), so ums does not submit it again"
        )
        return finish(folder, message, TransmitResult(status="failed", reason=reason))
    return follow_job(message, ctx, folder, entry)


def submit_fax(message, ctx, folder: str) -> TransmitResult:
    """Hand MESSAGE's PDF to sendfax and record the job id it prints."""
    if not message.content_path:
        return TransmitResult(status="failed", reason="the fax has no document")
    sender = message.recipient or ctx.system_sender(required=False).addr_spec
    command = build_sendfax_command(
        ctx.config, message.called, sender, message.content_path
    )
    write_job_entry(folder, message.id, {"state": "submitting"})
    try:
        output = run_client(command, SENDFAX_TIMEOUT)
    except ClientError as exc:
        return handle_submit_error(message, folder, exc)
    job = parse_request_id(output)
    if job is None:
        said = " ".join(output.split())[:200]
        reason = f"sendfax printed no job id ({said}); HylaFAX may still send it"
        return finish(folder, message, TransmitResult(status="failed", reason=reason))
    write_job_entry(folder, message.id, {"state": "submitted", "job": job})
    log.info("msg %d: handed to HylaFAX as job %s", message.id, job)
    return TransmitResult(status="pending", reason=f"HylaFAX job {job} queued")


def handle_submit_error(message, folder: str, exc: ClientError) -> TransmitResult:
    """Return retry when sendfax surely did nothing, else fail without resending."""
    if exc.unsure:
        reason = f"{exc.reason}; HylaFAX may have the fax, so it is not sent again"
        return finish(folder, message, TransmitResult(status="failed", reason=reason))
    write_job_entry(folder, message.id, None)
    log.warning("msg %d: sendfax refused the fax: %s", message.id, exc.reason)
    return TransmitResult(status="retry", reason=exc.reason)


def follow_job(message, ctx, folder: str, entry: dict) -> TransmitResult:
    """Return where MESSAGE's HylaFAX job stands; record a final outcome."""
    job = entry["job"]
    try:
        status = look_up_job(ctx.config, job)
    except ClientError as exc:
        log.warning("msg %d: no state of HylaFAX job %s: %s", message.id, job, exc)
        return TransmitResult(status="pending", reason=exc.reason)
    if status is None:
        return note_missing(message, folder, entry)
    result = make_result(status)
    if result.status in FINAL:
        return finish(folder, message, result, job)
    if entry.get("misses"):
        write_job_entry(folder, message.id, {**entry, "misses": 0})
    return result


def look_up_job(config, job: str) -> JobStatus | None:
    """Return JOB's status: its qfile on a local server, else faxstat's row."""
    if not config.get("hylafax.host"):
        status = read_spool_status(config.get("hylafax.spool"), job)
        if status is not None:
            return status
    output = run_client(build_faxstat_command(config), FAXSTAT_TIMEOUT)
    return parse_faxstat(output, job)


def note_missing(message, folder: str, entry: dict) -> TransmitResult:
    """Wait for a job HylaFAX does not list; give up after MAX_MISSES looks."""
    job = entry["job"]
    misses = entry.get("misses", 0) + 1
    if misses >= MAX_MISSES:
        reason = (
            f"HylaFAX no longer lists job {job} (neither in sendq nor in doneq); "
            "whether it was sent is unknown"
        )
        return finish(folder, message, TransmitResult(status="failed", reason=reason))
    write_job_entry(folder, message.id, {**entry, "misses": misses})
    return TransmitResult(status="pending", reason=f"HylaFAX does not list job {job}")


def finish(folder: str, message, result: TransmitResult, job=None) -> TransmitResult:
    """Record RESULT as MESSAGE's final outcome and return it."""
    entry = {"state": "final", "job": job, "result": attrs.asdict(result)}
    write_job_entry(folder, message.id, entry)
    log.info("msg %d: HylaFAX outcome %s: %s", message.id, result.status, result.reason)
    return result
