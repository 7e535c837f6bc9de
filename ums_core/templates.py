"""The templates of the installed plugins and the admin's overrides.

A plugin keeps its Jinja2 templates in a ``templates`` folder of its package;
the admin overrides one by putting a file of the same name into the
instance's ``templates/`` folder. Previews render a notice for a user with
example secrets and print it instead of queueing it.
"""

from __future__ import annotations

import datetime as dt
import os
from importlib import resources

import attrs

from .context import PluginContext
from .errors import UmsError


@attrs.frozen
class TemplateInfo:
    """One template: its name, the plugin it belongs to, where it is read from."""

    name: str
    plugin: str
    path: str
    overridden: bool


def _package_folder(obj) -> str | None:
    package = getattr(obj, "__package__", None) or getattr(obj, "__name__", "")
    if not package:
        return None
    try:
        folder = resources.files(package.split(".")[0]) / "templates"
    except (ModuleNotFoundError, TypeError):
        return None
    return str(folder) if folder.is_dir() else None


def list_templates(app) -> list[TemplateInfo]:
    """Return every template of the loaded plugins, once, by name."""
    override = os.path.join(app.home, "templates")
    found: dict[str, TemplateInfo] = {}
    for plugin in app.plugins:
        folder = _package_folder(plugin.obj) if plugin.obj is not None else None
        for name in sorted(os.listdir(folder)) if folder else []:
            mine = os.path.join(override, name)
            path = mine if os.path.exists(mine) else os.path.join(folder, name)
            owner = plugin.distribution
            found.setdefault(name, TemplateInfo(name, owner, path, path == mine))
    return sorted(found.values(), key=lambda t: t.name)


def read_template(app, name: str) -> TemplateInfo:
    """Return the template NAME or raise a clear error."""
    for info in list_templates(app):
        if info.name == name:
            return info
    raise UmsError(f"no template {name!r}", hint="'ums templates list' shows them")


class PreviewContext(PluginContext):
    """A plugin context whose mail queue prints instead of sending."""

    def __init__(self, app):
        super().__init__(app)
        self.mails = []

    def queue_mail(self, mail, purpose: str, message_id=None) -> int:
        self.mails.append(mail)
        return 0


PREVIEWS = {
    "password": ("ums_password_set", "password"),
    "infomail": ("ums_infomail_requested", None),
    "voicemail-welcome": ("ums_voicemail_created", "pin"),
    "announcement-access": ("ums_announcement_access_issued", "pin"),
}


def preview_notice(app, kind: str, user) -> list[str]:
    """Render the notice KIND for USER as the plugins would; return the mails."""
    if kind not in PREVIEWS:
        raise UmsError(
            f"no preview for {kind!r}", hint="choose one of " + ", ".join(PREVIEWS)
        )
    event, _ = PREVIEWS[kind]
    ctx = PreviewContext(app)
    values = {
        "user": user,
        "password": "EXAMPLE-PASSWORD",
        "reason": "new",
        "mailbox": next(
            (e164 for kind, e164 in user.numbers if kind == "voice"), "+4989000000"
        ),
        "pin": "123456",
        "recipient": user.email,
        "username": "ann-example",
        "number": app.config.get("announcement.number") or "+4989000001",
        "now": dt.datetime.now(dt.UTC),
        "ctx": ctx,
    }
    caller = getattr(app.pm.hook, event)
    for impl in reversed(caller.get_hookimpls()):
        impl.function(*[values[n] for n in impl.argnames])
    if not ctx.mails:
        raise UmsError(
            f"no active plugin writes the {kind} mail",
            hint="info mails may be off, or the plugin disabled (ums plugins list)",
        )
    return [_readable(mail) for mail in ctx.mails]


def _readable(mail) -> str:
    headers = "".join(f"{name}: {value}\n" for name, value in mail.items())
    body = mail.get_body(("plain",))
    return headers + "\n" + (body.get_content() if body is not None else "")
