"""The mail-server fault and disk-full scenarios of scripts/reliability.py."""

from __future__ import annotations

import email
import os
import resource
import time
from email import policy

from fault_smtp import FaultServer
from reliability_harness import (
    DEFAULT_RECIPIENT,
    KINDS,
    SCHEDULE_LENGTH,
    Outcome,
    Received,
    Serve,
    Sink,
    check_failed_message,
    check_leftovers,
    count_pending,
    create_home,
    feed_inputs,
    finish_count,
    map_tokens,
    read_json,
    users_for,
    wait_drained,
    write_samples,
)

from ums_core.samples import write_wav

FAULT_SCHEDULE = "1s,1s,2s"
FAULT_ATTEMPTS = 4
DISK_FULL_LIMIT = 256 * 1024
DISK_FULL_SECONDS = 4.0
DISK_FULL_DRAIN = 60.0


def watch_attempts(home: str, seconds: float, outcome: Outcome) -> int:
    """Poll the queue for SECONDS; return the most attempts any job had."""
    deadline = time.monotonic() + seconds
    most = 0
    while time.monotonic() < deadline:
        jobs = [j for j in read_json(home, "queue", "list") if j["kind"] == "send_mail"]
        most = max([most, *(job["attempts"] for job in jobs)])
        if jobs and min(job["attempts"] for job in jobs) >= 2:
            break
        time.sleep(0.5)
    if most > SCHEDULE_LENGTH + 1:
        outcome.errors.append(f"a job was tried {most} times (busy loop)")
    if most < 2:
        outcome.errors.append("no job was retried while the mail server was down")
    return most


def run_with_sink(root, name, pairs, rng, prepare, during=None) -> tuple:
    """Feed PAIRS as spool messages to a fresh instance; PREPARE sets up the sink."""
    outcome = Outcome(name)
    sink = Sink()
    sink.start()
    serve = None
    try:
        home = create_home(root, sink)
        samples = write_samples(root)
        prepare(sink)
        serve = Serve(home)
        serve.start()
        plan = [(f"{name[:8]}-{i}", KINDS[i % 3], user, False) for i, user in pairs]
        tokens = feed_inputs(home, samples, plan, outcome)
        if during is not None:
            during(home, sink, outcome)
        outcome.queued = wait_drained(home)
    finally:
        if serve is not None:
            serve.stop()
        sink.stop()
    return outcome, home, sink, tokens


def run_refused_connections(root: str, rng) -> Outcome:
    """Stop the sink, feed, see bounded retries, start it, expect one each."""

    def come_back(home, sink, outcome):
        watch_attempts(home, 30.0, outcome)
        sink.start()

    outcome, home, sink, tokens = run_with_sink(
        root,
        "mail server refuses connections, then comes back",
        users_for(6),
        rng,
        lambda sink: sink.stop(),
        come_back,
    )
    finish_count(home, sink, tokens, outcome)
    return outcome


def run_451_then_250(root: str, rng) -> Outcome:
    """Answer 451 to each mail's first DATA, then 250; expect one each."""

    def defer(sink):
        sink.first_data_reply = "451 4.3.0 try again later"

    outcome, home, sink, tokens = run_with_sink(
        root, "mail server answers 451 then 250", users_for(6), rng, defer
    )
    finish_count(home, sink, tokens, outcome)
    if len(sink.deferred) < len(tokens):
        outcome.errors.append(f"only {len(sink.deferred)} mails saw the 451")
    return outcome


def run_550_recipient(root: str, rng) -> Outcome:
    """Refuse one recipient with 550; expect failed, kept and a notice each."""

    def refuse(sink):
        sink.rcpt_refusals["bob@example.test"] = "550 5.1.1 no such user"

    outcome, home, sink, tokens = run_with_sink(
        root,
        "mail server answers 550 for the recipient",
        users_for(3, "bob@example.test"),
        rng,
        refuse,
    )
    by_token = map_tokens(home)
    notices = {
        mail.msgid for mail in sink.snapshot() if DEFAULT_RECIPIENT in mail.recipients
    }
    outcome.lost = [e for t in tokens if (e := lost_550(t, by_token, notices))]
    check_leftovers(home, outcome, failed_allowed=True)
    outcome.errors += [
        e for t in tokens for e in check_failed_message(home, root, t, by_token.get(t))
    ]
    return outcome


def lost_550(token: str, by_token: dict, notices: set[str]) -> str:
    """Return why TOKEN counts as lost in the 550 scenario, or ''."""
    rows = by_token.get(token, [])
    if not rows:
        return f"{token} (no message in the database)"
    told = any(f".failed{rows[0]['id']}@" in msgid for msgid in notices)
    return "" if told else f"{token} (msg {rows[0]['id']}: no notice received)"


class FaultSink:
    """A FaultServer seen as a Sink: the mails it accepted, for the count."""

    def __init__(self, server: FaultServer):
        self.server = server
        self.port = server.port

    def snapshot(self) -> list[Received]:
        """Return the mails the fault server accepted."""
        received = []
        for item in self.server.accepted():
            mail = email.message_from_bytes(item.data, policy=policy.default)
            msgid = str(mail["Message-ID"] or "").strip()
            ums_message = str(mail["X-UMS-Message"] or "")
            received.append(Received(msgid, ums_message, tuple(item.rcpts), item.at))
        return received


