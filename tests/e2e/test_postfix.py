"""End to end with a real Postfix: e-mail to fax, fax to e-mail, unknown senders.

A private Postfix on 127.0.0.1 delivers ``example.test`` into Maildirs and routes
the fax and SMS domains to the gateway of a running ``ums serve``. Skipped when
Postfix is not installed (or not run as root); with ``CI=true`` that fails.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage

import attrs
import pytest
from conftest import init_options
from PIL import Image, ImageDraw
from pypdf import PdfReader

from ums_core.samples import write_fax_tiff

from .postfix import PostfixInstance, find_postfix, wait_for_banner

ALICE = "alice@example.test"
OFFICE = "office@example.test"
POSTMASTER = "postmaster@example.test"
MALLORY = "mallory@example.org"
ALICE_FAX = "+4989123456"
REMOTE_FAX = "+4930555010"
FAX_DOMAIN = "fax.example.test"
SMS_DOMAIN = "sms.example.test"
WAIT_SECONDS = 60
STOP_SECONDS = 10


@attrs.define
class Stack:
    """The running Postfix and ``ums serve``, and where their logs are."""

    base: str
    postfix: PostfixInstance
    home: str
    serve_log: str
    serve: subprocess.Popen | None = None


def explain_missing_postfix() -> str:
    """Return why a private Postfix cannot run here, or '' when it can."""
    if find_postfix() is None:
        return "postfix is not installed (run scripts/ci-install.sh)"
    if os.geteuid() != 0:
        return "a private Postfix instance needs root"
    return ""


def pick_ports(count: int) -> list[int]:
    """Return COUNT distinct TCP ports on 127.0.0.1 that were free a moment ago."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def ums_command() -> list[str]:
    """Return the command that runs the ums CLI of this interpreter."""
    script = os.path.join(os.path.dirname(sys.executable), "ums")
    if os.access(script, os.X_OK):
        return [script]
    return [sys.executable, "-c", "from ums_core.cli import main; main()"]


