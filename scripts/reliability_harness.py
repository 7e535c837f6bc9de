"""The harness of scripts/reliability.py: the sink, `ums serve`, feeding, counting."""

from __future__ import annotations

import collections
import dataclasses
import email
import json
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from email import policy

from aiosmtpd.controller import Controller

from ums_core.app import create_instance
from ums_core.samples import write_fax_tiff, write_wav
from ums_core.spool import spool_folder, submit_to_spool

UMS = [sys.executable, "-c", "from ums_core.cli import main; main()"]
SCHEDULE = "1s,2s,2s,5s"
SCHEDULE_LENGTH = 4
DEFAULT_RECIPIENT = "office@example.test"
CALLER = "+4930555010"
USERS = {
    "alice@example.test": ("+4989123456", "+4989123457", "+491701234567"),
    "bob@example.test": ("+4989123460", "+4989123461", "+491701234568"),
}
KINDS = ("fax", "voice", "sms")
DRAIN_SECONDS = 120.0
COMMAND_SECONDS = 60.0


@dataclasses.dataclass(frozen=True)
class Received:
    """One mail the sink accepted."""

    msgid: str
    ums_message: str
    recipients: tuple[str, ...]
    at: float
    started: float | None = None  # when the client began this mail (MAIL FROM)


class Sink:
    """A loopback SMTP server that records mails and can refuse them."""

    def __init__(self):
        self.port = pick_free_port()
        self.received: list[Received] = []
        self.rcpt_refusals: dict[str, str] = {}
        self.first_data_reply = ""
        self.deferred: set[str] = set()
        self.lock = threading.Lock()
        self.controller = None

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        envelope.ums_started = time.monotonic()
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.rcpt_refusals:
            return self.rcpt_refusals[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        mail = email.message_from_bytes(
            envelope.original_content, policy=policy.default
        )
        msgid = str(mail["Message-ID"] or "").strip()
        with self.lock:
            if self.first_data_reply and msgid not in self.deferred:
                self.deferred.add(msgid)
                return self.first_data_reply
            ums_message = str(mail["X-UMS-Message"] or "")
            self.received.append(
                Received(
                    msgid,
                    ums_message,
                    tuple(envelope.rcpt_tos),
                    time.monotonic(),
                    getattr(envelope, "ums_started", None),
                )
            )
        return "250 Message accepted"

    def start(self) -> None:
        """Listen on 127.0.0.1 at the sink's port."""
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        """Stop listening, so connections are refused."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def snapshot(self) -> list[Received]:
        """Return the mails accepted so far."""
        with self.lock:
            return list(self.received)


class Serve:
    """One `ums serve` process at a time for an instance."""

    def __init__(self, home: str):
        self.home = home
        self.proc = None
        self.kill_times: list[float] = []
        self.stderr_path = os.path.join(home, "..", "serve.stderr")
        self.file_limit = None

    def start(self) -> None:
        """Start `ums serve` as a separate process (no file past file_limit)."""
        with open(self.stderr_path, "ab") as stderr:
            self.proc = subprocess.Popen(
                [*UMS, "--home", self.home, "serve"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                preexec_fn=self._limit_files if self.file_limit else None,
            )

    def _limit_files(self) -> None:
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.file_limit, hard))

    def kill(self) -> None:
        """SIGKILL the process and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.kill_times.append(time.monotonic())
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        """Stop the process with SIGTERM, or SIGKILL when it does not end."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()


@dataclasses.dataclass
class Outcome:
    """The count of one scenario against what was handed in."""

    scenario: str
    inputs: int = 0
    lost: list[str] = dataclasses.field(default_factory=list)
    duplicated: list[str] = dataclasses.field(default_factory=list)
    duplicates_allowed: bool = False
    queued: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)
    log_lines: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    kill_times: list[float] = dataclasses.field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Say whether the scenario met every rule."""
        unexpected = self.duplicated and not self.duplicates_allowed
        return not (self.lost or self.queued or self.errors or unexpected)


def pick_free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_ums(home: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run one `ums --home HOME` command and return its result."""
    result = subprocess.run(
        [*UMS, "--home", home, *args],
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
        stdin=subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"ums {' '.join(args)}: {result.stderr.strip()}")
    return result


def read_json(home: str, *args: str) -> list:
    """Return the JSON printed by a `ums ... --json` command."""
    return json.loads(run_ums(home, *args, "--json").stdout or "[]")


def create_home(root: str, sink, extra: dict | None = None) -> str:
    """Create an instance in mailserver mode that delivers to SINK."""
    home = os.path.join(root, "home")
    config = create_instance(home)
    settings = {
        "mode": "mailserver",
        "default_recipient": DEFAULT_RECIPIENT,
        "system_sender": "ums <ums@example.test>",
        "site.area_code": "89",
        "smtp.host": "127.0.0.1",
        "smtp.port": str(sink.port),
        "smtp.starttls": "off",
        "smtp.timeout": "10",
        "retry.schedule": SCHEDULE,
        "spool.poll": "0.2",
        **(extra or {}),
    }
    for key, value in settings.items():
        config.set(key, value)
    config.save()
    for address, (fax, voice, sms) in USERS.items():
        run_ums(
            home, "users", "add", address, "--fax", fax, "--voice", voice, "--sms", sms
        )
    return home


def write_samples(root: str) -> dict[str, str]:
    """Write one fax and one voice file to hand in again and again."""
    paths = {"fax": os.path.join(root, "fax.tif"), "voice": os.path.join(root, "v.wav")}
    write_fax_tiff(paths["fax"], "reliability run", pages=1)
    write_wav(paths["voice"], seconds=1.0)
    return paths


def called_number(user: str, kind: str) -> str:
    """Return USER's number for messages of KIND."""
    return USERS[user][KINDS.index(kind)]


def feed_spool(home, samples, token: str, kind: str, user: str) -> None:
    """Hand one message to the spool, tagged with TOKEN as the caller's name."""
    meta = {"kind": kind, "from": CALLER, "to": called_number(user, kind)}
    meta["name"] = token
    if kind == "sms":
        meta["text"] = f"reliability {token}"
    submit_to_spool(home, meta, samples.get(kind))


def feed_cli(home, samples, token: str, kind: str, user: str) -> str:
    """Hand one message to `ums receive`; return an error or ''."""
    args = ["receive", kind]
    if kind != "sms":
        args.append(samples[kind])
    args += ["--from", CALLER, "--to", called_number(user, kind), "--name", token]
    if kind == "sms":
        args += ["--text", f"reliability {token}"]
    result = run_ums(home, *args, check=False)
    if result.returncode != 0:
        return f"{token}: ums receive exit {result.returncode}: {result.stderr[-200:]}"
    return ""


def count_pending(home: str) -> int:
    """Return the jobs queued or running plus the spool entries not taken.

    The spool is read first: an entry is removed only after its job is
    committed, so this order cannot miss a message moving between the two.
    """
    waiting = [n for n in os.listdir(spool_folder(home, "new")) if n.endswith(".json")]
    jobs = read_json(home, "queue", "list")
    busy = [job for job in jobs if job["state"] in ("queued", "running")]
    return len(busy) + len(waiting)


def wait_drained(home: str, seconds: float = DRAIN_SECONDS) -> int:
    """Wait until nothing is pending or SECONDS passed; return what still is."""
    deadline = time.monotonic() + seconds
    pending = count_pending(home)
    while pending and time.monotonic() < deadline:
        time.sleep(1.0)
        pending = count_pending(home)
    return pending


def map_tokens(home: str) -> dict[str, list[dict]]:
    """Return the inbound messages by the token in their caller's name."""
    rows = read_json(home, "messages", "list", "--limit", "100000")
    by_token = collections.defaultdict(list)
    for row in rows:
        by_token[row["sender_name"]].append(row)
    return by_token


def count_deliveries(home, sink, tokens, outcome: Outcome) -> dict[str, list[dict]]:
    """Record lost and duplicated messages of TOKENS in OUTCOME."""
    by_token = map_tokens(home)
    mails = collections.defaultdict(list)
    for mail in sink.snapshot():
        if mail.ums_message:
            mails[mail.ums_message].append(mail.msgid)
    for token in tokens:
        rows = by_token.get(token, [])
        if len(rows) > 1:
            outcome.duplicated += [f"{token} taken in {len(rows)} times"]
        sent = [msgid for row in rows for msgid in mails[str(row["id"])]]
        if not sent:
            outcome.lost.append(describe_lost(token, rows))
        outcome.duplicated += sorted(set(m for m in sent if sent.count(m) > 1))
    check_crash_window(sink.snapshot(), outcome)
    return by_token


def check_crash_window(received: list[Received], outcome: Outcome) -> None:
    """Record as errors the duplicates that no SIGKILL came between.

    The window opens when ums began the first copy (MAIL FROM), not when the
    sink accepted it: a SIGKILL after ums sent the final dot but before it
    read the 250 lands before the sink's acceptance, and is the allowed case.
    """
    for msgid in outcome.duplicated:
        copies = [mail for mail in received if mail.msgid == msgid]
        if not copies:
            continue
        first = min(mail.started or mail.at for mail in copies)
        last = max(mail.at for mail in copies)
        if not any(first <= kill <= last for kill in outcome.kill_times):
            outcome.errors.append(f"{msgid} delivered twice with no crash between")


def describe_lost(token: str, rows: list[dict]) -> str:
    """Return how a lost message looks in the database."""
    if not rows:
        return f"{token} (no message in the database)"
    return f"{token} (msg {rows[0]['id']}, state {rows[0]['state']})"


def check_leftovers(home: str, outcome: Outcome, failed_allowed=False) -> None:
    """Record refused spool entries and failed jobs as errors."""
    bad = [n for n in os.listdir(spool_folder(home, "bad")) if n.endswith(".json")]
    outcome.errors += [f"spool entry refused: {name}" for name in bad]
    if not failed_allowed:
        for job in read_json(home, "queue", "list"):
            if job["state"] == "failed":
                outcome.errors.append(f"job {job['id']} failed: {job['last_error']}")


def collect_log(home: str, outcome: Outcome, by_token: dict) -> None:
    """Keep the ums.log lines of the messages that were lost or duplicated."""
    suspects = {token.split()[0] for token in outcome.lost + outcome.duplicated}
    ids = {f"msg {row['id']}:" for t in suspects for row in by_token.get(t, [])}
    duplicated_ids = {m for m in outcome.duplicated if m.startswith("<")}
    path = os.path.join(home, "log", "ums.log")
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if any(key in line for key in ids) or any(
                m in line for m in duplicated_ids
            ):
                outcome.log_lines.append(line.rstrip())
    del outcome.log_lines[:-40]


def plan_inputs(count: int, rng: random.Random, tag: str) -> list[tuple]:
    """Return (token, kind, user, via_cli) for COUNT messages."""
    return [
        (f"{tag}-{index}", KINDS[index % 3], "alice@example.test", rng.random() < 0.2)
        for index in range(count)
    ]


def feed_inputs(home, samples, plan, outcome: Outcome, on_each=None) -> list[str]:
    """Hand in every planned message; return the tokens handed in."""
    tokens = []
    for index, (token, kind, user, via_cli) in enumerate(plan):
        if via_cli:
            error = feed_cli(home, samples, token, kind, user)
        else:
            error = ""
            feed_spool(home, samples, token, kind, user)
        if error:
            outcome.errors.append(error)
        else:
            tokens.append(token)
        if on_each is not None:
            on_each(index)
    outcome.inputs = len(tokens)
    return tokens


def finish_count(home, sink, tokens, outcome, failed_allowed=False) -> dict:
    """Count deliveries, leftovers and log lines into OUTCOME."""
    by_token = count_deliveries(home, sink, tokens, outcome)
    check_leftovers(home, outcome, failed_allowed)
    collect_log(home, outcome, by_token)
    return by_token


def users_for(count: int, user: str = "alice@example.test") -> list[tuple]:
    """Return COUNT (index, user) pairs."""
    return [(index, user) for index in range(count)]


def check_failed_message(home, root, token, rows) -> list[str]:
    """Return what is wrong with a refused message: its state or its content."""
    if not rows:
        return []
    row = rows[0]
    errors = []
    if row["state"] != "failed":
        errors.append(f"msg {row['id']} is {row['state']}, not failed")
    if row["kind"] != "sms":
        folder = os.path.join(root, f"export-{row['id']}")
        result = run_ums(
            home, "messages", "export", str(row["id"]), folder, check=False
        )
        if result.returncode != 0 or not os.listdir(folder):
            errors.append(f"msg {row['id']}: content not kept ({result.stderr[-120:]})")
    return errors


def format_duplicated(outcome: Outcome) -> str:
    """Return the duplicated cell: the count and whether it is allowed."""
    if not outcome.duplicated:
        return "0"
    cause = "crash window" if outcome.duplicates_allowed else "NOT allowed"
    return f"{len(outcome.duplicated)} ({cause})"


def print_report(outcomes: list[Outcome]) -> None:
    """Print the table, then the Message-IDs and errors behind it."""
    header = ("scenario", "inputs", "lost", "duplicated", "queued", "errors", "result")
    rows = [header] + [
        (
            o.scenario,
            str(o.inputs),
            str(len(o.lost)),
            format_duplicated(o),
            str(o.queued),
            str(len(o.errors)),
            "PASS" if o.passed else "FAIL",
        )
        for o in outcomes
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print(
            "  ".join(
                cell.ljust(width) for cell, width in zip(row, widths, strict=True)
            )
        )
    for outcome in outcomes:
        print_details(outcome)


def print_details(outcome: Outcome) -> None:
    """Print the lost and duplicated messages and errors of one scenario."""
    lines = [f"note: {item}" for item in outcome.notes]
    lines += [f"lost: {item}" for item in outcome.lost]
    lines += [f"duplicated: {item}" for item in outcome.duplicated]
    lines += [f"error: {item}" for item in outcome.errors]
    lines += [f"log: {line}" for line in outcome.log_lines]
    if lines:
        print(f"\n{outcome.scenario}:")
        for line in lines:
            print(f"  {line}")
