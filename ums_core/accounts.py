"""Give users their passwords and info mails through the notice plugins."""

from __future__ import annotations

from .context import PluginContext
from .secrets import generate_password
from .users import set_password


def announce_secret(app, event: str, **kwargs) -> bool:
    """Fire EVENT, which carries a secret; return True when a plugin mailed it."""
    if app.pm is None:
        return False
    return any(answer is True for answer in app.collect(event, **kwargs))


def issue_password(app, user, reason: str) -> str | None:
    """Set a fresh password for USER; return it when no plugin mailed it.

    The caller shows a returned password to the admin once; None means a
    password mail carries it.
    """
    password = generate_password()
    set_password(user.email, password)
    mailed = announce_secret(
        app,
        "ums_password_set",
        user=user,
        password=password,
        reason=reason,
        ctx=PluginContext(app),
    )
    return None if mailed else password


def why_not_mailed(app) -> str:
    """Return why no plugin mailed a secret or info mail."""
    if not app.config.get("info_mails"):
        return "info mails are off"
    if not app.config.get("system_sender"):
        return "system_sender is not set"
    return "no active notice plugin queued it (ums plugins list; see log/ums.log)"


def send_infomail(app, user) -> bool:
    """Queue the info mail for USER; return False when no plugin wrote it."""
    return announce_secret(
        app, "ums_infomail_requested", user=user, ctx=PluginContext(app)
    )
