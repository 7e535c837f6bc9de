"""The configuration keys and ``ums config``."""

import json

from ums_core.app import App


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
    assert run("mode", "mailserver").exit_code == 0
    assert run("mode").stdout.strip() == "mailserver"
    assert run("mode", "cloud").exit_code == 2
