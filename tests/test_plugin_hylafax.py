"""The HylaFAX plugin (plugins/hylafax): recvq intake and sendfax transmission.

No HylaFAX runs here: sendfax and faxstat are small scripts on PATH, and the
qfiles they would leave are written per sendq(5).
"""

import fcntl
import hashlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from email.message import EmailMessage

import pytest
from conftest import corpus_path, reopen
from PIL import Image
from ums_hylafax import ums_transmit_message
from ums_hylafax.job_book import read_job_entry, write_job_entry
from ums_hylafax.job_status import make_result, parse_faxstat, read_qfile_status
from ums_hylafax.qfile import parse_qfile

from ums_core import db
from ums_core.context import PluginContext
from ums_core.gateway.accept import Envelope, accept_mail
from ums_core.gateway.addresses import parse_recipient
from ums_core.messages import to_model
from ums_core.numbers import SiteRules
from ums_core.queue import run_due_jobs
from ums_core.samples import write_fax_tiff
from ums_core.users import add_user

CALLER = "+4930555010"
CALLED = "+4989123456"
DESCRIPTION = f"+49 30 555010\n{CALLER}\nExample GmbH\n{CALLED}"
CORPUS_FAXES = (
    "g3test.tif",
    "fax2d.tif",
    "1page.tif",
    "test-single-gray-compression-type-2.tiff",
)
FAXSTAT_HEAD = (
    "HylaFAX scheduler on localhost: Running\n"
    "Modem ttyS0 (+49.89.123456): Running and idle\n\n"
    "JID  Pri S  Owner Number       Pages Dials     TTS Status\n"
)


def write_recvq_tiff(path, description=DESCRIPTION, when="2026:11:30 08:15:00"):
    """Write a 2-page fax with the tags faxgetty writes (recvq(5))."""
    write_fax_tiff(path, "received by HylaFAX", pages=2)
    with Image.open(path) as image:
        pages = []
        for number in range(image.n_frames):
            image.seek(number)
            pages.append(image.copy())
    tags = {270: description, 271: "USR", 272: "Courier", 306: when, 316: "faxhost"}
    pages[0].save(
        path,
        format="TIFF",
        save_all=True,
        append_images=pages[1:],
        compression="group3",
        dpi=(204, 98),
        tiffinfo=tags,
    )
    return str(path)


