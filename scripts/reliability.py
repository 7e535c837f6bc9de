"""Feed ums while killing `ums serve`, then count every message handed in.

Run ``python scripts/reliability.py [--messages N] [--kills K] [--mails M]
[--seed S]``. Each scenario gets its own temporary instance in mailserver mode and
its own loopback SMTP server; everything talks to 127.0.0.1 only. Exit status 1
when a scenario fails (a message lost, a job still queued, an unexpected
duplicate or error). The crash scenarios are here; the mail-server faults and
the full disk are in reliability_faults.py, the sink, `ums serve` and the
counting in reliability_harness.py, the scripted SMTP server in fault_smtp.py.
"""

from __future__ import annotations

import argparse
import collections
import random
import smtplib
import sys
import tempfile
import threading
import time
from email import policy
from email.message import EmailMessage

from fault_smtp import FAULTS
from reliability_faults import (
    run_451_then_250,
    run_550_recipient,
    run_disk_full,
    run_fault,
    run_refused_connections,
)
from reliability_harness import (
    DRAIN_SECONDS,
    Outcome,
    Serve,
    Sink,
    check_crash_window,
    check_leftovers,
    collect_log,
    create_home,
    feed_inputs,
    finish_count,
    pick_free_port,
    plan_inputs,
    print_report,
    read_json,
    wait_drained,
    write_samples,
)

FAX_DOMAIN = "fax.example.test"
SMS_DOMAIN = "sms.example.test"
GATEWAY_TRIES = 200
GATEWAY_PAUSE = 0.25


def run_crash_restart(root: str, messages: int, kills: int, rng) -> Outcome:
    """Feed MESSAGES while SIGKILLing `ums serve` KILLS times; count them."""
    outcome = Outcome("crash-restart (spool + CLI)", duplicates_allowed=True)
    kill_after = set(rng.sample(range(messages), min(kills, messages)))
    sink = Sink()
    sink.start()
    serve = None
    try:
        home = create_home(root, sink)
        samples = write_samples(root)
        serve = Serve(home)
        serve.start()

        def maybe_kill(index: int) -> None:
            if index in kill_after:
                time.sleep(rng.uniform(0.0, 1.0))
                serve.kill()
                serve.start()

        plan = plan_inputs(messages, rng, "crash")
        tokens = feed_inputs(home, samples, plan, outcome, maybe_kill)
        outcome.queued = wait_drained(home)
    finally:
        if serve is not None:
            serve.stop()
            outcome.kill_times = serve.kill_times
        sink.stop()
    finish_count(home, sink, tokens, outcome)
    return outcome


def gateway_settings(port: int) -> dict:
    """Return the settings that turn the gateway on at 127.0.0.1:PORT."""
    return {
        "gateway.fax_domain": FAX_DOMAIN,
        "gateway.sms_domain": SMS_DOMAIN,
        "gateway.listen": f"127.0.0.1:{port}",
        "transmit.backend": "simulation",
    }


def gateway_mail(token: str, kind: str, index: int) -> tuple[str, str, bytes]:
    """Return (sender, recipient, wire bytes) of one outgoing mail for TOKEN."""
    sender = "alice@example.test" if index % 2 else "bob@example.test"
    domain = FAX_DOMAIN if kind == "fax" else SMS_DOMAIN
    number = f"+4930555{index % 1000:03d}" if kind == "fax" else "+491701239999"
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = f"{number}@{domain}"
    mail["Subject"] = token
    mail["Message-ID"] = f"<{token}@client.example.test>"
    mail.set_content(f"reliability {token}\n")
    return sender, mail["To"], mail.as_bytes(policy=policy.SMTP)


