"""Whose message is it: the called number's owner, else the default recipient."""

from __future__ import annotations

import contextlib

import attrs
import peewee

from .context import PluginContext
from .errors import PluginError, UmsError
from .model import User

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

    A resolver that raises, or answers with something other than a User,
    stops routing with an error naming it: routing without its answer could
    give a message to the wrong person.
    """
    caller = getattr(app.hook, HOOK)
    impls = caller.get_hookimpls()
    if any(impl.hookwrapper or getattr(impl, "wrapper", False) for impl in impls):
        # Wrappers need pluggy's own call, which cannot say which plugin failed.
        with _guarded("a plugin (one of them wraps the hook)"):
            return _checked(caller(**kwargs), "a plugin")
    for impl in reversed(impls):
        with _guarded(f"plugin {impl.plugin_name}", impl.plugin_name):
            user = impl.function(*[kwargs[name] for name in impl.argnames])
        if user is not None:
            return _checked(user, f"plugin {impl.plugin_name}", impl.plugin_name)
    return None


@contextlib.contextmanager
def _guarded(who: str, name: str = "NAME"):
    try:
        yield
    except (PluginError, peewee.PeeweeException):
        raise  # a database error is the database's (busy, gone), not the plugin's
    except UmsError as exc:
        raise PluginError(
            f"{who} in {HOOK}: {exc.message}", hint=exc.hint or _HINT.format(name=name)
        ) from None
    except Exception as exc:  # third-party code
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise PluginError(
            f"{who} failed in {HOOK} ({detail})", hint=_HINT.format(name=name)
        ) from None


def _checked(user, who: str, name: str = "NAME"):
    if user is None or isinstance(user, User):
        return user
    raise PluginError(
        f"{who} answered {HOOK} with a {type(user).__name__}, not a User",
        hint=_HINT.format(name=name),
    )


_HINT = (
    "the message waits until the plugin answers; fix it, or turn it off with"
    " 'ums plugins disable {name}'"
)