def snapshot(path):
    """Return what must not change about PATH: content, mode and times."""
    with open(path, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    info = os.stat(path)
    return digest, info.st_mode, info.st_mtime_ns


def inbound():
    return list(db.Message.select().where(db.Message.direction == "inbound"))


def test_receive_imports_corpus_faxes_once(run, home):
    paths = [corpus_path("fax", name) for name in CORPUS_FAXES]
    options = ["--from", CALLER, "--to", CALLED, "--tsi", "+49 30 555010"]
    first = run("hylafax", "receive", *paths, *options, "--commid", "000000012")
    assert first.exit_code == 0, first.output
    lines = first.stdout.splitlines()
    assert lines == [f"imported {p} as message {n}" for n, p in enumerate(paths, 1)]
    again = run("hylafax", "receive", *paths, *options)
    assert again.exit_code == 0
    assert again.stdout.splitlines() == [
        f"skipped {p}: already received as message {n}" for n, p in enumerate(paths, 1)
    ]
    reopen(home)
    rows = inbound()
    assert len(rows) == len(paths)
    assert {(r.kind, r.called, r.sender, r.station_id) for r in rows} == {
        ("fax", CALLED, CALLER, "+49 30 555010")
    }
    assert all(r.source_ref.startswith("hylafax:") for r in rows)


def test_receive_takes_caller_tsi_and_did_from_hylafax_tags(run, home, tmp_path):
    path = write_recvq_tiff(tmp_path / "fax00001.tif")
    result = run("hylafax", "receive", path)
    assert result.exit_code == 0, result.output
    reopen(home)
    [row] = inbound()
    assert (row.called, row.sender, row.sender_name) == (
        CALLED,
        CALLER,
        "Example GmbH",
    )
    assert row.station_id == "+49 30 555010" and row.pages == 2
    assert row.received_at.isoformat() == "2026-11-30T08:15:00+00:00"


def test_receive_options_win_over_tags(run, home, tmp_path):
    path = write_recvq_tiff(tmp_path / "fax00001.tif")
    result = run("hylafax", "receive", path, "--to", "+4989123457", "--name", "Ms X")
    assert result.exit_code == 0, result.output
    reopen(home)
    [row] = inbound()
    assert (row.called, row.sender_name) == ("+4989123457", "Ms X")


def test_receive_without_called_number_needs_default_to(run, home):
    path = corpus_path("fax", "g3test.tif")
    refused = run("hylafax", "receive", path, "--from", CALLER)
    assert refused.exit_code == 1
    assert "refused" in refused.output and "hylafax.default_to" in refused.output
    assert run("config", "set", "hylafax.default_to", "+4989123400").exit_code == 0
    result = run("hylafax", "receive", path, "--from", CALLER)
    assert result.stdout == f"imported {path} as message 1\n"
    reopen(home)
    assert [r.called for r in inbound()] == ["+4989123400"]


def test_receive_refuses_bad_input_and_leaves_it_untouched(run, home, tmp_path):
    good = write_recvq_tiff(tmp_path / "good.tif")
    truncated = tmp_path / "truncated.tif"
    with open(good, "rb") as handle:
        truncated.write_bytes(handle.read()[:3000])
    empty = tmp_path / "empty.tif"
    empty.write_bytes(b"")
    png = tmp_path / "page.tif"
    Image.new("1", (64, 64)).save(png, format="PNG")
    bad = [
        str(truncated),
        corpus_path("fax", "incorrect-compression-rle-as-g3.tif"),
        corpus_path("fax", "ccitt.pdf"),
        corpus_path("fax", "g3test.g3"),
        str(empty),
        str(png),
    ]
    before = [snapshot(p) for p in bad]
    missing = str(tmp_path / "fax99999.tif")
    result = run("hylafax", "receive", good, *bad, missing, "--to", CALLED)
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"imported {good} as message 1"
    for line, path in zip(lines[1:], [*bad, missing], strict=True):
        assert line.startswith(f"refused {path}: ") and len(line) > len(path) + 12
    assert "not a TIFF" in lines[3] and "empty" in lines[5]
    assert "no such file" in lines[7]
    assert [snapshot(p) for p in bad] == before
    reopen(home)
    assert len(inbound()) == 1


def test_receive_adds_the_reception_error_to_a_refusal(run, tmp_path):
    broken = tmp_path / "fax00002.tif"
    broken.write_bytes(b"II*\0" + b"\0" * 60)
    result = run("hylafax", "receive", str(broken), "--error", "RSPREC error/got DCN")
    assert result.exit_code == 1
    assert "(HylaFAX reported: RSPREC error/got DCN)" in result.output


def test_receive_finds_qfile_in_spool_and_reads_info_files(run, home, tmp_path):
    spool = tmp_path / "spool"
    (spool / "recvq").mkdir(parents=True)
    write_recvq_tiff(spool / "recvq" / "fax00007.tif", description="")
    write_recvq_tiff(spool / "recvq" / "fax00008.tif", description="<UNSPECIFIED>")
    info = tmp_path / "fax00008.info"
    info.write_text(
        "file:recvq/fax00008.tif\ncidnumber: +4930555011\ncidname:Muster \\\nAG\n"
        "sender:TSI 8\nto:+4989123457\ncommid:000000013\n"
    )
    assert run("config", "set", "hylafax.spool", str(spool)).exit_code == 0
    result = run("hylafax", "receive", "recvq/fax00007.tif", str(info), "--to", "")
    assert result.exit_code == 1, result.output
    assert "refused recvq/fax00007.tif: no called number" in result.output
    assert f"imported {info} as message 1" in result.output
    reopen(home)
    [row] = inbound()
    assert (row.called, row.sender, row.sender_name, row.station_id) == (
        "+4989123457",
        "+4930555011",
        "Muster AG",
        "TSI 8",
    )


def make_recvq(tmp_path):
    recvq = tmp_path / "recvq"
    recvq.mkdir()
    write_recvq_tiff(recvq / "fax00001.tif")
    write_recvq_tiff(recvq / "fax00002.tif", when="2026:11:30 09:00:00")
    (recvq / "fax00003.tif").write_bytes(b"")
    (recvq / "seqf").write_text("3")
    (recvq / "notes.txt").write_text("not a fax")
    return recvq


def list_folder(folder):
    return {name: snapshot(folder / name) for name in sorted(os.listdir(folder))}


def test_import_takes_only_finished_files_and_deletes_nothing(run, home, tmp_path):
    recvq = make_recvq(tmp_path)
    before = list_folder(recvq)
    with open(recvq / "fax00002.tif", "rb") as receiving:
        fcntl.flock(receiving, fcntl.LOCK_EX)
        first = run("hylafax", "import", str(recvq))
    assert first.exit_code == 0, first.output
    assert first.stdout == f"imported {recvq / 'fax00001.tif'} as message 1\n"
    second = run("hylafax", "import", str(recvq))
    assert second.stdout.splitlines() == [
        f"skipped {recvq / 'fax00001.tif'}: already received as message 1",
        f"imported {recvq / 'fax00002.tif'} as message 2",
    ]
    assert list_folder(recvq) == before
    reopen(home)
    assert [r.called for r in inbound()] == [CALLED, CALLED]


def test_import_refuses_a_broken_file_and_goes_on(run, tmp_path):
    recvq = make_recvq(tmp_path)
    (recvq / "fax00001.tif").write_bytes(b"MM\0*" + b"\xff" * 100)
    result = run("hylafax", "import", str(recvq))
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0].startswith(
        f"refused {recvq / 'fax00001.tif'}: "
    )
    assert f"imported {recvq / 'fax00002.tif'} as message 1" in result.output


