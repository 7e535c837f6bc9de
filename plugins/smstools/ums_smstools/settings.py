"""The configuration keys of the smstools plugin."""

from __future__ import annotations

import re

from ums_core.config import ConfigKey, at_least, choice, parse_bool, parse_text

PLUGIN = "smstools"
SPOOL = "/var/spool/sms"


def parse_phone(text: str) -> str:
    """Return a phone number as written (digits, +, spaces, - / ( )), or ''."""
    value = parse_text(text)
    if value and not re.fullmatch(r"\+?[0-9][0-9 ()/-]{2,30}", value):
        raise ValueError("expected a phone number such as +491701234567")
    return value


KEYS = (
    ConfigKey(
        "smstools.number", "", parse_phone, "the modem's own number (called number)"
    ),
    ConfigKey(
        "smstools.outgoing", f"{SPOOL}/outgoing", parse_text, "smsd's outgoing folder"
    ),
    ConfigKey("smstools.sent", f"{SPOOL}/sent", parse_text, "smsd's sent folder"),
    ConfigKey("smstools.failed", f"{SPOOL}/failed", parse_text, "smsd's failed folder"),
    ConfigKey(
        "smstools.after",
        "leave",
        choice("leave", "move", "delete"),
        "what import does with a file once its SMS is committed",
    ),
    ConfigKey(
        "smstools.done", "", parse_text, "where 'move' puts files ('' = in instance)"
    ),
    ConfigKey("smstools.report", False, parse_bool, "ask smsd for status reports"),
    ConfigKey(
        "smstools.timeout",
        86400.0,
        at_least(60),
        "fail an SMS smsd gives no result for",
    ),
    ConfigKey("smstools.poll", 5.0, at_least(0.1), "how often import --watch looks"),
    ConfigKey(
        "smstools.settle", 2.0, at_least(0), "how old a file must be before import"
    ),
)
