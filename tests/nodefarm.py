"""Several ``ums serve`` nodes on one PostgreSQL, fed through their spools.

Used by the multi-node test and by scripts/bench_nodes.py. Every node has its
own instance folder and spool; they share the database and one content
folder, and deliver to one loopback SMTP sink that counts Message-IDs.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from email.parser import BytesHeaderParser

from aiosmtpd.controller import Controller

from ums_core.app import App, create_instance
from ums_core.samples import write_fax_tiff
from ums_core.spool import submit_to_spool

UMS = [sys.executable, "-c", "from ums_core.cli import main; main()"]
CALLER = "+4930555010"
USERS = {
    "alice@example.test": ("+4989123456", "+491701234567"),
    "bob@example.test": ("+4989123460", "+491701234568"),
}
STOP_SECONDS = 20.0


class CountingSink:
    """A loopback SMTP server that counts each Message-ID it accepts."""

    def __init__(self, port: int):
        self.port = port
        self.counts: collections.Counter = collections.Counter()
        self.lock = threading.Lock()
        self.controller = None
        self.parser = BytesHeaderParser()

    async def handle_DATA(self, server, session, envelope):
        headers = self.parser.parsebytes(envelope.original_content)
        with self.lock:
            self.counts[str(headers.get("Message-ID", "")).strip()] += 1
        return "250 Message accepted"

    def start(self) -> None:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def accepted(self) -> int:
        """Return how many mails were accepted, repeats included."""
        with self.lock:
            return sum(self.counts.values())

    def snapshot(self) -> collections.Counter:
        with self.lock:
            return collections.Counter(self.counts)


class Node:
    """One ``ums serve`` process with its own instance folder."""

    def __init__(self, home: str):
        self.home = home
        self.proc: subprocess.Popen | None = None
        self.stderr_path = home + ".stderr"

    def start(self) -> None:
        with open(self.stderr_path, "ab") as stderr:
            self.proc = subprocess.Popen(
                [*UMS, "--home", self.home, "serve"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

    @property
    def name(self) -> str:
        return f"{os.uname().nodename}:{self.proc.pid}"

    def kill(self) -> None:
        """SIGKILL the node: no clean-up, its leases stay until they expire."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=STOP_SECONDS)

    def stop(self) -> None:
        """SIGTERM the node, SIGKILL it when it does not end in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()

    def spool_left(self) -> int:
        folder = os.path.join(self.home, "spool", "new")
        return sum(name.endswith(".json") for name in os.listdir(folder))


def create_nodes(root, url, count, sink_port, lease="4s", heartbeat="0.5"):
    """Create COUNT instance folders on database URL; return their Nodes."""
    shared = os.path.join(root, "shared")
    os.makedirs(shared, exist_ok=True)
    settings = {
        "mode": "mailserver",
        "default_recipient": "office@example.test",
        "system_sender": "ums <ums@example.test>",
        "site.area_code": "89",
        "smtp.host": "127.0.0.1",
        "smtp.port": str(sink_port),
        "smtp.starttls": "off",
        "smtp.timeout": "10",
        "retry.schedule": "1s,1s,2s,5s",
        "spool.poll": "0.2",
        "content_dir": shared,
        "queue.lease": lease,
        "queue.heartbeat": heartbeat,
    }
    nodes = []
    for index in range(count):
        home = os.path.join(root, f"node{index}")
        config = create_instance(home, url)
        for key, value in settings.items():
            config.set(key, value)
        config.save()
        nodes.append(Node(home))
    _add_users(nodes[0].home)
    return nodes


def _add_users(home: str) -> None:
    from ums_core.users import add_user

    app = App.open(home, load_plugins=False)
    try:
        for address, (fax, sms) in USERS.items():
            add_user(address, app.site_rules, numbers={"fax": [fax], "sms": [sms]})
    finally:
        app.close()


def feed_spools(root: str, nodes: list[Node], total: int, fax_every: int = 50):
    """Hand TOTAL messages to the nodes' spools in turn (every FAX_EVERY a fax)."""
    fax = os.path.join(root, "sample.tif")
    write_fax_tiff(fax, "multi-node run", pages=1)
    users = list(USERS.values())
    for index in range(total):
        fax_number, sms_number = users[index % len(users)]
        meta = {"from": CALLER, "name": f"caller {index}"}
        home = nodes[index % len(nodes)].home
        if fax_every and index % fax_every == 0:
            submit_to_spool(home, {**meta, "kind": "fax", "to": fax_number}, fax)
        else:
            meta.update(kind="sms", to=sms_number, text=f"message {index}")
            submit_to_spool(home, meta)


def wait_until(predicate, timeout: float, step: float = 0.2) -> bool:
    """Poll PREDICATE until true or TIMEOUT seconds passed; return its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())
