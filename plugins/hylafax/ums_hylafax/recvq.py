"""Import the faxes in a HylaFAX recvq folder, once or watching it.

A fax is finished when faxgetty no longer holds its lock: faxgetty creates
``recvq/faxNNNNN.tif`` and locks it exclusively (flock) while it receives,
which is also how hfaxd shows a fax "being received". Files still empty or
locked are left for a later pass. Nothing in the recvq is written or deleted.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import logging
import os
import signal
import stat
import threading

from ums_core.errors import UmsError

from .receive import Outcome, ReceiveOptions, receive_safely

log = logging.getLogger(__name__)

RECVQ_PATTERN = "fax*.tif"
MAX_FILES_PER_PASS = 1000


def is_finished(path: str, info: os.stat_result) -> bool:
    """Tell whether HylaFAX has finished writing the recvq file PATH."""
    if not stat.S_ISREG(info.st_mode) or info.st_size == 0:
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return True  # unreadable: receiving it refuses it and says why
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return True  # a file system without flock cannot tell us more
    finally:
        os.close(fd)
    return True


def list_recvq(folder: str) -> list[tuple[str, os.stat_result]]:
    """Return the fax*.tif files in FOLDER with their status, oldest name first."""
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        raise UmsError(
            f"cannot read the recvq folder {folder}: {exc.strerror or exc}",
            hint="give HylaFAX's recvq, e.g. /var/spool/hylafax/recvq",
        ) from None
    found = []
    for name in names:
        if not fnmatch.fnmatchcase(name, RECVQ_PATTERN):
            continue
        path = os.path.join(folder, name)
        try:
            found.append((path, os.lstat(path)))
        except FileNotFoundError:
            continue
    return found


class RecvqImporter:
    """Import the finished faxes of one recvq folder, each version of a file once."""

    def __init__(self, app, folder: str, report):
        self.app = app
        self.folder = folder
        self.report = report
        self.refused = 0
        self._seen: dict[str, tuple[int, int, int]] = {}

    def run_pass(self, should_stop=lambda: False) -> int:
        """Import what is new in the folder; return how many files were handled."""
        handled = 0
        for path, info in list_recvq(self.folder):
            if should_stop() or handled >= MAX_FILES_PER_PASS:
                break
            version = (info.st_ino, info.st_size, info.st_mtime_ns)
            if self._seen.get(path) == version or not is_finished(path, info):
                continue
            outcome = receive_safely(self.app, path, ReceiveOptions())
            self.note(path, version, outcome)
            handled += 1
        return handled

    def note(self, path: str, version, outcome: Outcome) -> None:
        """Report OUTCOME; remember the file unless it is worth another try."""
        if not outcome.retry:
            self._seen[path] = version
        if outcome.status == "refused":
            self.refused += 1
        self.report(outcome.describe(path))


def watch_recvq(importer: RecvqImporter, interval: float, passes: int) -> None:
    """Run passes every INTERVAL seconds until SIGTERM/SIGINT or PASSES are done.

    A folder that cannot be read on the first pass is an error; later, it is
    logged and tried again, so a passing file system problem ends no watcher.
    """
    with stop_on_signals() as stop:
        importer.run_pass(should_stop=stop.is_set)
        done = 1
        while not (passes and done >= passes) and not stop.wait(interval):
            run_next_pass(importer, stop)
            done += 1


def run_next_pass(importer: RecvqImporter, stop: threading.Event) -> None:
    """Run one more pass; a folder unreadable now is logged, not fatal."""
    try:
        importer.run_pass(should_stop=stop.is_set)
    except UmsError as exc:
        log.warning("hylafax: %s; trying again later", exc.message)


@contextlib.contextmanager
def stop_on_signals():
    """Yield an event that SIGTERM or SIGINT sets; restore the handlers after."""
    stop = threading.Event()

    def request_stop(signum, frame):
        stop.set()

    previous = {
        number: signal.signal(number, request_stop)
        for number in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
