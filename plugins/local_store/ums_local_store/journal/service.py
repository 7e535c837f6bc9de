"""Serving the journal with waitress: beside ``ums serve`` or on its own."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)

THREADS = 4


class JournalService:
    """The journal's HTTP server, run in a thread of its own until stopped."""

    def __init__(self, ctx, listen: str):
        from waitress import create_server

        from .web import create_journal

        host, _, port = listen.rpartition(":")
        self._map: dict = {}
        proxy = {}
        if ctx.config.get("journal.trusted_proxy"):
            # Only this proxy's X-Forwarded-* count: the client's address (for
            # login throttling and the logs) and https (for Secure cookies).
            proxy = {
                "trusted_proxy": ctx.config.get("journal.trusted_proxy"),
                "trusted_proxy_count": 1,
                "trusted_proxy_headers": "x-forwarded-for x-forwarded-proto",
            }
        self.server = create_server(
            create_journal(ctx),
            map=self._map,
            host=host.strip("[]"),
            port=int(port),
            threads=THREADS,
            ident="ums-journal",
            clear_untrusted_proxy_headers=True,
            **proxy,
        )
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="journal", daemon=True)

    @property
    def address(self) -> str:
        """Return the address the journal listens on, as HOST:PORT."""
        host = self.server.effective_host
        host = f"[{host}]" if ":" in host else host
        return f"{host}:{self.server.effective_port}"

    def start(self) -> JournalService:
        """Start serving in the background; return self."""
        self.thread.start()
        log.info("journal listening on http://%s/", self.address)
        return self

    def _loop(self) -> None:
        from waitress import wasyncore

        try:
            while not self.stopping.is_set():
                wasyncore.loop(timeout=0.5, map=self._map, use_poll=True, count=1)
        finally:
            self.server.task_dispatcher.shutdown()
            wasyncore.close_all(self._map)

    def stop(self) -> None:
        """Stop serving and wait for the server thread."""
        self.stopping.set()
        self.thread.join(timeout=15)
        log.info("journal stopped")

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the server thread ends; return True if it did."""
        self.thread.join(timeout)
        return not self.thread.is_alive()


def start_journal(ctx, listen: str | None = None) -> JournalService | None:
    """Start the journal on LISTEN (default: journal.listen); None when off."""
    listen = ctx.config.get("journal.listen") if listen is None else listen
    if not listen:
        log.info("journal off: journal.listen is empty")
        return None
    try:
        return JournalService(ctx, listen).start()
    except OSError as exc:
        log.error("journal not started on %s: %s", listen, exc)
        return None
