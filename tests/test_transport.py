"""SMTP out: connection reuse, STARTTLS policy, AUTH, password file."""

import os
import ssl

import pytest
import trustme
from aiosmtpd.smtp import AuthResult
from conftest import SmtpSink, reopen, stored_bytes, use_mailserver

from ums_core import db
from ums_core.errors import UmsError
from ums_core.intake import receive_message
from ums_core.model import IncomingMessage
from ums_core.queue import run_due_jobs


def send_sms(app, count=1):
    for number in range(count):
        receive_message(
            app, IncomingMessage(kind="sms", called="+4930999", text=f"{number}")
        )
    return run_due_jobs(app)


def test_batch_uses_one_connection(home, smtp_sink):
    use_mailserver(home, smtp_sink)
    app = reopen(home)
    summary = send_sms(app, count=5)
    assert summary.done == 5
    peers = {peer for peer, _, _ in smtp_sink.handler.sessions}
    assert len(smtp_sink.handler.messages) == 5 and len(peers) == 1


def test_an_unreachable_mail_server_is_knocked_on_once_per_run(
    home, smtp_sink, monkeypatch
):
    """Each mail counts its attempt; only the first of a run tries to connect."""
    import datetime as dt

    from ums_core.transport import SmtpTransport

    tries = []
    connect = SmtpTransport._connect
    monkeypatch.setattr(
        SmtpTransport, "_connect", lambda self: tries.append(1) or connect(self)
    )
    use_mailserver(home, smtp_sink, retry__schedule="1m,5m")
    smtp_sink.stop()
    app = reopen(home)
    assert send_sms(app, count=4).retried == 4
    mails = list(db.Job.select().where(db.Job.kind == "send_mail"))
    assert [job.attempts for job in mails] == [1, 1, 1, 1] and len(tries) == 1
    assert all("ConnectionRefusedError" in job.last_error for job in mails)
    db.Job.update(due_at=db.utcnow() - dt.timedelta(seconds=1)).execute()
    assert run_due_jobs(app).retried == 4 and len(tries) == 2  # a new run knocks again
    smtp_sink.start()
    db.Job.update(due_at=db.utcnow() - dt.timedelta(seconds=1)).execute()
    assert run_due_jobs(app).done == 4 and len(smtp_sink.handler.messages) == 4


def test_starttls_required_but_not_offered_sends_nothing(home, smtp_sink):
    use_mailserver(home, smtp_sink, smtp__starttls="required")
    app = reopen(home)
    summary = send_sms(app)
    assert summary.retried == 1 and smtp_sink.handler.messages == []
    job = db.Job.get(db.Job.kind == "send_mail")
    assert "offers no STARTTLS" in job.last_error


@pytest.fixture(scope="module")
def certificate_authority():
    return trustme.CA()


