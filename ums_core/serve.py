"""``ums serve``: the spool watcher and the job worker until a signal."""

from __future__ import annotations

import logging
import signal
import threading

from .queue import run_due_jobs
from .spool import scan_spool

log = logging.getLogger(__name__)


class Server:
    """Run the spool watcher and the job worker in one loop."""

    def __init__(self, app):
        self.app = app
        self.stopping = threading.Event()

    def install_signal_handlers(self) -> None:
        """Stop cleanly on SIGINT and SIGTERM."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        log.info("signal %s received, stopping", signal.Signals(signum).name)
        self.stopping.set()

    def run(self, max_cycles: int | None = None) -> None:
        """Loop until stopped (or MAX_CYCLES cycles have run)."""
        poll = self.app.config.get("spool.poll")
        log.info(
            "ums serve started on %s (mode %s)",
            self.app.node,
            self.app.config.get("mode"),
        )
        cycles = 0
        while not self.stopping.is_set():
            self.run_cycle()
            cycles += 1
            if max_cycles is not None and cycles >= max_cycles:
                break
            self.stopping.wait(poll)
        log.info("ums serve stopped")

    def run_cycle(self) -> None:
        """Take the spool entries, then run the due jobs."""
        try:
            scan_spool(self.app)
            run_due_jobs(self.app)
        except Exception:  # keep serving; the failed step is retried next cycle
            log.exception("serve cycle failed; retrying in the next cycle")
