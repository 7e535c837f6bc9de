"""Whose message is it: the called number's owner, else the default recipient."""

from __future__ import annotations

import attrs

from .context import PluginContext


@attrs.frozen
class Route:
    """The recipient a message goes to and the location the mode gives it."""

    email: str | None
    name: str
    language: str
    default_recipient: bool
    location: str


def resolve_route(app, called: str, kind: str) -> Route:
    """Return the route for a message of KIND to the number CALLED."""
    ctx = PluginContext(app)
    user = app.hook.ums_resolve_recipient(number=called, kind=kind, ctx=ctx)
    location = app.config.get("mode")
    if user is not None and user.active:
        return Route(user.email, user.name, user.language, False, location)
    fallback = app.config.get("default_recipient") or None
    language = app.config.get("language")
    return Route(fallback, "", language, True, location)