def test_import_watch_survives_a_crash_per_file(run, tmp_path, monkeypatch):
    import ums_hylafax.receive as receive

    recvq = make_recvq(tmp_path)
    real = receive.read_recvq_tags

    def crash_on_first(path):
        if path.endswith("fax00001.tif"):
            raise RuntimeError("tag reader bug")
        return real(path)

    monkeypatch.setattr(receive, "read_recvq_tags", crash_on_first)
    args = ["--watch", "--passes", "3", "--interval", "0.1"]
    result = run("hylafax", "import", str(recvq), *args)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"refused {recvq / 'fax00001.tif'}: internal error: RuntimeError: "
        "tag reader bug",
        f"imported {recvq / 'fax00002.tif'} as message 1",
    ]


def read_line(stream, deadline):
    """Return the next line of STREAM, or '' when DEADLINE passes first."""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], 0.2)
        if ready:
            return stream.readline()
    return ""


def test_import_watch_stops_on_sigterm(home, tmp_path):
    recvq = tmp_path / "recvq"
    recvq.mkdir()
    write_recvq_tiff(recvq / "fax00001.tif")
    ums = [sys.executable, "-c", "from ums_core.cli import main; main()"]
    args = ["--home", home, "hylafax", "import", str(recvq), "--watch"]
    process = subprocess.Popen(
        [*ums, *args, "--interval", "0.2"], stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 15
        assert read_line(process.stdout, deadline).startswith("imported")
        write_recvq_tiff(recvq / "fax00002.tif", when="2026:11:30 09:00:00")
        assert "fax00002.tif as message 2" in read_line(process.stdout, deadline)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


FAKE_SENDFAX = """#!/bin/sh
printf '%s\\n' "$@" --- >> "$FAKE_HYLAFAX/sendfax.calls"
if [ -f "$FAKE_HYLAFAX/sendfax.fail" ]; then
    cat "$FAKE_HYLAFAX/sendfax.fail" >&2
    exit 1
fi
echo "request id is 17 (group id 17) for host localhost (1 file)"
"""
FAKE_FAXSTAT = """#!/bin/sh
echo "$*" >> "$FAKE_HYLAFAX/faxstat.calls"
cat "$FAKE_HYLAFAX/faxstat.out"
"""


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A folder with fake sendfax and faxstat on PATH, and a HylaFAX spool."""
    folder = tmp_path / "fake-hylafax"
    (folder / "bin").mkdir(parents=True)
    for name, script in (("sendfax", FAKE_SENDFAX), ("faxstat", FAKE_FAXSTAT)):
        path = folder / "bin" / name
        path.write_text(script)
        path.chmod(0o755)
    for queue in ("sendq", "doneq"):
        (folder / "spool" / queue).mkdir(parents=True)
    (folder / "faxstat.out").write_text(FAXSTAT_HEAD)
    monkeypatch.setenv("FAKE_HYLAFAX", str(folder))
    monkeypatch.setenv("PATH", f"{folder / 'bin'}{os.pathsep}{os.environ['PATH']}")
    return folder


@pytest.fixture
def fax_app(app, fake):
    app.config.set("transmit.fax", "hylafax")
    app.config.set("gateway.fax_domain", "fax.example.test")
    app.config.set("hylafax.spool", str(fake / "spool"))
    add_user("alice@example.test", SiteRules(area_code="89"), "Alice")
    return app


def send_fax(app, number=CALLER):
    """Accept a fax e-mail from Alice at the gateway; return the message id."""
    mail = EmailMessage()
    mail["From"], mail["Subject"] = "alice@example.test", "Bestellung"
    mail.set_content("Bitte liefern.")
    destination = parse_recipient(
        f"{number}@fax.example.test", "fax.example.test", "", app.site_rules
    )
    envelope = Envelope(
        "127.0.0.1", False, "alice@example.test", (destination,), mail.as_bytes()
    )
    reply = accept_mail(app, envelope)
    return int(reply.rsplit(" ", 1)[1])


def poll_again(app):
    db.Job.update(due_at=db.db_now()).where(db.Job.state == "queued").execute()
    return run_due_jobs(app)


def read_sendfax_calls(fake):
    path = fake / "sendfax.calls"
    if not path.exists():
        return []
    return [call.strip("\n").split("\n") for call in path.read_text().split("---")][:-1]


def set_faxstat_rows(fake, *rows):
    (fake / "faxstat.out").write_text(FAXSTAT_HEAD + "".join(r + "\n" for r in rows))


def write_qfile(fake, queue, **tags):
    lines = [f"{tag}:{value}" for tag, value in {"jobid": 17, **tags}.items()]
    (fake / "spool" / queue / "q17").write_text("\n".join(lines) + "\n")


def test_transmit_submits_once_and_follows_the_job_to_sent(fax_app, fake):
    message_id = send_fax(fax_app)
    assert run_due_jobs(fax_app).waiting == 1
    [call] = read_sendfax_calls(fake)
    assert call[:5] == ["-n", "-d", CALLER, "-f", "alice@example.test"]
    assert len(call) == 6 and call[5].endswith(".pdf") and os.path.exists(call[5])
    folder = PluginContext(fax_app).plugin_folder("hylafax")
    assert read_job_entry(folder, message_id)["job"] == "17"
    set_faxstat_rows(fake, "17   127 R    ums +4930555010   0:1   1:12         Sending")
    assert poll_again(fax_app).waiting == 1
    assert db.Message.get_by_id(message_id).state == "queued"
    set_faxstat_rows(fake, "17   127 D    ums +4930555010   1:1   1:12")
    poll_again(fax_app)
    row = db.Message.get_by_id(message_id)
    assert (row.state, row.attempts) == ("sent", 1)
    assert len(read_sendfax_calls(fake)) == 1
    asked = (fake / "faxstat.calls").read_text().splitlines()
    assert asked == ["-s -d", "-s -d"]
    result = ums_transmit_message(
        message=to_model(fax_app, row), ctx=PluginContext(fax_app)
    )
    assert result.status == "sent" and len(read_sendfax_calls(fake)) == 1


def test_transmit_failed_job_in_doneq_fails_with_its_reason(fax_app, fake):
    message_id = send_fax(fax_app)
    run_due_jobs(fax_app)
    write_qfile(
        fake, "doneq", state=8, status="No answer from remote", totdials=3, ndials=3
    )
    poll_again(fax_app)
    row = db.Message.get_by_id(message_id)
    assert row.state == "failed" and row.attempts == 3
    assert row.error == "No answer from remote (HylaFAX job 17)"


def test_transmit_requeued_job_is_retried_until_done(fax_app, fake):
    message_id = send_fax(fax_app)
    run_due_jobs(fax_app)
    write_qfile(
        fake, "sendq", state=3, status="Busy signal detected", totdials=1, ndials=1
    )
    assert poll_again(fax_app).retried == 1
    row = db.Message.get_by_id(message_id)
    assert (row.state, row.attempts) == ("queued", 1)
    assert row.error == "Busy signal detected (HylaFAX job 17 requeued)"
    os.unlink(fake / "spool" / "sendq" / "q17")
    write_qfile(fake, "doneq", state=7, npages=1, totdials=2, csi="+49 30 555010")
    poll_again(fax_app)
    row = db.Message.get_by_id(message_id)
    assert (row.state, row.attempts, row.remote_station) == ("sent", 2, "+49 30 555010")
    assert len(read_sendfax_calls(fake)) == 1


def test_transmit_killed_job_fails(fax_app, fake):
    message_id = send_fax(fax_app)
    run_due_jobs(fax_app)
    set_faxstat_rows(
        fake, "17   127 F    ums +4930555010   0:1   0:12         Job aborted by re"
    )
    poll_again(fax_app)
    row = db.Message.get_by_id(message_id)
    assert row.state == "failed"
    assert row.error.startswith("killed in HylaFAX (job 17): Job aborted")


def test_transmit_sendfax_refusal_is_retried_and_submitted_later(fax_app, fake):
    (fake / "sendfax.fail").write_text("Unable to connect to server localhost\n")
    message_id = send_fax(fax_app)
    assert run_due_jobs(fax_app).retried == 1
    row = db.Message.get_by_id(message_id)
    assert "Unable to connect" in row.error and row.state == "queued"
    folder = PluginContext(fax_app).plugin_folder("hylafax")
    assert read_job_entry(folder, message_id) is None
    os.unlink(fake / "sendfax.fail")
    assert poll_again(fax_app).waiting == 1
    assert len(read_sendfax_calls(fake)) == 2
    assert read_job_entry(folder, message_id)["state"] == "submitted"


def test_transmit_interrupted_submission_is_not_repeated(fax_app, fake):
    message_id = send_fax(fax_app)
    folder = PluginContext(fax_app).plugin_folder("hylafax")
    write_job_entry(folder, message_id, {"state": "submitting"})
    run_due_jobs(fax_app)
    row = db.Message.get_by_id(message_id)
    assert row.state == "failed" and "interrupted" in row.error
    assert read_sendfax_calls(fake) == []


def test_transmit_remote_server_gets_host_and_is_asked_by_faxstat(fax_app, fake):
    fax_app.config.set("hylafax.host", "fax.example.test")
    message_id = send_fax(fax_app)
    run_due_jobs(fax_app)
    [call] = read_sendfax_calls(fake)
    assert call[:2] == ["-h", "fax.example.test"]
    write_qfile(fake, "doneq", state=8, status="local spool of another server")
    set_faxstat_rows(fake, "17   127 D    ums +4930555010   2:2   1:12")
    poll_again(fax_app)
    assert db.Message.get_by_id(message_id).state == "sent"
    asked = (fake / "faxstat.calls").read_text().splitlines()
    assert asked == ["-h fax.example.test -s -d"]


def test_transmit_job_hylafax_forgot_fails_after_three_looks(fax_app, fake):
    message_id = send_fax(fax_app)
    run_due_jobs(fax_app)
    for _ in range(2):
        assert poll_again(fax_app).waiting == 1
    poll_again(fax_app)
    row = db.Message.get_by_id(message_id)
    assert row.state == "failed" and "no longer lists job 17" in row.error


def test_other_backends_do_not_reach_hylafax(fax_app, fake):
    fax_app.config.set("transmit.fax", "simulation")
    message_id = send_fax(fax_app)
    run_due_jobs(fax_app)
    assert db.Message.get_by_id(message_id).state == "sent"
    assert read_sendfax_calls(fake) == []


def test_corpus_sendq_qfile_is_a_blocked_job_still_pending():
    with open(corpus_path("hylafax", "sendq-qfile-gofaxip")) as handle:
        tags = parse_qfile(handle.read())
    status = read_qfile_status(tags["jobid"], tags)
    assert (status.state, status.status) == (4, "Blocked by concurrent calls")
    assert make_result(status).status == "pending"


def test_faxstat_rows_are_read_with_and_without_a_send_time():
    output = FAXSTAT_HEAD + (
        "18   127 S    ums +4930555010   0:2   2:12   14:05 Busy signal detected\n"
        "JID  Pri S  Owner Number       Pages Dials     TTS Status\n"
        "17   127 D    ums +4930555011   2:2   1:12\n"
    )
    requeued = parse_faxstat(output, "18")
    assert (requeued.state, requeued.status, requeued.totdials) == (
        3,
        "Busy signal detected",
        2,
    )
    assert make_result(requeued).status == "retry"
    done = parse_faxstat(output, "17")
    assert (done.state, done.npages, done.status) == (7, 2, "")
    assert parse_faxstat(output, "19") is None


def test_job_book_is_json_keyed_by_message_id(tmp_path):
    write_job_entry(str(tmp_path), 5, {"state": "submitted", "job": "17"})
    with open(tmp_path / "jobs.json") as handle:
        assert json.load(handle)["5"]["job"] == "17"
    write_job_entry(str(tmp_path), 5, None)
    assert read_job_entry(str(tmp_path), 5) is None


def test_info_file_naming_no_tiff_is_refused(run, tmp_path):
    info = tmp_path / "fax.info"
    info.write_text(f"file:{corpus_path('fax', 'kcs.pdf')}\nto:{CALLED}\n")
    result = run("hylafax", "receive", str(info))
    assert result.exit_code == 1
    assert "(named by the info file) is not a TIFF file" in result.stdout


def test_settings_refuse_a_host_that_looks_like_an_option(run):
    assert run("config", "set", "--", "hylafax.host", "-x").exit_code == 1
    assert run("config", "set", "hylafax.host", "fax host").exit_code == 1
    assert run("config", "set", "hylafax.host", "fax.example.test:4559").exit_code == 0


def test_receive_refuses_a_symlink_and_keeps_it(run, tmp_path):
    from ums_core.samples import write_fax_tiff

    real = tmp_path / "fax00103.tif"
    write_fax_tiff(str(real), "linked")
    link = tmp_path / "link.tif"
    link.symlink_to(real)
    result = run("hylafax", "receive", str(link), "--to", "+4989123456")
    assert result.exit_code == 1 and "symbolic link" in result.output
    assert link.is_symlink() and real.exists()
