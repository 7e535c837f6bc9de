"""``ums serve``: the spool watcher and the job worker until a signal.

Mails are sent in a lane of their own (a thread): intake and composing go
on while the mail server takes its time over each DATA, and a slow or
stalled mail server does not hold up the next fax.
"""

from __future__ import annotations

import logging
import signal
import threading

from .db import reset_connection
from .nodes import Heartbeat
from .queue import (
    MAIL_QUEUED,
    SEND_MAIL,
    release_dead_leases,
    release_running_jobs,
    run_due_jobs,
)
from .spool import scan_spool

log = logging.getLogger(__name__)


GATHER = 0.02


class MailLane:
    """Send the queued mails in a thread of its own until stopped.

    It wakes when this process queues a mail, else every POLL seconds (for
    mails other nodes or commands queued, and for retries that fall due).
    """

    def __init__(self, app, stopping: threading.Event, poll: float):
        self.app = app
        self.stopping = stopping
        self.poll = poll
        self.holding_jobs = False
        self.thread = threading.Thread(target=self._run, name="ums-mail", daemon=True)

    def start(self) -> None:
        """Start sending."""
        self.thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Wait for the mail being sent (the stop event is set by the caller).

        The wait is bounded (by default smtp.timeout plus 15 s, at least a
        minute). When it runs out, the mails claimed but not started are
        given back; the one still being sent keeps its lease, which the next
        start on this host releases (its process is gone by then).
        """
        if timeout is None:
            timeout = max(60.0, self.app.config.get("smtp.timeout") + 15.0)
        MAIL_QUEUED.set()
        self.thread.join(timeout)
        if not self.thread.is_alive():
            return
        sending = self.app.node_state.job_of(self.thread.ident)
        keep = [sending[0]] if sending else []
        released = release_running_jobs(self.app, kinds=(SEND_MAIL,), keep=keep)
        log.error(
            "the mail lane did not stop within %gs: job %s is left to its lease,"
            " %d claimed mails given back",
            timeout,
            keep[0] if keep else "-",
            released,
        )

    def _run(self) -> None:
        while not self.stopping.is_set():
            MAIL_QUEUED.clear()
            self.run_once()
            if MAIL_QUEUED.wait(self.poll):
                # Let a burst gather: one claim then takes several mails.
                self.stopping.wait(GATHER)
        reset_connection(self.app.database)

    def run_once(self) -> None:
        """Send every due mail; a failure is logged and retried next time."""
        try:
            if self.holding_jobs:
                release_running_jobs(self.app, kinds=(SEND_MAIL,))
                self.holding_jobs = False
            run_due_jobs(self.app, should_stop=self.stopping.is_set, kinds=(SEND_MAIL,))
        except Exception:  # keep sending; the failed step is retried next time
            log.exception("mail lane failed; retrying in %gs", self.poll)
            reset_connection(self.app.database)
            self.holding_jobs = True


class Server:
    """Run the spool watcher and the job worker, and the mail lane beside them."""

    def __init__(self, app):
        self.app = app
        self.stopping = threading.Event()
        self.gateway = None
        self.services: list = []
        self.holding_jobs = False
        self.lane: MailLane | None = None

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
        self.start_services()
        if max_cycles is None:
            self.lane = MailLane(self.app, self.stopping, poll)
            self.lane.start()
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
            if self.lane is not None:
                self.stopping.set()
                self.lane.stop()
            self.stop_services()
            heartbeat.stop()
        log.info("ums serve stopped")

    def start_services(self) -> None:
        """Start what active plugins run beside the worker (the journal)."""
        from .context import PluginContext

        answers = self.app.collect("ums_start_service", ctx=PluginContext(self.app))
        self.services = [service for service in answers if service is not None]

    def stop_services(self) -> None:
        """Stop the plugins' services; one failing stops no other."""
        for service in self.services:
            try:
                service.stop()
            except Exception:  # third-party code; keep stopping the rest
                log.exception("stopping service %r failed", service)
        self.services = []

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
        if self.holding_jobs:
            self.release_own_jobs()
        exclude = (SEND_MAIL,) if self.lane is not None else ()
        try:
            scan_spool(self.app)
        except Exception:  # the entries wait in the spool; the jobs still run
            log.exception("spool scan failed; the entries wait for the next cycle")
            reset_connection(self.app.database)
        try:
            run_due_jobs(self.app, should_stop=self.stopping.is_set, exclude=exclude)
        except Exception:  # keep serving; the failed step is retried next cycle
            log.exception("serve cycle failed; retrying in the next cycle")
            reset_connection(self.app.database)
            self.holding_jobs = True

    def release_own_jobs(self) -> None:
        """Requeue the jobs this process still holds after a failed cycle.

        A job whose failure could not be recorded (a full disk, a lost
        database) would otherwise wait for its lease to run out.
        """
        exclude = (SEND_MAIL,) if self.lane is not None else ()
        try:
            released = release_running_jobs(self.app, exclude=exclude)
        except Exception:  # still failing: the next cycle tries again
            log.exception("could not requeue this process's jobs")
            return
        self.holding_jobs = False
        if released:
            log.warning("requeued %d jobs after the failed cycle", released)
