"""Import a spool once, or keep polling it until SIGTERM or SIGINT."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterable

from .importer import Outcome, import_item, import_lock
from .settings import Settings
from .spool import VoicemailItem

Report = Callable[[Outcome], None]
Lister = Callable[[], Iterable[VoicemailItem]]


def import_once(app, list_items: Lister, settings: Settings, report: Report) -> bool:
    """Import what LIST_ITEMS finds, report each; True when any had a problem."""
    problem = False
    with import_lock(app):
        for item in list_items():
            outcome = import_item(app, item, settings)
            report(outcome)
            problem |= outcome.problem
    return problem


class SpoolWatcher:
    """Poll a spool, reporting each message once until its files change.

    Only messages still in the spool are remembered, so memory stays bounded
    by the size of the spool.
    """

    def __init__(self, app, settings: Settings, list_items: Lister, report: Report):
        self.app = app
        self.settings = settings
        self.list_items = list_items
        self.report = report
        self.stop = threading.Event()
        self.seen: dict[str, tuple] = {}
        self.problem = False

    def run(self, interval: float, polls: int | None = None) -> bool:
        """Poll every INTERVAL seconds (POLLS times, or until a signal)."""
        previous = self.install_signal_handlers()
        try:
            count = 0
            while not self.stop.is_set():
                self.poll()
                count += 1
                if polls is not None and count >= polls:
                    break
                self.stop.wait(interval)
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
        return self.problem

    def install_signal_handlers(self) -> dict:
        """Let SIGTERM and SIGINT end the loop after the message in hand."""
        previous = {}
        for number in (signal.SIGTERM, signal.SIGINT):
            previous[number] = signal.signal(number, lambda *_: self.stop.set())
        return previous

    def poll(self) -> None:
        """Import what is new or changed since the last poll."""
        current = {}
        with import_lock(self.app):
            for item in self.list_items():
                if self.stop.is_set():
                    return
                current[item.label] = signature(item)
                if self.seen.get(item.label) != current[item.label]:
                    self.handle(item)
        self.seen = {k: v for k, v in self.seen.items() if k in current}

    def handle(self, item: VoicemailItem) -> None:
        """Import ITEM and report it; a busy database is tried again next poll."""
        outcome = import_item(self.app, item, self.settings)
        self.report(outcome)
        self.problem |= outcome.problem
        if not outcome.retry:
            self.seen[item.label] = signature(item)


def signature(item: VoicemailItem) -> tuple:
    """Return what changes when a message's files are replaced or added."""
    try:
        info = os.stat(item.info_path)
    except OSError:
        return item.files
    return (item.files, info.st_mtime_ns, info.st_size)