def run_ums(home: str, *args: str) -> str:
    """Run ``ums --home HOME ARGS``; return its stdout, failing on an error."""
    done = subprocess.run(
        [*ums_command(), "--home", home, *args],
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(
            f"ums {' '.join(args)} exited {done.returncode}:\n"
            f"{done.stdout}{done.stderr}"
        )
    return done.stdout


def configure_ums(home: str, postfix: PostfixInstance) -> None:
    """Create the ums instance at HOME in mailserver mode behind POSTFIX."""
    run_ums(home, "init", *init_options(keep=True))
    run_ums(home, "mode", "mailserver")
    settings = {
        "smtp.host": "127.0.0.1",
        "smtp.port": str(postfix.port),
        "smtp.starttls": "off",
        "gateway.listen": f"127.0.0.1:{postfix.gateway_port}",
        "gateway.fax_domain": FAX_DOMAIN,
        "gateway.sms_domain": SMS_DOMAIN,
        "transmit.backend": "simulation",
        "default_recipient": OFFICE,
        "system_sender": "Fax Service <fax@example.test>",
        "spool.poll": "0.2s",
        "info_mails": "true",
    }
    for key, value in settings.items():
        run_ums(home, "config", "set", key, value)
    run_ums(home, "users", "add", ALICE, "--fax", ALICE_FAX, "--lang", "de")


def start_serve(stack: Stack) -> None:
    """Start ``ums serve`` and wait until its gateway answers."""
    with open(stack.serve_log, "wb") as log:
        stack.serve = subprocess.Popen(
            [*ums_command(), "--home", stack.home, "serve"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    wait_for(lambda: gateway_answers(stack), "the gateway of ums serve", 20)


def gateway_answers(stack: Stack) -> bool:
    """Return True once the gateway greets; fail when ``ums serve`` has exited."""
    if stack.serve.poll() is not None:
        pytest.fail(f"ums serve exited with status {stack.serve.returncode}")
    try:
        wait_for_banner("127.0.0.1", stack.postfix.gateway_port, 0.1)
    except TimeoutError:
        return False
    return True


def stop_serve(serve: subprocess.Popen | None) -> None:
    """Stop ``ums serve`` if it still runs, killing it when SIGTERM is ignored."""
    if serve is None or serve.poll() is not None:
        return
    serve.terminate()
    try:
        serve.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        serve.kill()
        serve.wait(5)


def read_text(path: str) -> str:
    """Return the text of the file at PATH, or a note that it is missing."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError as exc:
        return f"({exc})"


def print_diagnostics(stack: Stack) -> None:
    """Print the Postfix log and queue and the ums logs (shown on failure)."""
    queue = stack.postfix.run_tool("postqueue", "-p")
    print(f"===== Postfix log {stack.postfix.log_path}")
    print(stack.postfix.read_log())
    print("===== postqueue -p")
    print(queue.stdout + queue.stderr)
    print(f"===== ums serve output {stack.serve_log}")
    print(read_text(stack.serve_log))
    print("===== ums log")
    print(read_text(os.path.join(stack.home, "log", "ums.log")))


@contextlib.contextmanager
def diagnostics_on_failure(stack: Stack):
    """Print the logs when the block raises, then let the error through."""
    try:
        yield
    except BaseException:
        print_diagnostics(stack)
        raise


def make_base() -> str:
    """Return a fresh temporary folder the virtual delivery agent can enter."""
    base = tempfile.mkdtemp(prefix="ums-e2e-")
    os.chmod(base, 0o755)
    return base


@pytest.fixture(scope="module")
def stack():
    reason = explain_missing_postfix()
    if reason:
        pytest.skip(reason)
    base = make_base()
    gateway_port, postfix_port = pick_ports(2)
    postfix = PostfixInstance(
        base=base,
        port=postfix_port,
        gateway_port=gateway_port,
        gateway_domains=(FAX_DOMAIN, SMS_DOMAIN),
        mailboxes=(ALICE, OFFICE, POSTMASTER),
    )
    running = Stack(base, postfix, os.path.join(base, "ums"), f"{base}/serve.log")
    try:
        with diagnostics_on_failure(running):
            postfix.write_config()
            postfix.start()
            configure_ums(running.home, postfix)
            start_serve(running)
        yield running
    finally:
        stop_serve(running.serve)
        postfix.stop()
        shutil.rmtree(base, ignore_errors=True)


def wait_for(check, what: str, timeout: float = WAIT_SECONDS):
    """Poll CHECK until it returns something true; fail after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.25)
    pytest.fail(f"waited {timeout:.0f}s in vain for {what}")


def make_pdf(text: str) -> bytes:
    """Return a one-page PDF (A4 at 72 dpi) with TEXT on it, made with Pillow."""
    page = Image.new("RGB", (595, 842), "white")
    ImageDraw.Draw(page).text((72, 72), text, fill="black")
    out = io.BytesIO()
    page.save(out, format="PDF", resolution=72.0)
    return out.getvalue()


def build_mail(sender: str, to: str, subject: str, pdf: bytes | None) -> EmailMessage:
    """Return an e-mail from SENDER to TO with a text body and maybe a PDF."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = subject
    mail.set_content("Please fax this page.\nThe end-to-end test of ums.\n")
    if pdf is not None:
        mail.add_attachment(
            pdf, maintype="application", subtype="pdf", filename="page.pdf"
        )
    return mail


def submit(postfix: PostfixInstance, sender: str, mail: EmailMessage) -> None:
    """Hand MAIL to Postfix over SMTP with envelope sender SENDER."""
    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=30) as client:
        client.send_message(mail, from_addr=sender, to_addrs=[mail["To"]])


def pdf_pages(message) -> list[int]:
    """Return the page count of every PDF attached to MESSAGE."""
    return [
        len(PdfReader(io.BytesIO(part.get_content())).pages)
        for part in message.iter_attachments()
        if part.get_content_type() == "application/pdf"
    ]


def sender_address(message) -> str:
    """Return the address of MESSAGE's From header, or ''."""
    addresses = message["From"].addresses if message["From"] else ()
    return addresses[0].addr_spec if addresses else ""


def find_new(postfix: PostfixInstance, address: str, seen: int, matches):
    """Return the first message after SEEN in ADDRESS's Maildir that MATCHES."""
    fresh = postfix.messages(address)[seen:]
    return next((message for message in fresh if matches(message)), None)


def list_messages(home: str) -> list[dict]:
    """Return ``ums messages list --json``."""
    return json.loads(run_ums(home, "messages", "list", "--json"))


def test_postfix_is_available():
    """Postfix is installed and usable; under CI=true its absence is a failure."""
    reason = explain_missing_postfix()
    if reason and os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true requires the Postfix end-to-end test")
    if reason:
        pytest.skip(reason)


def test_mail_to_fax_sends_report_with_document(stack):
    """An e-mail to FAX=... goes out and the sender gets the report with its PDF."""
    with diagnostics_on_failure(stack):
        seen = len(stack.postfix.messages(ALICE))
        pdf = make_pdf("Attached page of the e2e test")
        to = f"FAX={REMOTE_FAX}@{FAX_DOMAIN}"
        submit(stack.postfix, ALICE, build_mail(ALICE, to, "E2E Angebot", pdf))

        report = wait_for(
            lambda: find_new(
                stack.postfix, ALICE, seen, lambda m: m["Subject"].startswith("Fax an")
            ),
            f"the send report in {ALICE}'s Maildir",
        )
        assert pdf_pages(report) == [2], report["Subject"]
        sent = [
            m
            for m in list_messages(stack.home)
            if m["direction"] == "outbound" and m["called"] == REMOTE_FAX
        ]
        assert [(m["state"], m["pages"]) for m in sent] == [("sent", 2)]


def test_received_fax_reaches_mailbox_through_postfix(stack, tmp_path):
    """A received fax is mailed through Postfix From the caller's fax address."""
    with diagnostics_on_failure(stack):
        seen = len(stack.postfix.messages(ALICE))
        fax = tmp_path / "e2e.tif"
        write_fax_tiff(fax, "e2e", pages=2)
        run_ums(
            stack.home,
            "receive",
            "fax",
            str(fax),
            "--from",
            REMOTE_FAX,
            "--to",
            ALICE_FAX,
        )

        caller = f"{REMOTE_FAX}@{FAX_DOMAIN}"
        mail = wait_for(
            lambda: find_new(
                stack.postfix, ALICE, seen, lambda m: sender_address(m) == caller
            ),
            f"the fax from {caller} in {ALICE}'s Maildir",
        )
        assert pdf_pages(mail) == [2]


def test_unknown_sender_is_deleted_without_backscatter(stack):
    """Mail from an unknown sender is not sent; office is told, mallory is not."""
    with diagnostics_on_failure(stack):
        seen = len(stack.postfix.messages(OFFICE))
        to = f"FAX=+4930555011@{FAX_DOMAIN}"
        submit(stack.postfix, MALLORY, build_mail(MALLORY, to, "Cheap offer", None))

        notice = wait_for(
            lambda: find_new(
                stack.postfix, OFFICE, seen, lambda m: MALLORY in m["Subject"]
            ),
            f"the deleted-notice in {OFFICE}'s Maildir",
        )
        assert notice["Subject"].startswith("Deleted"), notice["Subject"]
        outbound = [
            m
            for m in list_messages(stack.home)
            if m["direction"] == "outbound"
            and (MALLORY in (m["sender_raw"] or "") or m["called"] == "+4930555011")
        ]
        assert outbound == []
        assert_no_backscatter(stack.postfix)


def assert_no_backscatter(postfix: PostfixInstance) -> None:
    """Assert that Postfix holds nothing and never wrote to mallory."""
    wait_for(lambda: not postfix.queued_files(), "an empty Postfix queue", 15)
    queue = postfix.run_tool("postqueue", "-p")
    assert "Mail queue is empty" in queue.stdout, queue.stdout + queue.stderr
    log = postfix.read_log()
    assert f"to=<{MALLORY}>" not in log
    assert "sender non-delivery notification" not in log
    assert postfix.messages(POSTMASTER) == []


def test_serve_stops_on_sigterm(stack):
    """``ums serve`` exits within ten seconds of SIGTERM."""
    with diagnostics_on_failure(stack):
        stack.serve.send_signal(signal.SIGTERM)
        try:
            status = stack.serve.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"ums serve still runs {STOP_SECONDS}s after SIGTERM")
        assert status == 0
