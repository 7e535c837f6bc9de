"""The configuration keys and ``ums config``."""

import json
import os

import pytest

from ums_core.app import App, create_instance
from ums_core.errors import UmsError


def read_file(home):
    with open(f"{home}/config.toml", encoding="utf-8") as handle:
        return handle.read()


def test_config_set_unknown_key_changes_nothing(run, home):
    before = read_file(home)
    result = run("config", "set", "smtp.hots", "mail.example.test")
    assert result.exit_code == 1
    assert "Error: unknown configuration key 'smtp.hots'" in result.stderr
    assert read_file(home) == before


def test_config_set_bad_value_changes_nothing(run, home):
    before = read_file(home)
    for key, value in [
        ("smtp.port", "twenty-five"),
        ("smtp.port", "70000"),
        ("smtp.starttls", "maybe"),
        ("mode", "cloud"),
        ("info_mails", "perhaps"),
        ("default_recipient", "not an address"),
        ("timezone", "Mars/Olympus"),
        ("site.country", "Germany"),
        ("system_sender", "ums\r\nBcc: x@evil.test"),
    ]:
        result = run("config", "set", key, value)
        assert result.exit_code == 1, (key, value)
        assert result.stderr.startswith(f"Error: bad value {value!r} for {key}")
        assert "\n" == result.stderr[-1] and result.stderr.count("\n") <= 2
    assert read_file(home) == before


def test_an_area_code_with_its_trunk_prefix_is_refused(run, home):
    before = read_file(home)
    for value in ("089", "0089"):
        result = run("config", "set", "site.area_code", value)
        assert result.exit_code == 1
        assert "starts with the trunk prefix 0 of DE" in result.stderr
        assert "Write it without: '89'" in result.stderr
    assert read_file(home) == before
    # Italy has no trunk prefix: Rome's area code is 06.
    assert run("config", "set", "site.country", "IT").exit_code == 0
    assert run("config", "set", "site.area_code", "06").exit_code == 0


def test_config_set_parses_types(run, home):
    assert run("config", "set", "smtp.port", "2525").exit_code == 0
    assert run("config", "set", "info_mails", "on").exit_code == 0
    assert run("config", "set", "retry.schedule", "30s,5m,1h").exit_code == 0
    config = App.open(home, load_plugins=False).config
    assert config.get("smtp.port") == 2525
    assert config.get("info_mails") is True
    assert config.get("retry.schedule") == [30.0, 300.0, 3600.0]


def test_config_show_json_lists_core_keys(run):
    result = run("config", "show", "--json")
    assert result.exit_code == 0
    values = json.loads(result.stdout)
    for key in (
        "mode",
        "info_mails",
        "archiving",
        "default_recipient",
        "system_sender",
        "timezone",
        "site.country",
        "site.area_code",
        "site.base_number",
        "site.outside_prefix",
        "smtp.host",
        "smtp.port",
        "smtp.starttls",
        "smtp.user",
        "smtp.password_file",
        "smtp.timeout",
        "gateway.fax_domain",
        "gateway.sms_domain",
        "retry.schedule",
        "fax.attachment_format",
    ):
        assert key in values
    assert values["mode"] == "local"
    assert values["info_mails"] is False


def test_init_creates_embedded_default_owner_only(tmp_path):
    from click.testing import CliRunner

    from ums_core.cli import cli

    home = tmp_path / "fresh"
    result = CliRunner().invoke(cli, ["--home", str(home), "init"])
    assert result.exit_code == 0, result.output
    assert (home.stat().st_mode & 0o777) == 0o700
    assert (home / "config.toml").stat().st_mode & 0o077 == 0
    app = App.open(str(home), load_plugins=False)
    assert app.config.get("mode") == "local"
    assert app.config.get("info_mails") is False
    again = CliRunner().invoke(cli, ["--home", str(home), "init"])
    assert again.exit_code == 1 and "already holds" in again.stderr


def test_schema_version_is_recorded(app):
    from ums_core import db

    assert db.read_schema_version(app.database) == db.SCHEMA_VERSION
    assert db.migrate(app.database) == db.SCHEMA_VERSION


def test_missing_instance_gives_hint(tmp_path):
    from click.testing import CliRunner

    from ums_core.cli import cli

    result = CliRunner().invoke(cli, ["--home", str(tmp_path / "none"), "mode"])
    assert result.exit_code == 1
    assert "no ums instance" in result.stderr and "init" in result.stderr


