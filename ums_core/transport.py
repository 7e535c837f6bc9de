"""SMTP out: one connection reused for a batch, STARTTLS, AUTH, timeouts."""

from __future__ import annotations

import logging
import os
import re
import smtplib
import socket
import ssl
import stat
import time

from .errors import UmsError
from .model import Mail, SendResult

log = logging.getLogger(__name__)

IDLE_CHECK_SECONDS = 20.0
# After a connection could not be made at all, the next mails of the same run
# fail the same way without knocking again, for at most this long (the worker
# closes the transport when its run ends).
DOWN_SECONDS = 10.0
_LINE_END = re.compile(rb"\r\n|\r|\n")
_LEADING_DOT = re.compile(rb"^\.", re.MULTILINE)


class SmtpTransport:
    """Send e-mails to the configured relay, keeping the connection open."""

    def __init__(self, config):
        self.config = config
        self._smtp: smtplib.SMTP | None = None
        self._last_used = 0.0
        self._down: tuple[float, str] | None = None

    def send(self, mail: Mail) -> SendResult:
        """Send MAIL; classify every failure as temporary or permanent."""
        if not self.config.get("smtp.host"):
            return SendResult(False, False, None, "no mail server set (smtp.host)")
        if self._down is not None and time.monotonic() - self._down[0] < DOWN_SECONDS:
            return SendResult(False, False, None, self._down[1])
        connected = False
        try:
            smtp = self._connection()
            connected = True
            self._down = None
            with mail.open() as stream:
                rcpts = list(mail.recipients)
                refused = send_stream(smtp, mail.sender, rcpts, stream)
        except smtplib.SMTPRecipientsRefused as exc:
            return self._refused(exc.recipients)
        except smtplib.SMTPAuthenticationError as exc:
            self.close()
            detail = f"authentication failed: {exc.smtp_code} {_text(exc.smtp_error)}"
            return SendResult(False, False, exc.smtp_code, detail)
        except smtplib.SMTPResponseException as exc:
            self._reset()
            return _result_for_code(exc.smtp_code, _text(exc.smtp_error))
        except UmsError as exc:
            self.close()
            return SendResult(False, False, None, exc.message)
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            detail = f"{type(exc).__name__}: {exc}"
            if not connected and not isinstance(exc, smtplib.SMTPException):
                # No connection at all (refused, no route, no greeting in
                # time): each mail still counts its attempt, but the rest of
                # the round is not sent to knock on the same closed door.
                self._down = (time.monotonic(), f"{detail} (mail server unreachable)")
            return SendResult(False, False, None, detail)
        self._last_used = time.monotonic()
        if refused:
            return self._refused(refused)
        return SendResult(True, code=250, detail="accepted")

    def close(self) -> None:
        """Close the connection, if any; the next mail tries to connect again."""
        self._down = None
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is not None and not self._still_alive():
            self.close()
        if self._smtp is None:
            self._smtp = self._connect()
        return self._smtp

    def _still_alive(self) -> bool:
        if time.monotonic() - self._last_used < IDLE_CHECK_SECONDS:
            return True
        try:
            return self._smtp.noop()[0] == 250
        except (smtplib.SMTPException, OSError):
            return False

    def _connect(self) -> smtplib.SMTP:
        get = self.config.get
        smtp = smtplib.SMTP(
            get("smtp.host"),
            get("smtp.port"),
            local_hostname=socket.getfqdn(),
            timeout=get("smtp.timeout"),
        )
        try:
            smtp.ehlo()
            self._start_tls(smtp)
            if get("smtp.user"):
                self._refuse_clear_text_login(smtp)
                smtp.login(get("smtp.user"), read_password(get("smtp.password_file")))
        except BaseException:
            smtp.close()
            raise
        log.info("connected to mail server %s:%s", get("smtp.host"), get("smtp.port"))
        return smtp

    def _refuse_clear_text_login(self, smtp: smtplib.SMTP) -> None:
        if not isinstance(smtp.sock, ssl.SSLSocket):
            raise UmsError(
                "refusing to send the SMTP password without TLS"
                " (the server offered no STARTTLS)"
            )

    def _start_tls(self, smtp: smtplib.SMTP) -> None:
        policy = self.config.get("smtp.starttls")
        if policy == "off":
            return
        if not smtp.has_extn("starttls"):
            if policy == "required":
                raise UmsError("the mail server offers no STARTTLS (smtp.starttls)")
            return
        cafile = self.config.get("smtp.ca_file") or None
        smtp.starttls(context=ssl.create_default_context(cafile=cafile))
        smtp.ehlo()

    def _refused(self, refused: dict) -> SendResult:
        self._reset()
        codes = [code for code, _ in refused.values()]
        detail = "; ".join(
            f"{rcpt}: {code} {_text(msg)}" for rcpt, (code, msg) in refused.items()
        )
        permanent = all(500 <= code < 600 for code in codes)
        return SendResult(False, permanent, max(codes), detail)

    def _reset(self) -> None:
        if self._smtp is None:
            return
        try:
            self._smtp.rset()
        except (smtplib.SMTPException, OSError):
            self.close()


