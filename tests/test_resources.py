"""A full disk and very large input: a clear refusal, nothing partial, work resumes.

The full disk is RLIMIT_FSIZE: a write past the limit fails with EFBIG, just
as one fails with ENOSPC on a full file system (Python ignores SIGXFSZ). The
CLI gets the limit in its own process; the spool watcher and the gateway get
it in this process for the few calls that must fail, then it is lifted.
"""

import contextlib
import os
import resource
import smtplib
import struct
import subprocess
import sys
from email import policy
from email.message import EmailMessage

from conftest import REPO
from test_gateway import FAX, gateway_app, outbound  # noqa: F401

from ums_core import db
from ums_core.app import App, create_instance
from ums_core.samples import write_wav
from ums_core.spool import scan_spool, spool_folder, submit_to_spool

LIMIT = 256 * 1024
UMS = [sys.executable, "-c", "from ums_core.cli import main; main()"]


@contextlib.contextmanager
def file_size_limit(size: int):
    """Let no file of this process grow past SIZE bytes meanwhile."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def limit_child() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, hard))


def files_under(home: str, area: str) -> list[str]:
    found = []
    for folder, _, names in os.walk(os.path.join(home, area)):
        found += [os.path.join(folder, name) for name in names]
    return found


def ums(home: str, *args: str, limited: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*UMS, "--home", home, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        preexec_fn=limit_child if limited else None,
    )


def count_messages(home: str) -> int:
    app = App.open(home, load_plugins=False)
    try:
        return db.Message.select().count()
    finally:
        app.close()


def test_cli_on_full_disk_refuses_clearly_then_works(home, tmp_path):
    wav = tmp_path / "long.wav"
    write_wav(str(wav), seconds=30.0)
    args = ("receive", "voice", str(wav), "--from", "+4930555010", "--to", "+4989100")
    refused = ums(home, *args, limited=True)
    assert refused.returncode == 1, refused.stderr
    first = refused.stderr.splitlines()[0]
    assert first.startswith("Error: no space to write content/"), refused.stderr
    assert "Traceback" not in refused.stderr
    assert files_under(home, "content") == [] and count_messages(home) == 0
    taken = ums(home, *args)
    assert taken.returncode == 0, taken.stderr
    [stored] = files_under(home, "content")
    assert os.path.getsize(stored) == os.path.getsize(wav)
    assert count_messages(home) == 1


def test_spool_entry_on_full_disk_waits_in_the_spool(app, tmp_path):
    """Nothing goes to spool/bad for want of space: it is taken once space returns."""
    wav = tmp_path / "long.wav"
    write_wav(str(wav), seconds=30.0)
    name = submit_to_spool(
        app.home, {"kind": "voice", "from": "+4930555010", "to": "+4989100"}, str(wav)
    )
    with file_size_limit(LIMIT):
        [outcome] = scan_spool(app)
    assert outcome.message_id is None and "no space" in outcome.error
    assert os.listdir(spool_folder(app.home, "bad")) == []
    assert f"{name}.json" in os.listdir(spool_folder(app.home, "new"))
    assert files_under(app.home, "content") == []
    assert db.Message.select().count() == 0
    [outcome] = scan_spool(app)
    assert outcome.message_id is not None
    assert os.listdir(spool_folder(app.home, "new")) == []


def big_fax_mail() -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "alice@example.test"
    mail["To"] = FAX
    mail["Subject"] = "big"
    mail["Message-ID"] = "<big@example.test>"
    mail.set_content("Please fax.")
    mail.add_attachment(
        os.urandom(400 * 1024), "application", "octet-stream", filename="a.bin"
    )
    return mail


def test_gateway_on_full_disk_answers_451_then_takes_the_retry(gateway_app):  # noqa: F811
    data = big_fax_mail().as_bytes(policy=policy.SMTP)
    with smtplib.SMTP("127.0.0.1", gateway_app.port, timeout=20) as smtp:
        with file_size_limit(LIMIT):
            try:
                smtp.sendmail("alice@example.test", [FAX], data)
                reply = 250
            except smtplib.SMTPDataError as exc:
                reply = exc.smtp_code
        assert reply == 451
        assert outbound() == [] and files_under(gateway_app.home, "content") == []
        smtp.sendmail("alice@example.test", [FAX], data)
    assert len(outbound()) == 1


def write_silent_wav(path, data_bytes: int) -> None:
    """Write a PCM WAV of DATA_BYTES zero bytes quickly, in 1 MiB pieces."""
    header = struct.pack("<4sI4s", b"RIFF", 36 + data_bytes, b"WAVE")
    header += struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, 8000, 16000, 2, 16)
    header += struct.pack("<4sI", b"data", data_bytes)
    with open(path, "wb") as out:
        out.write(header)
        for _ in range(data_bytes // (1 << 20)):
            out.write(bytes(1 << 20))


def peak_memory_mb(home: str, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    """Run one ums command in a child; return its result and its peak RSS in MiB."""
    probe = (
        "import resource, subprocess, sys;"
        "r = subprocess.run(sys.argv[1:]);"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss;"
        "print(peak / 1024, file=sys.stderr); sys.exit(r.returncode)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, *UMS, "--home", home, *args],
        capture_output=True,
        text=True,
        timeout=180,
    )
    return result, float(result.stderr.strip().splitlines()[-1])


def test_large_voice_message_is_taken_in_bounded_memory(tmp_path):
    """A 64 MiB WAV is taken (local mode) with no more memory than a 1 MiB one."""
    peaks = []
    for size in (1 << 20, 64 << 20):
        home = str(tmp_path / f"home{size}")
        config = create_instance(home)
        config.set("default_recipient", "office@example.test")
        config.save()
        wav = tmp_path / f"{size}.wav"
        write_silent_wav(wav, size)
        args = ("receive", "voice", str(wav), "--to", "+4989100")
        result, peak = peak_memory_mb(home, *args)
        assert result.returncode == 0, result.stderr
        assert files_under(home, "content")[0].endswith(".wav")
        peaks.append(peak)
    assert peaks[1] - peaks[0] < 16, f"peak RSS {peaks} MiB for 1 and 64 MiB"


def test_content_over_the_limit_is_refused_before_anything_is_written(home, tmp_path):
    wav = tmp_path / "big.wav"
    write_silent_wav(wav, 2 << 20)
    assert ums(home, "config", "set", "limits.max_content_mb", "1").returncode == 0
    args = ("receive", "voice", str(wav), "--to", "+4989100")
    result = ums(home, *args)
    assert result.returncode == 1
    assert "too large" in result.stderr and "limit 1048576" in result.stderr
    assert files_under(home, "content") == [] and count_messages(home) == 0


def test_jobs_held_by_a_cycle_that_failed_run_in_the_next(app, monkeypatch):
    """A failure that cannot even be recorded (a full disk) does not strand jobs
    under their lease: the next cycle of `ums serve` requeues and runs them."""
    import peewee

    from ums_core import queue
    from ums_core.intake import receive_message
    from ums_core.model import IncomingMessage
    from ums_core.serve import Server

    for text in ("one", "two", "three"):
        sms = IncomingMessage(kind="sms", called="+4989100", text=text)
        receive_message(app, sms, run_now=False)

    def disk_full(*args, **kwargs):
        raise peewee.OperationalError("disk I/O error")

    monkeypatch.setattr("ums_core.delivery.deliver_message", disk_full)
    monkeypatch.setattr(queue, "_retry_or_fail", disk_full)
    server = Server(app)
    server.run_cycle()
    assert db.Job.select().where(db.Job.state == "running").count() == 3
    monkeypatch.undo()
    server.run_cycle()
    assert {j.state for j in db.Job.select()} == {"done"}
    assert {m.state for m in db.Message.select()} == {"stored"}
