"""The ``asterisk.*`` configuration keys and the settings of one run."""

from __future__ import annotations

import os
import re

import attrs

from ums_core.config import ConfigKey, at_least, choice, parse_text
from ums_core.errors import UmsError

PLUGIN = "asterisk"
DEFAULT_SPOOL = "/var/spool/asterisk/voicemail"
AFTER_CHOICES = ("leave", "move", "delete")
NAME = r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,79}"
EXAMPLE = "such as default/8001=+4989123457"
MAP_ITEM = re.compile(rf"({NAME})/({NAME})\s*=\s*(\+?[0-9][0-9 ()./-]{{0,30}})")


def is_spool_name(text: str) -> bool:
    """Tell whether TEXT is a usable context or mailbox name (no path tricks)."""
    return bool(re.fullmatch(NAME, text or ""))


def parse_map(text: str | list) -> list[str]:
    """Return mapping entries ``context/mailbox=number`` from a comma list."""
    items = text if isinstance(text, list) else str(text).split(",")
    entries: dict[str, str] = {}
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        match = MAP_ITEM.fullmatch(item)
        if not match:
            raise ValueError(f"{item!r} is not CONTEXT/MAILBOX=NUMBER ({EXAMPLE})")
        key, number = f"{match[1]}/{match[2]}", match[3].strip()
        if entries.get(key, number) != number:
            raise ValueError(f"{key} is mapped to two numbers")
        entries[key] = number
    return [f"{key}={number}" for key, number in sorted(entries.items())]


def declare_keys() -> list[ConfigKey]:
    """Return the configuration keys of the plugin."""
    return [
        ConfigKey(
            "asterisk.spool", DEFAULT_SPOOL, parse_text, "Asterisk voicemail folder"
        ),
        ConfigKey(
            "asterisk.map", [], parse_map, "context/mailbox=number, comma-separated"
        ),
        ConfigKey(
            "asterisk.after",
            "leave",
            choice(*AFTER_CHOICES),
            "spool files after import: leave, move or delete",
        ),
        ConfigKey("asterisk.done_dir", "", parse_text, "where after=move puts them"),
        ConfigKey("asterisk.poll", 5.0, at_least(0.1), "how often --watch looks"),
    ]


@attrs.frozen
class Settings:
    """What one import run needs: the mapping and what to do afterwards."""

    spool: str
    mapping: dict[str, str]
    after: str = "leave"
    done_dir: str = ""
    poll: float = 5.0


def read_settings(app, extra_map: tuple[str, ...] = (), spool: str = "") -> Settings:
    """Return the settings from the configuration, EXTRA_MAP entries winning."""
    config = app.config
    if "asterisk.map" not in config.keys:
        raise UmsError(
            "the asterisk plugin is not active",
            hint="ums plugins list shows why; ums plugins enable asterisk",
        )
    mapping = read_mapping(config.get("asterisk.map"))
    mapping.update(read_mapping(parse_map(list(extra_map))))
    after = config.get("asterisk.after")
    return Settings(
        spool=spool or config.get("asterisk.spool"),
        mapping=mapping,
        after=after,
        done_dir=resolve_done_dir(app, after, config.get("asterisk.done_dir")),
        poll=config.get("asterisk.poll"),
    )


def read_mapping(entries: list[str]) -> dict[str, str]:
    """Return {"context/mailbox": number} from parsed mapping ENTRIES."""
    return dict(entry.split("=", 1) for entry in entries)


def resolve_done_dir(app, after: str, done_dir: str) -> str:
    """Return the absolute folder for after=move (relative to the instance)."""
    if after != "move":
        return ""
    if not done_dir:
        raise UmsError(
            "asterisk.after is move but asterisk.done_dir is not set",
            hint="ums config set asterisk.done_dir /var/spool/asterisk/ums-done",
        )
    return os.path.join(app.home, done_dir)
