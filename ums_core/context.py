"""The public helper object every hook receives as ``ctx``."""

from __future__ import annotations

import datetime as dt
import functools
import os
import zoneinfo
from email.headerregistry import Address
from email.utils import parseaddr

from . import content
from .errors import UmsError
from .numbers import format_number

FALLBACK_SENDER = "ums@localhost"


class PluginContext:
    """What a plugin may use of the instance: config, paths, mail queue."""

    def __init__(self, app):
        self._app = app

    @property
    def config(self):
        """Return the instance configuration (read it; do not save it)."""
        return self._app.config

    @property
    def home(self) -> str:
        """Return the instance folder."""
        return self._app.home

    @property
    def site_rules(self):
        """Return the site's number rules."""
        return self._app.site_rules

    @property
    def content_folder(self) -> str:
        """Return the folder of content and mail files (shared by all nodes)."""
        return self._app.content_root

    def plugin_folder(self, name: str) -> str:
        """Return (and create) a folder for plugin NAME's data.

        It lies in the content folder, so every node sees the same data.
        """
        path = os.path.join(self._app.content_root, "plugins", name)
        content.make_folders(path)
        return path

    def template_folder(self) -> str:
        """Return the instance folder where the admin overrides templates."""
        return os.path.join(self._app.home, "templates")

    def system_sender(self, required: bool = True) -> Address:
        """Return the configured system sender.

        Mails ums writes itself (notices, reports) need it: without it ums
        refuses to write them and says so. The delivery of a message and the
        envelope sender fall back to ums@localhost (REQUIRED false).
        """
        configured = self.config.get("system_sender")
        if not configured and required:
            raise UmsError(
                "system_sender is not set: ums writes no mails of its own without it",
                hint="ums config set system_sender 'Fax service <fax@example.com>'",
            )
        return _parse_sender(configured or FALLBACK_SENDER)

    def mail_domain(self, kind: str) -> str:
        """Return the mail domain for KIND (fax, sms, voice), or ''."""
        return self.config.get(f"gateway.{kind}_domain")

    def transmit_backend(self, kind: str) -> str:
        """Return the backend that transmits outbound messages of KIND.

        ``transmit.fax`` / ``transmit.sms`` name one per kind; empty means
        ``transmit.backend``. A backend plugin answers ``ums_transmit_message``
        only when this names it.
        """
        return self.config.get(f"transmit.{kind}") or self.config.get(
            "transmit.backend"
        )

    def message_id_for(self, message, purpose: str = "msg") -> str:
        """Return the stable Message-ID of the e-mail for MESSAGE."""
        domain = self.system_sender(required=False).domain or "localhost"
        return f"<ums.{self._app.instance_id}.{purpose}{message.id}@{domain}>"

    def local_time(self, when: dt.datetime) -> dt.datetime:
        """Return WHEN in the configured time zone."""
        return when.astimezone(zoneinfo.ZoneInfo(self.config.get("timezone")))

    def format_number(self, e164: str) -> str:
        """Return E164 in the form people of the site read."""
        return format_number(e164, self._app.site_rules)

    def queue_mail(self, mail, purpose: str, message_id: int | None = None) -> int:
        """Queue the EmailMessage MAIL durably for sending; return its id."""
        from .mailqueue import queue_mail

        return queue_mail(self._app, mail, purpose, message_id)

    def lookup_caller(self, number: str | None):
        """Return the directory's Contact for the caller NUMBER (E.164), or None.

        Nothing is looked up without a number, in ``local`` mode, or when
        sender identification is off.
        """
        config = self.config
        if number is None or config.get("mode") != "mailserver":
            return None
        if not config.get("sender_identification"):
            return None
        return self._app.hook.ums_lookup_caller(number=number, ctx=self)


@functools.lru_cache(maxsize=16)
def _parse_sender(text: str) -> Address:
    """Return the Address in TEXT (parsed once per configured value)."""
    name, addr = parseaddr(text)
    return Address(display_name=name, addr_spec=addr)
