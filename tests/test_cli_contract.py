"""The admin contract: the exact commands and keys acceptance checks type."""

import json
import subprocess
import sys

from conftest import SmtpSink, init_options

from ums_core.samples import write_fax_tiff, write_wav

UMS = [sys.executable, "-c", "from ums_core.cli import main; main()"]


def ums(home, *args, check=True, input=None):
    result = subprocess.run(
        [*UMS, "--home", home, *args],
        capture_output=True,
        text=True,
        timeout=120,
        input=input,
    )
    if check:
        assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def test_contract_local_mode_end_to_end(tmp_path):
    home = str(tmp_path / "h")
    fax, wav = str(tmp_path / "f.tif"), str(tmp_path / "v.wav")
    write_fax_tiff(fax, "contract", pages=2)
    write_wav(wav, seconds=1.5)
    ums(home, "init", *init_options())
    ums(home, "config", "set", "default_recipient", "office@example.test")
    ums(home, "config", "set", "info_mails", "false")
    ums(home, "config", "set", "site.country", "DE")
    ums(home, "config", "set", "site.area_code", "89")
    ums(
        home,
        "users",
        "add",
        "alice@example.test",
        "--name",
        "Alice",
        "--fax",
        "+4989123456",
        "--lang",
        "de",
    )
    fax_id = ums(
        home, "receive", "fax", fax, "--from", "+4930555010", "--to", "+4989123456"
    ).stdout.strip()
    voice_id = ums(
        home, "receive", "voice", wav, "--from", "+4930555010", "--to", "+4989123456"
    ).stdout.strip()
    sms_id = ums(
        home,
        "receive",
        "sms",
        "--from",
        "+4930555010",
        "--to",
        "+4989999999",
        "--text",
        "hallo",
    ).stdout.strip()
    stdin_id = ums(
        home, "receive", "sms", "--to", "089 123456", input="aus stdin\n"
    ).stdout.strip()
    assert all(x.isdigit() for x in (fax_id, voice_id, sms_id, stdin_id))
    listed = {
        str(m["id"]): m
        for m in json.loads(ums(home, "messages", "list", "--json").stdout)
    }
    assert listed[fax_id]["kind"] == "fax" and listed[fax_id]["pages"] == 2
    assert listed[voice_id]["kind"] == "voice"
    for key in (
        "id",
        "kind",
        "direction",
        "recipient",
        "default_recipient",
        "location",
        "state",
    ):
        assert key in listed[fax_id]
    assert listed[fax_id]["recipient"] == "alice@example.test"
    assert listed[fax_id]["default_recipient"] is False
    assert listed[sms_id]["recipient"] == "office@example.test"
    assert listed[sms_id]["default_recipient"] is True
    assert {m["location"] for m in listed.values()} == {"local"}
    assert {m["direction"] for m in listed.values()} == {"inbound"}
    assert ums(home, "queue", "run").returncode == 0
    plugins = json.loads(ums(home, "plugins", "list", "--json").stdout)
    assert all(
        {"name", "version", "enabled", "active", "reason"} <= set(p) for p in plugins
    )


def test_contract_mailserver_mode_end_to_end(tmp_path):
    home = str(tmp_path / "h")
    sink = SmtpSink()
    sink.start()
    try:
        ums(home, "init", *init_options())
        ums(home, "mode", "mailserver")
        ums(home, "config", "set", "default_recipient", "office@example.test")
        ums(home, "config", "set", "smtp.host", "127.0.0.1")
        ums(home, "config", "set", "smtp.port", str(sink.port))
        ums(home, "config", "set", "smtp.starttls", "off")
        ums(
            home,
            "users",
            "add",
            "alice@example.test",
            "--name",
            "Alice",
            "--fax",
            "+4989123456",
            "--lang",
            "de",
        )
        message_id = ums(
            home,
            "receive",
            "sms",
            "--from",
            "+4930555010",
            "--to",
            "+4989123456",
            "--text",
            "per Mail",
        ).stdout.strip()
        assert ums(home, "queue", "run").returncode == 0
        [message] = json.loads(ums(home, "messages", "list", "--json").stdout)
        assert str(message["id"]) == message_id
        assert (message["location"], message["state"]) == ("mailserver", "delivered")
        [mail] = sink.handler.parsed()
        assert mail["To"].addresses[0].addr_spec == "alice@example.test"
        assert str(mail["Subject"]).startswith("SMS von")
    finally:
        sink.stop()


def test_contract_queue_run_exits_nonzero_when_something_failed(tmp_path):
    home = str(tmp_path / "h")
    sink = SmtpSink()
    sink.start()
    sink.handler.refuse["office@example.test"] = "554 5.7.1 rejected"
    try:
        ums(home, "init", *init_options())
        ums(home, "mode", "mailserver")
        ums(home, "config", "set", "default_recipient", "office@example.test")
        ums(home, "config", "set", "smtp.host", "127.0.0.1")
        ums(home, "config", "set", "smtp.port", str(sink.port))
        ums(home, "receive", "sms", "--to", "+4930999", "--text", "x")
        run = ums(home, "queue", "run", check=False)
        assert run.returncode == 1 and "failed 1" in run.stdout
        [message] = json.loads(ums(home, "messages", "list", "--json").stdout)
        assert message["state"] == "failed"
    finally:
        sink.stop()


def test_contract_bad_fax_exits_nonzero(tmp_path):
    home = str(tmp_path / "h")
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"\x00" * 100)
    ums(home, "init", *init_options())
    result = ums(home, "receive", "fax", str(bad), "--to", "+4930999", check=False)
    assert result.returncode == 1 and result.stderr.startswith("Error: ")
    assert "Traceback" not in result.stderr
    assert json.loads(ums(home, "messages", "list", "--json").stdout) == []


def test_contract_a_truncated_fax_is_one_error_line(tmp_path):
    """No library warning beside ums's own error (Pillow's, pypdf's)."""
    import img2pdf

    home = str(tmp_path / "h")
    ums(home, "init", *init_options())
    tiff = tmp_path / "whole.tif"
    write_fax_tiff(str(tiff), "truncated", pages=2)
    data = tiff.read_bytes()
    pdf = img2pdf.convert(data)
    cut = {"cut.tif": data[:-40], "cut.pdf": pdf[: len(pdf) // 2]}
    for name, body in cut.items():
        (tmp_path / name).write_bytes(body)
        result = ums(home, "receive", "fax", str(tmp_path / name), "--to", "+4930999",
                     check=False)  # fmt: skip
        lines = result.stderr.splitlines()
        assert result.returncode == 1 and lines[0].startswith("Error: "), lines
        assert all(line.startswith(("Error: ", "Hint: ")) for line in lines), lines
