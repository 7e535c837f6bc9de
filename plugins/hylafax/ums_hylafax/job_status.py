"""Where a HylaFAX send job stands: from its qfile or from ``faxstat -s -d``.

A job's qfile is ``sendq/q<jobid>`` while it is queued and ``doneq/q<jobid>``
once it ended (sendq(5)); ``state`` is 1 suspended, 2 pending, 3 sleeping
(requeued after a failed attempt), 4 blocked, 5 ready, 6 active, 7 done,
8 failed. faxstat shows the same state as one letter of ``?TPSBWRDF`` in its
default job format (JID, Pri, S, Owner, Number, Pages, Dials, TTS, Status),
with the status cut to 25 characters.
"""

from __future__ import annotations

import os
import re

import attrs

from ums_core.model import TransmitResult

from .qfile import parse_qfile, read_int

STATE_LETTERS = "?TPSBWRDF"
STATE_NAMES = (
    "undefined",
    "suspended",
    "pending",
    "sleeping",
    "blocked",
    "ready",
    "active",
    "done",
    "failed",
)
DONE, FAILED = 7, 8
WAITING_STATES = (2, 3, 4, 5)
KILLED = re.compile(r"abort|kill|remov|delet", re.IGNORECASE)
MAX_QFILE_BYTES = 1024 * 1024
MAX_REASON = 300
FAXSTAT_ROW = re.compile(
    r"\s*(?P<job>\d+)\s+\d+\s+(?P<letter>[?TPSBWRDF])\s"
    r".*?(?P<npages>\d+):\s*\d+\s+(?P<totdials>\d+):\s*\d+(?P<tail>.*)"
)
COMPACT_TIME = re.compile(
    r"(\d{1,2}:\d{2}|[A-Za-z]{3}\d{1,2}[AP]M|\d{1,2}[A-Za-z]{3}\d{2})(\s+|$)"
)


@attrs.frozen
class JobStatus:
    """One HylaFAX job as its qfile or faxstat shows it."""

    job: str
    state: int
    status: str = ""
    npages: int | None = None
    totdials: int = 0
    tottries: int = 0
    remote_station: str = ""

    @property
    def state_name(self) -> str:
        """Return the state as sendq(5) names it."""
        known = 0 <= self.state < len(STATE_NAMES)
        return STATE_NAMES[self.state] if known else f"state {self.state}"


def read_qfile_status(job: str, tags: dict[str, str]) -> JobStatus:
    """Return the JobStatus the qfile TAGS describe."""
    return JobStatus(
        job=job,
        state=read_int(tags, "state") or 0,
        status=tags.get("status", ""),
        npages=read_int(tags, "npages"),
        totdials=read_int(tags, "totdials") or read_int(tags, "ndials") or 0,
        tottries=read_int(tags, "tottries") or 0,
        remote_station=tags.get("csi", ""),
    )


def read_spool_status(spool: str, job: str) -> JobStatus | None:
    """Return JOB's status from its qfile in SPOOL, or None when none is readable."""
    for queue in ("doneq", "sendq"):
        path = os.path.join(spool, queue, "q" + job)
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                tags = parse_qfile(handle.read(MAX_QFILE_BYTES))
        except OSError:
            continue
        if tags.get("jobid", job) == job:
            return read_qfile_status(job, tags)
    return None


def parse_faxstat(output: str, job: str) -> JobStatus | None:
    """Return JOB's row of ``faxstat -s -d`` OUTPUT, or None when it is not listed."""
    for line in output.splitlines():
        row = FAXSTAT_ROW.fullmatch(line)
        if row is None or row["job"] != job:
            continue
        tail = COMPACT_TIME.sub("", row["tail"].strip(), count=1)
        return JobStatus(
            job=job,
            state=STATE_LETTERS.index(row["letter"]),
            status=tail.strip(),
            npages=int(row["npages"]),
            totdials=int(row["totdials"]),
        )
    return None


def make_result(status: JobStatus) -> TransmitResult:
    """Return the TransmitResult for a job in STATUS."""
    job = status.job
    attempts = max(status.totdials, status.tottries) or None
    text = status.status[:MAX_REASON]
    if status.state == DONE:
        return TransmitResult(
            status="sent",
            reason=f"sent by HylaFAX (job {job})",
            pages=status.npages,
            attempts=attempts or 1,
            remote_station=status.remote_station[:64],
        )
    if status.state == FAILED:
        if KILLED.search(text):
            reason = f"killed in HylaFAX (job {job}): {text}"
        else:
            reason = f"{text or 'failed'} (HylaFAX job {job})"
        return TransmitResult(status="failed", reason=reason, attempts=attempts)
    if status.state in WAITING_STATES and attempts and text:
        reason = f"{text} (HylaFAX job {job} requeued)"
        return TransmitResult(status="retry", reason=reason, attempts=attempts)
    reason = f"HylaFAX job {job} is {status.state_name}"
    return TransmitResult(status="pending", reason=reason)