@pytest.fixture
def tls_sink(certificate_authority, tmp_path):
    server_cert = certificate_authority.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(context)
    logins = []

    def authenticate(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        ok = (auth_data.login, auth_data.password) == (b"ums", b"s3cret-pass")
        return AuthResult(success=ok, handled=False)

    sink = SmtpSink(
        tls_context=context,
        authenticator=authenticate,
        auth_require_tls=True,
        auth_exclude_mechanism=["LOGIN"],
    )
    sink.logins = logins
    sink.start()
    yield sink
    sink.stop()


def write_secret(path, text, mode=0o600):
    path.write_text(text + "\n")
    os.chmod(path, mode)
    return str(path)


def test_starttls_and_auth_with_verified_certificate(
    home, tls_sink, certificate_authority, tmp_path
):
    ca_file = tmp_path / "ca.pem"
    certificate_authority.cert_pem.write_to_path(str(ca_file))
    use_mailserver(
        home,
        tls_sink,
        smtp__starttls="required",
        smtp__ca_file=str(ca_file),
        smtp__user="ums",
        smtp__password_file=write_secret(tmp_path / "pw", "s3cret-pass"),
    )
    app = reopen(home)
    summary = send_sms(app)
    assert summary.failed == 0 and summary.retried == 0
    [(_, tls, authenticated)] = tls_sink.handler.sessions
    assert tls and authenticated
    assert tls_sink.logins == [(b"ums", b"s3cret-pass")]


def test_starttls_with_unknown_certificate_is_refused(home, tls_sink):
    use_mailserver(home, tls_sink, smtp__starttls="required")
    app = reopen(home)
    summary = send_sms(app)
    assert summary.retried == 1 and tls_sink.handler.messages == []
    assert (
        "CERTIFICATE_VERIFY_FAILED" in db.Job.get(db.Job.kind == "send_mail").last_error
    )


def test_password_file_readable_by_others_is_refused(
    home, tls_sink, certificate_authority, tmp_path
):
    ca_file = tmp_path / "ca.pem"
    certificate_authority.cert_pem.write_to_path(str(ca_file))
    secret = write_secret(tmp_path / "pw", "s3cret-pass")
    use_mailserver(
        home,
        tls_sink,
        smtp__starttls="required",
        smtp__ca_file=str(ca_file),
        smtp__user="ums",
        smtp__password_file=secret,
    )
    os.chmod(secret, 0o644)
    app = reopen(home)
    with pytest.raises(UmsError, match="readable by others"):
        app.config.set("smtp.password_file", secret)
    send_sms(app)
    job = db.Job.get(db.Job.kind == "send_mail")
    assert "readable by others" in job.last_error and tls_sink.logins == []


def test_password_never_reaches_the_log(
    home, tls_sink, certificate_authority, tmp_path
):
    ca_file = tmp_path / "ca.pem"
    certificate_authority.cert_pem.write_to_path(str(ca_file))
    use_mailserver(
        home,
        tls_sink,
        smtp__starttls="required",
        smtp__ca_file=str(ca_file),
        smtp__user="ums",
        smtp__timeout="5s",
        smtp__password_file=write_secret(tmp_path / "pw", "wrong-secret-xyz"),
    )
    app = reopen(home)
    from ums_core.cli import start_file_log

    start_file_log(app.home)
    send_sms(app)
    job = db.Job.get(db.Job.kind == "send_mail")
    assert "authentication failed: 535" in job.last_error and job.state == "queued"
    assert b"wrong-secret-xyz" not in stored_bytes(app.home)
    with open(os.path.join(app.home, "log/ums.log"), "rb") as handle:
        assert b"wrong-secret-xyz" not in handle.read()


def test_password_is_never_sent_without_tls(home, smtp_sink, tmp_path):
    """Opportunistic STARTTLS against a server without it: no AUTH in clear."""
    use_mailserver(
        home,
        smtp_sink,
        smtp__starttls="opportunistic",
        smtp__user="ums",
        smtp__password_file=write_secret(tmp_path / "pw", "clear-text-secret"),
    )
    app = reopen(home)
    summary = send_sms(app)
    assert summary.retried == 1 and smtp_sink.handler.messages == []
    job = db.Job.get(db.Job.kind == "send_mail")
    assert "without TLS" in job.last_error


# --- DATA sent from the file in pieces -----------------------------------------


WIRES = [
    b".top\r\nmid.dle\r\n..two\nbare lf\rbare cr\r\n.\r\nlast line",
    b"clean\r\nbase64QUJD\r\nno dots at line starts.\r\n",
    b"clean\r\n.dot after crlf\r\n",
    b"only bare lf\nhere\n",
    b"only bare cr\rhere\r",
    b"crlf\r\nthen one cr\rend\r\n",
    b"\r\n\r\n",
]


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("size", [1, 2, 3, 7, 1 << 20])
def test_stuffed_pieces_match_smtplib_for_any_piece_size(size, wire):
    """Dots doubled at line starts, bare CR/LF made CRLF, whatever the cut."""
    import io
    import smtplib

    from ums_core.transport import stuffed_pieces

    expected = smtplib._quote_periods(smtplib._fix_eols(wire.decode()).encode())
    if not expected.endswith(b"\r\n"):
        expected += b"\r\n"  # as SMTP.data does
    expected += b".\r\n"
    assert b"".join(stuffed_pieces(io.BytesIO(wire), size)) == expected


def test_big_wav_is_streamed_and_arrives_byte_for_byte(home, smtp_sink, tmp_path):
    """The attachment is written base64 from the file and sent in pieces."""
    from email import policy
    from email.parser import BytesParser

    from ums_core.samples import write_wav

    use_mailserver(home, smtp_sink)
    app = reopen(home)
    app.config.set("default_recipient", "bob@example.test")
    wav = tmp_path / "long.wav"
    write_wav(str(wav), seconds=90.0)
    receive_message(
        app, IncomingMessage(kind="voice", called="+4930999", content_path=str(wav))
    )
    assert run_due_jobs(app).done == 1
    [(_, _, raw)] = smtp_sink.handler.messages
    mail = BytesParser(policy=policy.default).parsebytes(raw)
    [audio] = list(mail.iter_attachments())
    assert audio.get_content() == wav.read_bytes()
    assert b"ums-streamed-part-" not in raw
    lines = raw.split(b"\r\n")
    assert max(len(line) for line in lines) <= 998 and b"\n" not in raw.replace(
        b"\r\n", b""
    )


@pytest.mark.parametrize(
    "size", [0, 1, 56, 57, 58, 76, 4096, 933_887, 933_888, 933_889]
)
def test_streamed_base64_is_the_standard_one_in_crlf_lines(tmp_path, size):
    import base64

    from ums_core.mailqueue import BASE64_CHUNK, _base64_lines

    assert BASE64_CHUNK == 933_888
    data = os.urandom(size)
    (tmp_path / "part").write_bytes(data)
    expected = base64.encodebytes(data).rstrip(b"\n").replace(b"\n", b"\r\n")
    assert b"".join(_base64_lines(str(tmp_path / "part"))) == expected
    assert b"".join(_base64_lines(data)).replace(b"\r\n", b"") == base64.b64encode(data)
