"""``ums serve``: run the spool watcher and the job worker."""

from __future__ import annotations

import logging

import click

from . import CliState


@click.command("serve")
@click.pass_obj
def serve_command(state: CliState):
    """Run until SIGINT or SIGTERM: take the spool, run due jobs."""
    from ..serve import Server

    logging.getLogger().setLevel(logging.INFO)
    for handler in logging.getLogger().handlers:
        handler.setLevel(min(handler.level, logging.INFO))
    server = Server(state.app())
    server.install_signal_handlers()
    server.run()
