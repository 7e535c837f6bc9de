"""What ``ums status`` shows: mode, features, mail server, queue, nodes, plugins."""

from __future__ import annotations

import socket

import peewee as pw

from . import db
from .nodes import describe_node, live_nodes


def feature_states(config) -> dict:
    """Return each feature's availability and setting under the storage mode.

    The mode table: in ``local`` mode archiving is forced on, and sender
    identification and remote inquiry depend on the mailbox, so they are
    unavailable and off.
    """
    mailserver = config.get("mode") == "mailserver"
    return {
        "archiving": {
            "available": True,
            "enabled": (not mailserver) or bool(config.get("archiving")),
        },
        "sender_identification": {
            "available": mailserver,
            "enabled": mailserver
            and bool(config.get("sender_identification"))
            and bool(config.get("directory.file")),
        },
        "remote_inquiry": {
            "available": mailserver,
            "enabled": mailserver and bool(config.get("remote_inquiry")),
        },
    }


def probe_mail_server(config, timeout: float = 2.0) -> str:
    """Return 'reachable', 'unreachable: …' or 'not configured'."""
    host = config.get("smtp.host")
    if not host:
        return "not configured"
    try:
        with socket.create_connection((host, config.get("smtp.port")), timeout) as s:
            s.settimeout(timeout)
            greeting = s.recv(512)
    except OSError as exc:
        return f"unreachable: {exc.strerror or exc}"
    if greeting.startswith(b"220"):
        return "reachable"
    return "unreachable: no SMTP greeting"


def queue_depth() -> dict:
    """Return the number of jobs per state that are not done."""
    query = (
        db.Job.select(db.Job.state, pw.fn.COUNT(db.Job.id).alias("n"))
        .where(db.Job.state != "done")
        .group_by(db.Job.state)
    )
    return {row.state: row.n for row in query}


def node_summaries(config) -> list[dict]:
    """Return the live nodes (fresh heartbeat) and what each is doing."""
    now = db.db_now()
    return [describe_node(node, now) for node in live_nodes(config)]


def collect_status(app, probe: bool = True) -> dict:
    """Return the whole status as a JSON-able dict."""
    config = app.config
    mailserver_state = probe_mail_server(config) if probe else "not checked"
    return {
        "mode": config.get("mode"),
        "info_mails": bool(config.get("info_mails")),
        "features": feature_states(config),
        "mail_server": {
            "host": config.get("smtp.host"),
            "port": config.get("smtp.port"),
            "state": mailserver_state,
        },
        "queue": queue_depth(),
        "messages": db.Message.select().count(),
        "database": "postgresql" if db.is_postgresql() else "sqlite",
        "nodes": node_summaries(config),
        "active_plugins": app.active_names(),
    }
