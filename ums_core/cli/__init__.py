"""The ``ums`` command: the top-level group and how errors are shown.

Each sub-group lives in its own module and is imported only when used, so
``ums --help`` stays fast. Plugins add commands through ``ums_add_commands``.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import click

from ..errors import UmsError

SUBCOMMANDS = {
    "init": "ums_core.cli.instance:init_command",
    "mode": "ums_core.cli.instance:mode_command",
    "config": "ums_core.cli.config_cmd:config_group",
    "users": "ums_core.cli.users_cmd:users_group",
    "receive": "ums_core.cli.receive_cmd:receive_group",
    "messages": "ums_core.cli.messages_cmd:messages_group",
    "queue": "ums_core.cli.queue_cmd:queue_group",
    "plugins": "ums_core.cli.plugins_cmd:plugins_group",
    "serve": "ums_core.cli.serve_cmd:serve_command",
    "status": "ums_core.cli.status_cmd:status_command",
    "voicemail": "ums_core.cli.voicemail_cmd:voicemail_group",
    "announcement": "ums_core.cli.announcement_cmd:announcement_group",
    "templates": "ums_core.cli.templates_cmd:templates_group",
}


class CliState:
    """What the top-level options give every command."""

    def __init__(self, home: str | None, debug: bool, verbose: int):
        self.home = home
        self.debug = debug
        self.verbose = verbose
        self._app = None

    def app(self, load_plugins: bool = True):
        """Return the open instance (opened on first use)."""
        if self._app is None:
            from ..app import App, default_home

            self.home = self.home or default_home()
            self._app = App.open(self.home, load_plugins=load_plugins)
            start_file_log(self._app.home)
        return self._app


def start_file_log(home: str) -> None:
    """Log INFO and above to HOME/log/ums.log as well."""
    folder = os.path.join(home, "log")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    handler = logging.FileHandler(
        os.path.join(folder, "ums.log"), encoding="utf-8", errors="backslashreplace"
    )
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(min(root.level or logging.INFO, logging.INFO))


class UmsGroup(click.Group):
    """A group that loads sub-commands lazily and turns UmsError into one line."""

    def list_commands(self, ctx):
        names = set(SUBCOMMANDS) | set(super().list_commands(ctx))
        names |= set(_plugin_commands())
        return sorted(names)

    def get_command(self, ctx, name):
        if name in SUBCOMMANDS:
            module, attr = SUBCOMMANDS[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name) or _plugin_commands().get(name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UmsError as exc:
            state = ctx.obj
            if state is not None and state.debug:
                raise
            click.echo(f"Error: {exc.message}", err=True)
            if exc.hint:
                click.echo(f"Hint: {exc.hint}", err=True)
            sys.exit(1)


_PLUGIN_COMMANDS: dict | None = None


def _plugin_commands() -> dict:
    """Return the commands the installed, loadable plugins add."""
    global _PLUGIN_COMMANDS
    if _PLUGIN_COMMANDS is None:
        from ..plugins import (
            create_plugin_manager,
            discover_plugins,
            read_only_filter,
            register_plugin,
        )

        group = click.Group()
        pm = create_plugin_manager()
        for plugin in discover_plugins(read_only_filter()):
            if plugin.obj is not None:
                register_plugin(pm, plugin)
        pm.hook.ums_add_commands(cli=group)
        _PLUGIN_COMMANDS = {
            n: c for n, c in group.commands.items() if n not in SUBCOMMANDS
        }
    return _PLUGIN_COMMANDS


def _configure_logging(verbose: int, debug: bool) -> None:
    level = logging.DEBUG if debug else (logging.INFO if verbose else logging.WARNING)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.setLevel(level)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)


@click.group(cls=UmsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    help="Instance folder (default: $UMS_HOME, else ~/.local/share/ums).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.option("-v", "--verbose", count=True, help="Log events to stderr.")
@click.version_option(package_name="ums-core", prog_name="ums")
@click.pass_context
def cli(ctx, home, debug, verbose):
    """ums: faxes, voice messages and SMS to e-mail or a local store."""
    _configure_logging(verbose, debug)
    ctx.obj = CliState(home, debug, verbose)


def echo_json(data) -> None:
    """Print DATA as JSON."""
    import json

    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def main() -> None:
    """Run the ``ums`` command; everything it creates is owner-only."""
    os.umask(0o077)
    cli(prog_name="ums")
