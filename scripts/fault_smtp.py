"""A loopback SMTP server that misbehaves on purpose, for the fault scenarios.

``FaultServer(fault)`` listens on 127.0.0.1 only and answers like a plain mail
server, except for its fault:

- ``refuse``: not listening at all (connections are refused)
- ``stall``: takes the whole mail, then never answers the final dot
- ``drop-in-data``: closes the connection halfway through DATA
- ``421-greeting``: greets with 421 and closes
- ``451-data``, ``552-data``, ``554-data``: answers the final dot with that code
- ``421-rcpt``, ``452-rcpt``, ``550-rcpt``: answers RCPT with that code
- ``no-starttls``: never offers STARTTLS (it never does; the name says the
  scenario: ums is configured with ``smtp.starttls = required``)

A fault hits only transactions for ``target`` (every one when it is None), and
only the first ``times`` of them (always when it is None). Every command verb
and transaction is recorded, so a test can say what was sent and how often.
"""

from __future__ import annotations

import dataclasses
import socket
import socketserver
import threading
import time

FAULTS = (
    "refuse",
    "stall",
    "drop-in-data",
    "421-greeting",
    "451-data",
    "552-data",
    "554-data",
    "421-rcpt",
    "452-rcpt",
    "550-rcpt",
    "no-starttls",
)
REPLIES = {
    "421": "421 4.3.2 fault server closing",
    "451": "451 4.3.0 fault server: try again later",
    "452": "452 4.3.1 fault server: insufficient storage",
    "550": "550 5.1.1 fault server: no such user",
    "552": "552 5.3.4 fault server: message too big",
    "554": "554 5.6.0 fault server: message refused",
}
MAX_LINES = 200_000
MAX_STALL_SECONDS = 30.0


@dataclasses.dataclass
class Transaction:
    """One MAIL..DATA exchange the server saw."""

    mail_from: str
    rcpts: list[str]
    data: bytes | None = None
    reply: str = ""
    at: float = 0.0


class FaultServer:
    """A threaded SMTP server on 127.0.0.1 with one configurable fault."""

    def __init__(self, fault: str = "", target=None, times=None, stall=3.0):
        if fault and fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}")
        self.fault = fault
        self.target = target
        self.times = times
        self.stall_seconds = min(stall, MAX_STALL_SECONDS)
        self.port = _free_port()
        self.lock = threading.Lock()
        self.connections = 0
        self.commands: list[str] = []
        self.transactions: list[Transaction] = []
        self.hits = 0
        self.closing = threading.Event()
        self._server = None
        self._thread = None

    def start(self) -> None:
        """Listen, unless the fault is to refuse connections."""
        if self.fault == "refuse" and self._fault_left():
            return
        handler = type("Handler", (_Session,), {"owner": self})
        self._server = socketserver.ThreadingTCPServer(
            ("127.0.0.1", self.port), handler, bind_and_activate=False
        )
        self._server.daemon_threads = True
        self._server.allow_reuse_address = True
        self._server.server_bind()
        self._server.server_activate()
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and end stalls early."""
        self.closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.closing.clear()

    def heal(self) -> None:
        """Behave from now on (and listen, if the fault was refusing)."""
        self.fault = ""
        if self._server is None:
            self.start()

    def accepted(self) -> list[Transaction]:
        """Return the transactions answered with 250."""
        with self.lock:
            return [t for t in self.transactions if t.reply.startswith("250")]

    def hit(self, rcpts) -> bool:
        """Say whether the fault applies to a transaction for RCPTS; count it."""
        if not self.fault:
            return False
        if self.target is not None and self.target not in rcpts:
            return False
        with self.lock:
            if not self._fault_left():
                return False
            self.hits += 1
            return True

    def _fault_left(self) -> bool:
        return self.times is None or self.hits < self.times


class _Session(socketserver.StreamRequestHandler):
    """One SMTP connection, line by line, bounded in lines and time."""

    owner: FaultServer
    timeout = 30

    def handle(self) -> None:
        server = self.owner
        with server.lock:
            server.connections += 1
        if server.fault == "421-greeting" and server.hit([]):
            self.reply(REPLIES["421"])
            return
        self.reply("220 fault.test ESMTP fault server")
        self.transaction = None
        for _ in range(MAX_LINES):
            line = self.rfile.readline(4096)
            if not line:
                return
            verb = line.split(b" ", 1)[0].split(b":", 1)[0].strip().upper()
            verb = verb.decode("ascii", "replace")
            with server.lock:
                server.commands.append(verb)
            if not self.answer(verb, line.decode("utf-8", "replace").strip()):
                return

    def answer(self, verb: str, line: str) -> bool:
        """Answer one command; return False when the connection ends."""
        if verb == "EHLO":
            self.reply("250-fault.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE")
        elif verb in ("HELO", "NOOP"):
            self.reply("250 OK")
        elif verb == "RSET":
            self.transaction = None
            self.reply("250 OK")
        elif verb == "MAIL":
            self.transaction = Transaction(_address(line), [], at=time.monotonic())
            self.reply("250 OK")
        elif verb == "RCPT":
            return self.answer_rcpt(_address(line))
        elif verb == "DATA":
            return self.answer_data()
        elif verb == "QUIT":
            self.reply("221 bye")
            return False
        else:
            self.reply("502 5.5.2 not implemented")
        return True

    def answer_rcpt(self, address: str) -> bool:
        server = self.owner
        if self.transaction is None:
            self.reply("503 5.5.1 MAIL first")
            return True
        code = server.fault.split("-")[0]
        if server.fault.endswith("-rcpt") and server.hit([address]):
            self.reply(REPLIES[code])
            return code != "421"
        self.transaction.rcpts.append(address)
        self.reply("250 OK")
        return True

    def answer_data(self) -> bool:
        server, transaction = self.owner, self.transaction
        if transaction is None or not transaction.rcpts:
            self.reply("503 5.5.1 RCPT first")
            return True
        self.reply("354 go ahead")
        faulty = server.fault in ("stall", "drop-in-data") or (
            server.fault.endswith("-data")
        )
        faulty = faulty and server.hit(transaction.rcpts)
        if faulty and server.fault == "drop-in-data":
            self.rfile.readline(4096)
            return False
        transaction.data = self.read_data()
        with server.lock:
            server.transactions.append(transaction)
        self.transaction = None
        if faulty and server.fault == "stall":
            transaction.reply = "(stalled)"
            server.closing.wait(server.stall_seconds)
            return False
        if faulty:
            transaction.reply = REPLIES[server.fault.split("-")[0]]
        else:
            transaction.reply = "250 2.0.0 accepted"
        self.reply(transaction.reply)
        return True

    def read_data(self) -> bytes:
        lines = []
        for _ in range(MAX_LINES):
            line = self.rfile.readline(1 << 20)
            if not line or line == b".\r\n":
                break
            lines.append(line[1:] if line.startswith(b"..") else line)
        return b"".join(lines)

    def reply(self, text: str) -> None:
        try:
            self.wfile.write(text.encode("ascii") + b"\r\n")
            self.wfile.flush()
        except OSError:
            pass


def _address(line: str) -> str:
    start, end = line.find("<"), line.find(">")
    return line[start + 1 : end] if 0 <= start < end else ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