def send_stream(smtp: smtplib.SMTP, sender: str, recipients: list, stream) -> dict:
    """Send the CRLF wire form in the binary STREAM like ``smtp.sendmail``.

    The data goes out in pieces, dot-stuffed, so the e-mail is never in
    memory whole. Returns the refused recipients; raises what sendmail raises.
    """
    smtp.ehlo_or_helo_if_needed()
    options = []
    if smtp.does_esmtp and smtp.has_extn("size"):
        options.append(f"size={_stream_size(stream)}")
    code, reply = smtp.mail(sender, options)
    if code != 250:
        _reset_quietly(smtp, code)
        raise smtplib.SMTPSenderRefused(code, reply, sender)
    refused = {}
    for rcpt in recipients:
        code, reply = smtp.rcpt(rcpt)
        if code not in (250, 251):
            refused[rcpt] = (code, reply)
        if code == 421:
            smtp.close()
            raise smtplib.SMTPRecipientsRefused(refused)
    if len(refused) == len(recipients):
        _reset_quietly(smtp, 0)
        raise smtplib.SMTPRecipientsRefused(refused)
    code, reply = smtp.docmd("data")
    if code != 354:
        _reset_quietly(smtp, code)
        raise smtplib.SMTPDataError(code, reply)
    for piece in stuffed_pieces(stream):
        smtp.send(piece)
    code, reply = smtp.getreply()
    if code != 250:
        _reset_quietly(smtp, code)
        raise smtplib.SMTPDataError(code, reply)
    return refused


def _reset_quietly(smtp: smtplib.SMTP, code: int) -> None:
    """End the transaction as sendmail does: close on 421, else RSET."""
    if code == 421:
        smtp.close()
        return
    try:
        smtp.rset()
    except smtplib.SMTPServerDisconnected:
        pass


def _stream_size(stream) -> int:
    """Return the byte size of STREAM (a file or a BytesIO)."""
    if hasattr(stream, "getbuffer"):
        return stream.getbuffer().nbytes
    return os.fstat(stream.fileno()).st_size


def stuffed_pieces(stream, size: int = 1 << 20):
    """Yield the DATA of STREAM: CRLF line ends, leading dots doubled, final dot.

    Pieces are cut after a line feed, so every piece starts a line; a lone CR
    or LF becomes CRLF, as smtplib does for text. The final dot goes out with
    the last piece: sent alone, it would wait for a delayed ACK (Nagle).
    """
    rest, ready = b"", b""
    while chunk := stream.read(size):
        data = rest + chunk
        cut = data.rfind(b"\n") + 1
        data, rest = data[:cut], data[cut:]
        if data:
            if ready:
                yield ready
            ready = _stuff(data)
    if rest:
        ready += _stuff(rest[:-1] if rest.endswith(b"\r") else rest) + b"\r\n"
    yield ready + b".\r\n"


def _stuff(data: bytes) -> bytes:
    """Return DATA with CRLF line ends and a dot doubled where a line starts.

    DATA starts a line. The counts and the search are quick scans; the
    rewrites run only for data that needs them (base64 never does).
    """
    crlf = data.count(b"\r\n")
    if data.count(b"\n") != crlf or data.count(b"\r") != crlf:
        data = _LINE_END.sub(b"\r\n", data)
    if data.startswith(b".") or b"\n." in data:
        data = _LEADING_DOT.sub(b"..", data)
    return data


def _result_for_code(code: int, text: str) -> SendResult:
    return SendResult(False, 500 <= code < 600, code, f"{code} {text}")


def _text(raw) -> str:
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "replace")
    return str(raw)


def read_password(path: str) -> str:
    """Return the SMTP password from PATH, which must be owner-only."""
    if not path:
        raise UmsError("smtp.user is set but smtp.password_file is not")
    try:
        mode = os.stat(path).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise UmsError(
                f"{path} is readable by others", hint=f"run: chmod 600 {path}"
            )
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError as exc:
        raise UmsError(f"cannot read smtp.password_file: {exc.strerror}") from None
