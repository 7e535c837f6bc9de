"""Plugin discovery, the activation rule, broken plugins, third-party installs."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from ums_core.plugins import LoadedPlugin, decide_activation, read_only_filter

UMS = [sys.executable, "-c", "from ums_core.cli import main; main()"]


class FakeConfig:
    def __init__(self, **values):
        self.values = {
            "mode": "local",
            "archiving": False,
            "info_mails": False,
            "plugins.disabled": [],
        }
        self.values.update(values)

    def get(self, name):
        return self.values[name]


@pytest.mark.parametrize(
    "role, info, settings, active, reason",
    [
        ("delivery", False, {}, False, "storage mode is local"),
        ("delivery", False, {"mode": "mailserver"}, True, ""),
        ("archive", False, {}, True, ""),
        ("archive", False, {"mode": "mailserver"}, False, "archiving is off"),
        ("archive", False, {"mode": "mailserver", "archiving": True}, True, ""),
        ("notice", True, {}, False, "info mails are off"),
        ("notice", True, {"info_mails": True}, True, ""),
        ("notice", False, {}, True, ""),
        (
            "extension",
            False,
            {"plugins.disabled": ["x"]},
            False,
            "disabled by the admin",
        ),
    ],
)
def test_decide_activation_rule(role, info, settings, active, reason):
    plugin = LoadedPlugin(
        name="x", distribution="d", version="1", obj=object(), role=role, info_mail=info
    )
    enabled, is_active, why = decide_activation(plugin, FakeConfig(**settings))
    assert is_active is active and reason in why


def test_read_only_filter_env():
    assert read_only_filter({}) is None
    assert read_only_filter({"UMS_PLUGINS": "none"}) == set()
    assert read_only_filter({"UMS_PLUGINS": "a, b"}) == {"a", "b"}


def test_plugins_list_json_contract(run):
    result = run("plugins", "list", "--json")
    assert result.exit_code == 0, result.output
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    for needed in ("mail_delivery", "local_store", "notifications.delivery_error"):
        assert needed in plugins
    for info in plugins.values():
        assert {"name", "version", "enabled", "active", "reason"} <= set(info)
    assert plugins["local_store"]["active"] is True
    assert plugins["mail_delivery"]["active"] is False
    assert "local" in plugins["mail_delivery"]["reason"]


def test_plugins_disable_enable(run):
    assert run("plugins", "disable", "local_store").exit_code == 0
    plugins = {
        p["name"]: p for p in json.loads(run("plugins", "list", "--json").stdout)
    }
    assert plugins["local_store"]["enabled"] is False
    assert plugins["local_store"]["active"] is False
    assert run("plugins", "enable", "local_store").exit_code == 0
    plugins = {
        p["name"]: p for p in json.loads(run("plugins", "list", "--json").stdout)
    }
    assert plugins["local_store"]["active"] is True
    assert run("plugins", "disable", "no_such_plugin").exit_code == 1


def test_disabled_local_store_keeps_message_queued(run):
    run("plugins", "disable", "local_store")
    result = run("receive", "sms", "--to", "+4930999", "--text", "hello")
    assert result.exit_code == 0
    [message] = json.loads(run("messages", "list", "--json").stdout)
    assert message["state"] == "received"
    [job] = json.loads(run("queue", "list", "--json").stdout)
    assert "no active archive plugin" in job["last_error"]


PLUGIN_CODE = '''
"""A third-party test plugin."""
import os
from ums_core.hookspecs import hookimpl

UMS_ROLE = "extension"

@hookimpl
def ums_message_received(message, ctx):
    with open(os.environ["THIRD_PARTY_LOG"], "a") as out:
        out.write(f"{message.id} {message.kind} {message.called}\\n")
'''

BROKEN_CODE = "raise RuntimeError('this plugin is broken on purpose')\n"

TYPO_CODE = """
from ums_core.hookspecs import hookimpl
UMS_ROLE = "extension"

@hookimpl
def ums_mesage_received(message, ctx):
    pass
"""


def build_plugin(folder, name, code):
    src = folder / name
    (src / name).mkdir(parents=True)
    (src / name / "__init__.py").write_text(textwrap.dedent(code))
    (src / "pyproject.toml").write_text(
        textwrap.dedent(f"""
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "{name.replace("_", "-")}"
        version = "2.5.0"
        [project.entry-points.ums]
        {name} = "{name}"
        [tool.setuptools]
        packages = ["{name}"]
    """)
    )
    return src


@pytest.fixture(scope="module")
def third_party_site(tmp_path_factory):
    """Build and pip-install three plugins into a folder of their own."""
    folder = tmp_path_factory.mktemp("plugins")
    site = folder / "site"
    sources = [
        build_plugin(folder, "acme_recorder", PLUGIN_CODE),
        build_plugin(folder, "acme_broken", BROKEN_CODE),
        build_plugin(folder, "acme_typo", TYPO_CODE),
    ]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            *map(str, sources),
        ],
        check=True,
    )
    return site


def run_ums(home, site, log, *args):
    env = dict(os.environ, PYTHONPATH=str(site), THIRD_PARTY_LOG=str(log))
    return subprocess.run(
        [*UMS, "--home", home, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_third_party_plugin_is_found_and_called(home, third_party_site, tmp_path):
    log = tmp_path / "calls.log"
    listed = run_ums(home, third_party_site, log, "plugins", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    plugins = {p["name"]: p for p in json.loads(listed.stdout)}
    assert (
        plugins["acme_recorder"]["active"]
        and plugins["acme_recorder"]["version"] == "2.5.0"
    )
    assert "this plugin is broken on purpose" in plugins["acme_broken"]["reason"]
    assert not plugins["acme_broken"]["active"]
    assert "unknown hook(s): ums_mesage_received" in plugins["acme_typo"]["reason"]
    assert "acme_broken" in listed.stderr
    received = run_ums(
        home,
        third_party_site,
        log,
        "receive",
        "sms",
        "--to",
        "+4930999",
        "--text",
        "hi",
    )
    assert received.returncode == 0, received.stderr
    assert log.read_text() == f"{received.stdout.strip()} sms +4930999\n"


def test_ums_plugins_env_limits_loading(home, third_party_site, tmp_path):
    log = tmp_path / "calls.log"
    env = dict(
        os.environ,
        PYTHONPATH=str(third_party_site),
        THIRD_PARTY_LOG=str(log),
        UMS_PLUGINS="local_store",
    )
    result = subprocess.run(
        [*UMS, "--home", home, "plugins", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    assert plugins["local_store"]["active"]
    assert not plugins["acme_recorder"]["active"]
    assert "UMS_PLUGINS" in plugins["acme_broken"]["reason"]
    assert "acme_broken" not in result.stderr