def test_mode_prints_and_changes(run):
    assert run("mode").stdout.strip() == "local"
    changed = run("mode", "mailserver")
    assert changed.exit_code == 0 and changed.stdout == "mode: mailserver\n"
    assert "smtp.host is not set" in changed.stderr  # a mail server is still needed
    assert run("mode").stdout.strip() == "mailserver"
    assert run("mode", "cloud").exit_code == 2
    assert run("config", "set", "smtp.host", "127.0.0.1").exit_code == 0
    assert run("mode", "mailserver").stderr == ""


def test_migration_from_schema_1_keeps_rows(tmp_path):
    """A database made by schema 1 gains the outbound columns, rows intact."""
    import sqlite3

    from ums_core import db

    path = str(tmp_path / "old.db")
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE meta (key VARCHAR(255) PRIMARY KEY, value TEXT);
        INSERT INTO meta VALUES ('schema_version', '1');
        CREATE TABLE message (id INTEGER PRIMARY KEY, kind VARCHAR(255),
            direction VARCHAR(255), called VARCHAR(255), sender VARCHAR(255),
            sender_raw VARCHAR(255), sender_name VARCHAR(255),
            station_id VARCHAR(255), received_at DATETIME, created_at DATETIME,
            recipient VARCHAR(255), default_recipient INTEGER,
            location VARCHAR(255), state VARCHAR(255), pages INTEGER,
            duration REAL, text TEXT, content_name VARCHAR(255),
            content_type VARCHAR(255), content_size INTEGER,
            content_sha256 VARCHAR(255), archive_ref VARCHAR(255), error TEXT,
            read_at DATETIME, source_ref VARCHAR(255));
        INSERT INTO message (id, kind, direction, called, sender_raw, sender_name,
            station_id, received_at, created_at, default_recipient, state, text,
            content_size, error)
            VALUES (7, 'sms', 'inbound', '+4930999', '', '', '',
            '2026-01-01 10:00:00', '2026-01-01 10:00:00', 1, 'stored', 'old', 0, '');
        """
    )
    old.commit()
    old.close()
    database = db.open_database(path)
    assert db.migrate(database) == db.SCHEMA_VERSION
    row = db.Message.get_by_id(7)
    assert (row.text, row.subject, row.attempts) == ("old", "", 0)
    assert db.read_schema_version(database) == db.SCHEMA_VERSION


def test_a_value_changed_by_one_caller_is_not_changed_for_the_next(tmp_path):
    from ums_core.config import load_config

    first = load_config(str(tmp_path / "a.toml"))
    second = load_config(str(tmp_path / "b.toml"))
    first.get("retry.schedule").append(99)
    first.get("gateway.allowed_clients").clear()
    assert 99 not in second.get("retry.schedule")
    assert 99 not in first.get("retry.schedule")
    assert second.get("gateway.allowed_clients") == first.get("gateway.allowed_clients")
    assert second.get("gateway.allowed_clients")
    first.set("smtp.port", "2526")
    assert first.get("smtp.port") == 2526 and second.get("smtp.port") != 2526


def test_init_leaves_a_folder_with_other_files_alone(tmp_path):
    folder = tmp_path / "home"
    folder.mkdir(mode=0o755)
    (folder / "important.txt").write_text("hi")
    with pytest.raises(UmsError, match="not empty and holds no ums instance"):
        create_instance(str(folder))
    assert sorted(os.listdir(folder)) == ["important.txt"]
    assert folder.stat().st_mode & 0o777 == 0o755
    empty = tmp_path / "empty"
    empty.mkdir()
    create_instance(str(empty))  # an empty folder is fine
    mount = tmp_path / "mount"  # a fresh file system, or an init cut short
    for name in ("lost+found", "content", "spool"):
        (mount / name).mkdir(parents=True)
    (mount / "ums.db").write_bytes(b"")
    (mount / "config.toml.tmp").write_text("mode = ")
    create_instance(str(mount))
    assert App.open(str(mount), load_plugins=False).config.get("mode") == "local"


@pytest.mark.parametrize(
    "line, words",
    [
        ("smtp = 5", "smtp must be a table of settings"),
        ('timezone = { name = "UTC" }', "timezone is a single value"),
    ],
)
def test_a_config_file_of_the_wrong_shape_is_one_clear_error(run, home, line, words):
    path = f"{home}/config.toml"
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(line + "\n" + text)  # top level, before any [table]
    result = run("status")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and words in result.stderr
