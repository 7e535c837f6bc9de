"""Whose message is it: the called number's owner, else the default recipient."""

from __future__ import annotations

import attrs

from .context import PluginContext
from .errors import PluginError, UmsError

HOOK = "ums_resolve_recipient"


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
    user = _ask_resolvers(
        app, {"number": called, "kind": kind, "ctx": PluginContext(app)}
    )
    location = app.config.get("mode")
    if user is not None and user.active:
        return Route(user.email, user.name, user.language, False, location)
    fallback = app.config.get("default_recipient") or None
    language = app.config.get("language")
    return Route(fallback, "", language, True, location)


def _ask_resolvers(app, kwargs: dict):
    """Return the first user a resolver plugin names, as pluggy would call them.

    A resolver that raises stops intake with its name in the error: routing
    without its answer could give a message to the wrong person.
    """
    impls = getattr(app.hook, HOOK).get_hookimpls()
    if any(impl.hookwrapper or getattr(impl, "wrapper", False) for impl in impls):
        return getattr(app.hook, HOOK)(**kwargs)  # wrappers need pluggy's own call
    for impl in reversed(impls):
        try:
            user = impl.function(*[kwargs[name] for name in impl.argnames])
        except UmsError as exc:
            raise PluginError(
                f"plugin {impl.plugin_name} in {HOOK}: {exc.message};"
                " nothing was stored",
                hint=exc.hint or _HINT.format(name=impl.plugin_name),
            ) from None
        except Exception as exc:  # third-party code
            detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            raise PluginError(
                f"plugin {impl.plugin_name} failed in {HOOK} ({detail});"
                " nothing was stored",
                hint=_HINT.format(name=impl.plugin_name),
            ) from None
        if user is not None:
            return user
    return None


_HINT = (
    "the message waits where it came from; fix the plugin, or turn it off with"
    " 'ums plugins disable {name}'"
)
