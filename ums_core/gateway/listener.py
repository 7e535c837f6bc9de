"""The SMTP listener of the gateway (aiosmtpd), run inside ``ums serve``.

It is never an open relay: RCPT is accepted only for the fax and SMS
domains, and only from ``gateway.allowed_clients`` or an authenticated
session. Database work runs in a worker thread, never on the event loop
(PITFALLS 19), and any unexpected error answers 451, never a 5xx that would
make the mail server bounce the message for good (PITFALLS 6).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from ..errors import UmsError
from .accept import Envelope, accept_mail, in_networks
from .addresses import AddressError, parse_recipient

log = logging.getLogger(__name__)
# aiosmtpd logs every SMTP command at INFO; the gateway logs one line per mail.
logging.getLogger("mail.log").setLevel(logging.WARNING)

TEMPORARY = "451 4.3.0 Temporary failure, please try again later"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, please try again later"


def _clean_address(address: str) -> bool:
    """Return False for an address with undecodable bytes or control characters."""
    return not any(
        "\udc80" <= c <= "\udcff" or ord(c) < 32 or ord(c) == 127 for c in address
    )


class GatewayHandler:
    """aiosmtpd handler: policy at MAIL and RCPT, commit at DATA."""

    def __init__(self, app):
        self.app = app
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="ums-gateway"
        )
        self.stopping = threading.Event()

    def _allowed(self, session) -> bool:
        peer = session.peer[0] if session.peer else ""
        networks = self.app.config.get("gateway.allowed_clients")
        return session.authenticated or in_networks(peer, networks)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.stopping.is_set():
            return SHUTTING_DOWN
        if not _clean_address(address):
            return "553 5.1.7 The sender address is not valid UTF-8 or has controls"
        if not self._allowed(session):
            log.warning("gateway: refused client %s (not allowed)", session.peer)
            return "550 5.7.1 Relaying denied: this client is not allowed"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        envelope.ums_destinations = []
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if not self._allowed(session):
            return "550 5.7.1 Relaying denied: this client is not allowed"
        if not _clean_address(address):
            return "553 5.1.3 The address is not valid UTF-8 or has controls"
        limit = self.app.config.get("gateway.max_recipients")
        if len(envelope.rcpt_tos) >= limit:
            return f"452 4.5.3 Too many recipients (at most {limit} per mail)"
        get = self.app.config.get
        try:
            destination = parse_recipient(
                address,
                get("gateway.fax_domain"),
                get("gateway.sms_domain"),
                self.app.site_rules,
                premium_rate=get("gateway.premium_rate"),
            )
        except AddressError as exc:
            log.info("gateway: refused RCPT <%s>: %s", address, exc.message)
            return f"{exc.code} {exc.status} {exc.message}"
        envelope.rcpt_tos.append(address)
        envelope.ums_destinations.append(destination)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        mail = Envelope(
            peer=session.peer[0] if session.peer else "",
            authenticated=bool(session.authenticated),
            mail_from=envelope.mail_from or "",
            destinations=tuple(getattr(envelope, "ums_destinations", ())),
            raw=envelope.original_content or b"",
            login=_login_name(session),
        )
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.executor, self._accept, mail)
        except Exception:  # the client keeps the mail and retries; we log why
            log.exception("gateway: could not take mail from <%s>", mail.mail_from)
            return TEMPORARY

    def _accept(self, mail: Envelope) -> str:
        # Each of the two worker threads keeps its own connection open while
        # the gateway runs: opening one per mail cost about 2 ms of CPU (the
        # pragmas) and, when it was the last one, a WAL checkpoint on close.
        return accept_mail(self.app, mail)

    async def handle_exception(self, error):
        log.exception("gateway: session error", exc_info=error)
        return "421 4.3.0 Service not available, closing transmission channel"


def _login_name(session) -> str:
    login = getattr(session, "auth_data", None) if session.authenticated else None
    if isinstance(login, bytes):
        return login.decode("utf-8", "replace")
    return login or ""


def authenticate(server, session, envelope, mechanism, auth_data):
    """Check AUTH PLAIN/LOGIN against the users' passwords (argon2)."""
    from aiosmtpd.smtp import AuthResult, LoginPassword

    from ..users import check_password

    if not isinstance(auth_data, LoginPassword):
        return AuthResult(success=False, handled=False)
    login = auth_data.login.decode("utf-8", "replace")
    password = auth_data.password.decode("utf-8", "replace")
    user = check_password(login, password)
    log.info("gateway: AUTH %s for %s", "ok" if user else "failed", login[:100])
    return AuthResult(success=user is not None, handled=False, auth_data=login)


def split_listen(text: str) -> tuple[str, int]:
    """Return (host, port) of a HOST:PORT setting."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def tls_context(config) -> ssl.SSLContext | None:
    """Return the STARTTLS context when a certificate is configured."""
    cert, key = config.get("gateway.tls_cert"), config.get("gateway.tls_key")
    if not cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key or None)
    except (OSError, ssl.SSLError) as exc:
        raise UmsError(f"cannot load gateway.tls_cert/tls_key: {exc}") from None
    return context


class GatewaySMTP(SMTP):
    """aiosmtpd's server with room for the long lines real mailers write.

    Outlook writes unfolded header lines of several KiB, and Postfix passes
    them on in 2 KiB pieces; the default 1001 would refuse those mails for
    good (PITFALLS 1). The buffer is per connection and connections are few.
    """

    line_length_limit = 16 * 1024


class GatewayController(Controller):
    """A Controller that builds GatewaySMTP sessions."""

    def factory(self):
        return GatewaySMTP(self.handler, **self.SMTP_kwargs)


class Gateway:
    """The running listener."""

    def __init__(self, app):
        self.app = app
        self.handler = GatewayHandler(app)
        host, port = split_listen(app.config.get("gateway.listen"))
        context = tls_context(app.config)
        self.controller = GatewayController(
            self.handler,
            hostname=host,
            port=port,
            enable_SMTPUTF8=True,
            decode_data=False,
            data_size_limit=app.config.get("gateway.max_size_mb") * 1024 * 1024,
            tls_context=context,
            require_starttls=False,
            authenticator=authenticate if context else None,
            auth_require_tls=True,
            ident="ums gateway",
            ready_timeout=10,
        )

    def start(self) -> None:
        """Start listening; raise UmsError when the address is taken."""
        try:
            self.controller.start()
        except (OSError, RuntimeError) as exc:
            raise UmsError(
                f"the gateway cannot listen on {self.app.config.get('gateway.listen')}:"
                f" {exc}",
                hint="change gateway.listen",
            ) from None
        log.info("gateway listening on %s", self.app.config.get("gateway.listen"))

    def refuse_new_mail(self) -> None:
        """Answer 421 to every new transaction from now on (shutdown begins)."""
        self.handler.stopping.set()

    def stop(self) -> None:
        """Stop listening (sessions in flight are cut; nothing unacked is lost)."""
        self.controller.stop()
        self.handler.executor.shutdown(wait=True, cancel_futures=False)
        log.info("gateway stopped")
