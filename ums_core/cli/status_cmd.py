"""``ums status``: the one screen an admin reads first."""

from __future__ import annotations

import click

from . import CliState, echo_json


def _on_off(state: dict) -> str:
    if not state["available"]:
        return "unavailable in this mode (off)"
    return "on" if state["enabled"] else "off"


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--no-probe", is_flag=True, help="Do not connect to the mail server.")
@click.pass_obj
def status_command(state: CliState, as_json, no_probe):
    """Show mode, features, mail server, queue, live nodes and active plugins."""
    from ..status import collect_status

    status = collect_status(state.app(), probe=not no_probe)
    if as_json:
        echo_json(status)
        return
    features = status["features"]
    server = status["mail_server"]
    queue = ", ".join(f"{n} {s}" for s, n in sorted(status["queue"].items()))
    for label, value in (
        ("mode", status["mode"]),
        ("info mails", "on" if status["info_mails"] else "off"),
        ("archiving", _on_off(features["archiving"])),
        ("sender identification", _on_off(features["sender_identification"])),
        ("remote inquiry", _on_off(features["remote_inquiry"])),
        ("mail server", f"{server['host'] or '-'}:{server['port']} {server['state']}"),
        ("queue", queue or "empty"),
        ("messages", status["messages"]),
        ("database", status["database"]),
        ("nodes", _nodes_line(status["nodes"])),
        ("active plugins", ", ".join(status["active_plugins"])),
    ):
        click.echo(f"{label + ':':<24}{value}")
    for node in status["nodes"]:
        click.echo(f"  {node['name']:<30}{_node_detail(node)}")


def _nodes_line(nodes: list[dict]) -> str:
    if not nodes:
        return "none serving (no live 'ums serve')"
    return f"{len(nodes)} live"


def _node_detail(node: dict) -> str:
    return (
        f"{node['activity']}; {node['jobs_done']} done, {node['jobs_retried']}"
        f" retried, {node['jobs_failed']} failed; heartbeat"
        f" {node['heartbeat_age']:.0f}s ago"
    )