def send_until_250(port: int, sender: str, rcpt: str, data: bytes) -> str:
    """Hand DATA to the gateway until it answers 250; return '', 'retried' or why.

    This is what a mail server does: the same bytes again after a refused
    connection, a cut session or a 4xx, so a retry can be recognised.
    """
    error = ""
    for tries in range(GATEWAY_TRIES):
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
                smtp.sendmail(sender, [rcpt], data)
            return "" if tries == 0 else "retried"
        except smtplib.SMTPResponseException as exc:
            error = f"{exc.smtp_code} {exc.smtp_error!r}"
            if exc.smtp_code >= 500:
                return error
        except (smtplib.SMTPException, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        time.sleep(GATEWAY_PAUSE)
    return f"no 250 after {GATEWAY_TRIES} tries: {error}"


def run_gateway_crash_restart(root: str, mails: int, kills: int, rng) -> Outcome:
    """Send MAILS through the gateway while SIGKILLing `ums serve`; count them.

    The mails go out from a thread, as a mail server would send them; the
    kills come at random moments meanwhile, so some cut a session short.
    """
    outcome = Outcome("crash-restart (gateway)", duplicates_allowed=True)
    sink = Sink()
    sink.start()
    port = pick_free_port()
    serve, tokens = None, []
    try:
        home = create_home(root, sink, gateway_settings(port))
        serve = Serve(home)
        serve.start()
        sender = threading.Thread(
            target=send_gateway_mails, args=(port, mails, tokens, outcome)
        )
        sender.start()
        for _ in range(kills):
            time.sleep(rng.uniform(0.1, 1.2))
            serve.kill()
            serve.start()
        sender.join(timeout=DRAIN_SECONDS * 2)
        outcome.inputs = len(tokens)
        outcome.queued = wait_drained(home)
    finally:
        if serve is not None:
            serve.stop()
            outcome.kill_times = serve.kill_times
        sink.stop()
    count_gateway(home, sink, tokens, outcome)
    return outcome


def send_gateway_mails(port: int, mails: int, tokens: list, outcome: Outcome):
    """Send MAILS mails; add the token of each one that got a 250 to TOKENS."""
    retried = 0
    for index in range(mails):
        token = f"gw-{index}"
        kind = "fax" if index % 3 == 0 else "sms"
        error = send_until_250(port, *gateway_mail(token, kind, index))
        if error == "retried":
            retried += 1
        elif error:
            outcome.errors.append(f"{token}: {error}")
        if error in ("", "retried"):
            tokens.append(token)
    outcome.notes.append(f"{retried} mails were handed over again after a failure")


def count_gateway(home, sink, tokens, outcome: Outcome) -> None:
    """Record mails that got 250 but were not transmitted and reported once."""
    rows = read_json(home, "messages", "list", "--limit", "100000")
    by_subject = collections.defaultdict(list)
    for row in rows:
        if row["direction"] == "outbound":
            by_subject[row["subject"]].append(row)
    reports = collections.Counter(mail.msgid for mail in sink.snapshot())
    for token in tokens:
        found = by_subject.get(token, [])
        if len(found) != 1:
            outcome.errors.append(f"{token}: {len(found)} outbound messages, not 1")
        if not found or found[0]["state"] != "sent":
            state = found[0]["state"] if found else "none"
            outcome.lost.append(f"{token} (got 250; state {state})")
            continue
        marker = f".report{found[0]['id']}@"
        sent = {m: n for m, n in reports.items() if marker in m}
        if not sent:
            outcome.lost.append(f"{token} (msg {found[0]['id']}: no send report)")
        outcome.duplicated += [m for m, n in sent.items() if n > 1]
    check_crash_window(sink.snapshot(), outcome)
    check_leftovers(home, outcome)
    collect_log(home, outcome, {})


def run_all(messages: int, kills: int, mails: int, seed: int) -> list[Outcome]:
    """Run every scenario in its own temporary folder."""
    rng = random.Random(seed)
    steps = [
        lambda root: run_crash_restart(root, messages, kills, rng),
        lambda root: run_gateway_crash_restart(root, mails, kills, rng),
        lambda root: run_refused_connections(root, rng),
        lambda root: run_451_then_250(root, rng),
        lambda root: run_550_recipient(root, rng),
        lambda root: run_disk_full(root, rng),
    ]
    steps += [
        (lambda root, fault=fault: run_fault(root, fault, rng))
        for fault in FAULTS
        if fault != "refuse"
    ]
    outcomes = []
    for step in steps:
        with tempfile.TemporaryDirectory(prefix="ums-reliability-") as root:
            outcomes.append(step(root))
    return outcomes


def main(argv=None) -> int:
    """Run the scenarios, print the report, return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--mails", type=int, default=150)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args(argv)
    outcomes = run_all(args.messages, args.kills, args.mails, args.seed)
    print_report(outcomes)
    print(f"\nseed {args.seed}")
    return 0 if all(outcome.passed for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
