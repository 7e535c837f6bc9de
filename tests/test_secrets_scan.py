"""Secrets: after a run that used every kind, no clear-text secret is on disk.

The run goes through the `ums` command in child processes, as an admin would
work: passwords mailed (STARTTLS + AUTH with the SMTP password) and shown,
voice-mailbox and announcement PINs shown, logins with right and wrong PINs.
Then the database, its WAL, the logs and every file in the instance are read.
"""

import os
import re
import subprocess
import sys

from conftest import REPO, use_mailserver
from test_transport import certificate_authority, tls_sink, write_secret  # noqa: F401

from ums_core import db
from ums_core.app import App

UMS = [sys.executable, "-c", "from ums_core.cli import main; main()"]
SMTP_PASSWORD = "s3cret-pass"
WRONG_PIN = "90817263"


def ums(home: str, *args: str) -> str:
    result = subprocess.run(
        [*UMS, "--home", home, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode in (0, 1), result.stderr
    return result.stdout + result.stderr


def shown(output: str, label: str) -> str:
    match = re.search(rf"^{label}: (\S+)$", output, re.MULTILINE)
    assert match, output
    return match.group(1)


def instance_files(home: str) -> list[str]:
    found = []
    for folder, _, names in os.walk(home):
        found += [os.path.join(folder, name) for name in names]
    return found


def find_secret(path: str, secret: str) -> bool:
    with open(path, "rb") as handle:
        data = handle.read()
    pattern = rb"(?<![0-9A-Za-z])" + re.escape(secret.encode()) + rb"(?![0-9A-Za-z])"
    return re.search(pattern, data) is not None


def run_with_every_secret(home: str, sink, ca_file: str, pw_file: str) -> list:
    """Use passwords, PINs and the SMTP password; return the clear-text secrets."""
    use_mailserver(
        home,
        sink,
        smtp__starttls="required",
        smtp__ca_file=ca_file,
        smtp__user="ums",
        smtp__password_file=pw_file,
        info_mails="true",
        announcement__number="+4989123499",
    )
    ums(home, "users", "add", "alice@example.test", "--voice", "+4989123457")
    ums(home, "queue", "run")
    [mail] = [raw.decode("utf-8", "replace") for _, _, raw in sink.handler.messages]
    mailed_password = re.search(r"Password: +(\S+)", mail).group(1)
    ums(home, "config", "set", "info_mails", "false")
    shown_password = shown(
        ums(home, "users", "add", "bob@example.test", "--voice", "+4989123458"),
        "password",
    )
    pin = shown(ums(home, "voicemail", "enable", "bob@example.test"), "pin")
    ums(home, "voicemail", "login", "+4989123458", "--pin", WRONG_PIN)
    assert "ok" in ums(home, "voicemail", "login", "+4989123458", "--pin", pin).lower()
    access = ums(home, "announcement", "access", "--to", "bob@example.test")
    secrets = [SMTP_PASSWORD, mailed_password, shown_password, pin, WRONG_PIN]
    if "pin:" in access:
        secrets.append(shown(access, "pin"))
    ums(home, "receive", "sms", "--to", "+4989123457", "--text", "hello")
    ums(home, "queue", "run")
    return secrets


def test_no_clear_text_secret_on_disk_and_all_owner_only_after_a_run(
    home,
    tls_sink,  # noqa: F811 (the fixture of test_transport)
    certificate_authority,  # noqa: F811
    tmp_path,
):
    ca_file = tmp_path / "ca.pem"
    certificate_authority.cert_pem.write_to_path(str(ca_file))
    pw_file = write_secret(tmp_path / "smtp-password", SMTP_PASSWORD)
    secrets = run_with_every_secret(home, tls_sink, str(ca_file), pw_file)
    assert len(tls_sink.logins) >= 2 and len(tls_sink.handler.messages) >= 2
    assert all(ssl for _, ssl, _ in tls_sink.handler.sessions)
    files = instance_files(home)
    assert {"ums.db", "ums.log"} <= {os.path.basename(f) for f in files}
    leaks = [(f, s) for f in files for s in secrets if find_secret(f, s)]
    assert leaks == []
    app = App.open(home, load_plugins=False)
    try:
        hashes = [u.password_hash for u in db.User.select()]
    finally:
        app.close()
    assert len(hashes) == 2 and all(h.startswith("$argon2id$") for h in hashes)
    loose = []
    for folder, dirs, names in os.walk(home):
        for name in [*dirs, *names, "."]:
            mode = os.stat(os.path.join(folder, name)).st_mode
            if mode & 0o077:
                loose.append((os.path.join(folder, name), oct(mode & 0o777)))
    assert loose == [], "\n".join(f"{p} {m}" for p, m in loose)
    os.chmod(pw_file, 0o640)
    output = ums(home, "receive", "sms", "--to", "+4989123457", "--text", "again")
    output += ums(home, "queue", "run")
    assert "readable by others" in output or "chmod 600" in output, output
