"""``ums config``: show and change the instance configuration."""

from __future__ import annotations

import click

from . import CliState, echo_json


@click.group("config")
def config_group():
    """Show or change configuration keys."""


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def show_command(state: CliState, as_json):
    """Print every key with its value."""
    values = state.app().config.as_dict()
    if as_json:
        echo_json(values)
        return
    for name, value in values.items():
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        click.echo(f"{name} = {value}")


@config_group.command("get")
@click.argument("key")
@click.pass_obj
def get_command(state: CliState, key):
    """Print the value of KEY."""
    value = state.app().config.get(key)
    click.echo(",".join(map(str, value)) if isinstance(value, list) else value)


@config_group.command("set")
@click.argument("key")
@click.argument("value")
@click.pass_obj
def set_command(state: CliState, key, value):
    """Set KEY to VALUE; a bad key or value changes nothing."""
    from ..config import CORE_KEYS

    app = state.app(load_plugins=key not in {k.name for k in CORE_KEYS})
    parsed = app.config.set(key, value)
    if key == "site.base_number" and parsed:
        import attrs

        from ..numbers import normalize_number

        rules = attrs.evolve(app.site_rules, base_number="")
        app.config.set(key, normalize_number(parsed, rules))
    _check_site_rules(app)
    app.config.save()
    shown = "********" if app.config.keys[key].secret else app.config.get(key)
    if isinstance(shown, bool):
        shown = str(shown).lower()
    elif isinstance(shown, list):
        shown = ",".join(map(str, shown))
    click.echo(f"{key} = {shown}")


def _check_site_rules(app) -> None:
    from ..errors import NumberError, UmsError
    from ..numbers import check_area_code, validate_site_rules

    try:
        validate_site_rules(app.site_rules)
        check_area_code(app.site_rules)
    except NumberError as exc:
        raise UmsError(f"bad site rules: {exc.message}", hint=exc.hint) from None