def run_fault(root: str, fault: str, rng) -> Outcome:
    """Feed three messages against the mail-server FAULT; count them."""
    permanent = fault in ("550-rcpt", "552-data", "554-data")
    times = None if permanent or fault == "no-starttls" else 2
    target = "alice@example.test" if fault.endswith(("-rcpt", "-data")) else None
    server = FaultServer(fault, target=target, times=times, stall=4.0)
    server.start()
    sink = FaultSink(server)
    extra = {"retry.schedule": FAULT_SCHEDULE, "smtp.timeout": "2"}
    if fault == "no-starttls":
        extra["smtp.starttls"] = "required"
    outcome = Outcome(f"mail server fault: {fault}")
    serve = None
    try:
        home = create_home(root, sink, extra)
        samples = write_samples(root)
        serve = Serve(home)
        serve.start()
        plan = [
            (f"{fault}-{i}", KINDS[i], "alice@example.test", False) for i in range(3)
        ]
        tokens = feed_inputs(home, samples, plan, outcome)
        outcome.queued = wait_drained(home, 60.0)
    finally:
        if serve is not None:
            serve.stop()
        server.stop()
    check_attempts(home, outcome)
    outcome.notes.append(f"the mail server saw {server.connections} connections")
    if fault == "no-starttls":
        count_kept(home, root, sink, tokens, outcome, told=False)
        if "MAIL" in server.commands:
            outcome.errors.append("a mail was sent although STARTTLS was missing")
    elif permanent:
        count_kept(home, root, sink, tokens, outcome, told=True)
    else:
        finish_count(home, sink, tokens, outcome)
    return outcome


def run_disk_full(root: str, rng) -> Outcome:
    """Feed messages while no file may grow past 256 KiB, then lift the limit.

    The limit is lifted from outside (prlimit) while `ums serve` runs on, as
    when an admin frees space: the work must go on without a restart.
    """
    outcome = Outcome("disk full (RLIMIT_FSIZE), then space returns")
    sink = Sink()
    sink.start()
    serve = None
    try:
        home = create_home(root, sink)
        samples = write_samples(root)
        write_wav(samples["voice"], seconds=30.0)
        serve = Serve(home)
        serve.file_limit = DISK_FULL_LIMIT
        serve.start()
        plan = [
            (f"full-{i}", KINDS[i % 3], "alice@example.test", False) for i in range(9)
        ]
        tokens = feed_inputs(home, samples, plan, outcome)
        time.sleep(DISK_FULL_SECONDS)
        waiting = count_pending(home)
        unlimited = resource.RLIM_INFINITY
        limits = (unlimited, unlimited)
        resource.prlimit(serve.proc.pid, resource.RLIMIT_FSIZE, limits)
        outcome.queued = wait_drained(home, DISK_FULL_DRAIN)
    finally:
        if serve is not None:
            serve.stop()
        sink.stop()
    if not waiting:
        outcome.errors.append("nothing waited while the disk was full")
    outcome.notes.append(f"{waiting} messages or jobs waited while the disk was full")
    outcome.errors += [f"partial file left: {p}" for p in find_partial_files(home)]
    finish_count(home, sink, tokens, outcome)
    return outcome


def find_partial_files(home: str) -> list[str]:
    """Return the temporary files a failed write left behind."""
    found = []
    for folder, _, names in os.walk(home):
        found += [os.path.join(folder, n) for n in names if n.endswith(".part")]
    return found


def check_attempts(home: str, outcome: Outcome) -> None:
    """Record as errors jobs tried more often than the schedule allows."""
    jobs = read_json(home, "queue", "list", "--all")
    for job in jobs:
        if job["attempts"] > FAULT_ATTEMPTS:
            outcome.errors.append(f"job {job['id']} tried {job['attempts']} times")
    most = max(
        (job["attempts"] for job in jobs if job["kind"] == "send_mail"), default=0
    )
    outcome.notes.append(
        f"most attempts of one mail: {most} (at most {FAULT_ATTEMPTS})"
    )


def count_kept(home, root, sink, tokens, outcome: Outcome, told: bool) -> None:
    """Count failed messages: each kept, and (when TOLD) its notice received."""
    by_token = map_tokens(home)
    notices = {
        mail.msgid for mail in sink.snapshot() if DEFAULT_RECIPIENT in mail.recipients
    }
    for token in tokens:
        rows = by_token.get(token)
        outcome.errors += check_failed_message(home, root, token, rows)
        if not rows:
            outcome.lost.append(f"{token} (no message in the database)")
        elif told and not any(f".failed{rows[0]['id']}@" in m for m in notices):
            outcome.lost.append(f"{token} (msg {rows[0]['id']}: no notice received)")
    check_leftovers(home, outcome, failed_allowed=True)
