"""``ums serve``: the spool watcher and the job worker until a signal."""

from __future__ import annotations

import logging
import signal
import threading

from .db import reset_connection
from .nodes import Heartbeat
from .queue import release_dead_leases, run_due_jobs
from .spool import scan_spool

log = logging.getLogger(__name__)


class Server:
    """Run the spool watcher and the job worker in one loop."""

    def __init__(self, app):
        self.app = app
        self.stopping = threading.Event()
        self.gateway = None

    def install_signal_handlers(self) -> None:
        """Stop cleanly on SIGINT and SIGTERM."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        log.info("signal %s received, stopping", signal.Signals(signum).name)
        self.stopping.set()
        if self.gateway is not None:
            self.gateway.refuse_new_mail()

    def run(self, max_cycles: int | None = None) -> None:
        """Loop until stopped (or MAX_CYCLES cycles have run)."""
        poll = self.app.config.get("spool.poll")
        mode = self.app.config.get("mode")
        log.info("ums serve started on %s (mode %s)", self.app.node, mode)
        release_dead_leases(self.app)
        heartbeat = Heartbeat(self.app)
        heartbeat.start()
        gateway = self.gateway = self.start_gateway()
        cycles = 0
        try:
            while not self.stopping.is_set():
                self.run_cycle()
                cycles += 1
                if max_cycles is not None and cycles >= max_cycles:
                    break
                self.stopping.wait(poll)
        finally:
            if gateway is not None:
                gateway.stop()
            heartbeat.stop()
        log.info("ums serve stopped")

    def start_gateway(self):
        """Start the SMTP gateway when a fax or SMS domain is configured."""
        get = self.app.config.get
        if not (get("gateway.fax_domain") or get("gateway.sms_domain")):
            log.info("gateway off: set gateway.fax_domain or gateway.sms_domain")
            return None
        from .gateway.listener import Gateway

        gateway = Gateway(self.app)
        gateway.start()
        return gateway

    def run_cycle(self) -> None:
        """Take the spool entries, then run the due jobs."""
        try:
            scan_spool(self.app)
            run_due_jobs(self.app, should_stop=self.stopping.is_set)
        except Exception:  # keep serving; the failed step is retried next cycle
            log.exception("serve cycle failed; retrying in the next cycle")
            reset_connection(self.app.database)
