"""``ums plugins``: what is installed, enabled and active."""

from __future__ import annotations

import attrs
import click

from . import CliState, echo_json


@click.group("plugins")
def plugins_group():
    """List, enable and disable plugins."""


@plugins_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def list_command(state: CliState, as_json):
    """List every installed plugin: version, enabled, active now, why not."""
    from ..plugins import describe_plugin

    app = state.app()
    infos = [describe_plugin(p, app.config) for p in app.plugins]
    if as_json:
        echo_json([attrs.asdict(info) for info in infos])
        return
    for info in infos:
        status = "active" if info.active else "inactive"
        enabled = "enabled" if info.enabled else "disabled"
        why = f"  ({info.reason})" if info.reason else ""
        line = f"{info.name:<28} {info.version:<8} {info.role:<12} {enabled:<9}"
        click.echo(f"{line}{status}{why}")


def _set_disabled(state: CliState, name: str, disabled: bool) -> None:
    from ..errors import UmsError

    app = state.app()
    if name not in {p.name for p in app.plugins}:
        raise UmsError(f"no plugin {name!r}", hint="'ums plugins list' shows them")
    names = set(app.config.get("plugins.disabled"))
    names = names | {name} if disabled else names - {name}
    app.config.set("plugins.disabled", ",".join(sorted(names)))
    app.config.save()


@plugins_group.command("enable")
@click.argument("name")
@click.pass_obj
def enable_command(state: CliState, name):
    """Enable plugin NAME (it is active when the mode and settings allow)."""
    _set_disabled(state, name, False)
    click.echo(f"enabled {name}")


@plugins_group.command("disable")
@click.argument("name")
@click.pass_obj
def disable_command(state: CliState, name):
    """Disable plugin NAME."""
    _set_disabled(state, name, True)
    click.echo(f"disabled {name}")
