"""Plugin discovery and the one rule that decides which plugins are active.

Plugins are found only through the entry-point group ``ums``. Each is loaded
in its own guard: a broken plugin is reported by name and skipped. The
environment variable ``UMS_PLUGINS`` (comma-separated entry-point names, or
``none``) limits which plugins load; ``UMS_TRACE_HOOKS=1`` logs every hook
call.
"""

from __future__ import annotations

import logging
import os
from importlib import metadata

import attrs
import pluggy

from . import hookspecs
from .model import ROLES, PluginInfo

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "ums"
ONLY_ENV = "UMS_PLUGINS"
TRACE_ENV = "UMS_TRACE_HOOKS"


@attrs.define
class LoadedPlugin:
    """An installed plugin, loaded or not."""

    name: str
    distribution: str
    version: str
    obj: object = None
    role: str = "extension"
    info_mail: bool = False
    description: str = ""
    error: str = ""
    feature: str = ""


def read_only_filter(environ=os.environ) -> set[str] | None:
    """Return the names UMS_PLUGINS allows, or None when it is unset."""
    raw = environ.get(ONLY_ENV)
    if raw is None:
        return None
    names = {part.strip() for part in raw.split(",") if part.strip()}
    return set() if names == {"none"} else names


def discover_plugins(only: set[str] | None = None) -> list[LoadedPlugin]:
    """Load every plugin of the entry-point group, each in its own guard."""
    found = []
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=_ep_key):
        dist = ep.dist.name if ep.dist else "?"
        version = ep.dist.version if ep.dist else "?"
        plugin = LoadedPlugin(name=ep.name, distribution=dist, version=version)
        if only is not None and ep.name not in only:
            plugin.error = f"not loaded: {ONLY_ENV} does not name it"
        else:
            _load_entry_point(ep, plugin)
        found.append(plugin)
    return found


def _ep_key(ep) -> str:
    return ep.name


def _load_entry_point(ep, plugin: LoadedPlugin) -> None:
    try:
        obj = ep.load()
    except Exception as exc:  # any import-time failure of third-party code
        plugin.error = f"failed to load: {type(exc).__name__}: {exc}"
        log.error("plugin %s failed to load: %s", ep.name, exc)
        return
    role = getattr(obj, "UMS_ROLE", "extension")
    if role not in ROLES:
        plugin.error = f"unknown role {role!r}"
        log.error("plugin %s declares unknown role %r", ep.name, role)
        return
    plugin.obj = obj
    plugin.role = role
    plugin.info_mail = bool(getattr(obj, "UMS_INFO_MAIL", False))
    plugin.feature = str(getattr(obj, "UMS_FEATURE", "") or "")
    plugin.description = (getattr(obj, "__doc__", "") or "").strip().split("\n")[0]


def decide_activation(plugin: LoadedPlugin, config) -> tuple[bool, bool, str]:
    """Return (enabled, active, reason) for PLUGIN under CONFIG.

    This is the one place that maps the storage mode, archiving, the info-mail
    switch and the admin's disabled list to the active set.
    """
    enabled = plugin.name not in config.get("plugins.disabled")
    if plugin.error:
        return enabled, False, plugin.error
    if not enabled:
        return False, False, "disabled by the admin (ums plugins enable to undo)"
    mode = config.get("mode")
    if plugin.role == "delivery" and mode != "mailserver":
        return True, False, "storage mode is local: messages are not e-mailed"
    if plugin.role == "archive" and mode != "local" and not config.get("archiving"):
        return True, False, "storage mode is mailserver and archiving is off"
    if plugin.info_mail and not config.get("info_mails"):
        return True, False, "info mails are off (info_mails = false)"
    if plugin.feature in MAILBOX_FEATURES:
        if mode != "mailserver":
            return True, False, f"{plugin.feature} is unavailable in local mode"
        if not config.get(plugin.feature):
            return True, False, f"{plugin.feature} is off"
    return True, True, ""


MAILBOX_FEATURES = ("sender_identification", "remote_inquiry")


def create_plugin_manager() -> pluggy.PluginManager:
    """Return a plugin manager that knows every hookspec."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    if os.environ.get(TRACE_ENV):
        pm.trace.root.setwriter(lambda text: log.debug("hook: %s", text.rstrip()))
        pm.enable_tracing()
    return pm


def register_plugin(pm: pluggy.PluginManager, plugin: LoadedPlugin) -> bool:
    """Register PLUGIN; on a bad hook record the error, unregister, return False."""
    try:
        pm.register(plugin.obj, name=plugin.name)
    except (pluggy.PluginValidationError, ValueError) as exc:
        plugin.error = f"invalid hooks: {exc}"
        log.error("plugin %s has invalid hooks: %s", plugin.name, exc)
        return False
    unknown = [
        caller.name
        for caller in pm.get_hookcallers(plugin.obj) or []
        if caller.spec is None
    ]
    if unknown:
        pm.unregister(plugin.obj)
        plugin.error = "unknown hook(s): " + ", ".join(sorted(unknown))
        log.error("plugin %s implements unknown hooks %s", plugin.name, unknown)
        return False
    return True


def describe_plugin(plugin: LoadedPlugin, config) -> PluginInfo:
    """Return what ``ums plugins list`` shows for PLUGIN."""
    enabled, active, reason = decide_activation(plugin, config)
    return PluginInfo(
        name=plugin.name,
        version=plugin.version,
        role=plugin.role,
        enabled=enabled,
        active=active,
        reason=reason,
        distribution=plugin.distribution,
        description=plugin.description,
    )
