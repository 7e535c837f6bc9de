"""The ``hylafax.*`` configuration keys this plugin declares."""

from __future__ import annotations

import re

from ums_core.config import ConfigKey, bounded_int, parse_text

PLUGIN = "hylafax"
BACKEND = "hylafax"


def parse_host(text: str) -> str:
    """Return a HylaFAX server name (host or host:port), or '' for the local one."""
    value = parse_text(text)
    if value and not re.fullmatch(r"[A-Za-z0-9_.\[\]:-]{1,253}", value):
        raise ValueError("expected a host name such as fax.example.com or host:4559")
    if value.startswith("-"):
        raise ValueError("a host name cannot start with '-'")
    return value


def parse_program(text: str) -> str:
    """Return the path or name of a HylaFAX client program."""
    value = parse_text(text)
    if not value:
        raise ValueError("expected a program name or path, e.g. /usr/bin/sendfax")
    return value


CONFIG_KEYS = (
    ConfigKey("hylafax.sendfax", "sendfax", parse_program, "HylaFAX sendfax client"),
    ConfigKey("hylafax.faxstat", "faxstat", parse_program, "HylaFAX faxstat client"),
    ConfigKey("hylafax.spool", "/var/spool/hylafax", parse_text, "HylaFAX spool"),
    ConfigKey("hylafax.host", "", parse_host, "HylaFAX server ('' = local)"),
    ConfigKey(
        "hylafax.default_to", "", parse_text, "called number when HylaFAX has none"
    ),
    ConfigKey(
        "hylafax.did_callid",
        3,
        bounded_int(0, 9),
        "CallID that holds the called number (0 = none)",
    ),
)
