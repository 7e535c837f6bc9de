"""The core's own hook implementations, registered like any plugin.

They answer last: a plugin registered later wins a firstresult hook.
"""

from __future__ import annotations

from .directory import AddressBook
from .hookspecs import hookimpl
from .model import TransmitResult
from .plugins import LoadedPlugin
from .transport import SmtpTransport


class UserTable:
    """Resolve called numbers through the users managed by ``ums users``."""

    UMS_ROLE = "user_source"

    @hookimpl(trylast=True)
    def ums_resolve_recipient(self, number, kind, ctx):
        from . import users

        return users.find_active_owner(number)


class UserSenders:
    """Identify the senders of outgoing e-mails by the users' addresses."""

    UMS_ROLE = "user_source"

    @hookimpl(trylast=True)
    def ums_identify_sender(self, address, ctx):
        from . import users

        return users.find_active_user(address)


class Telephony:
    """Transmit outbound messages by transmit.backend: outbox or simulation."""

    UMS_ROLE = "transport"

    @hookimpl(trylast=True)
    def ums_transmit_message(self, message, ctx):
        from . import transmit

        backend = ctx.transmit_backend(message.kind)
        if backend == "simulation":
            return transmit.transmit_by_simulation(message, ctx)
        if backend == "outbox":
            return transmit.transmit_by_outbox(message, ctx)
        return TransmitResult(
            status="retry",
            reason=f"no active transmit backend is named {backend!r}"
            " (is its plugin installed and enabled?)",
        )


class SmtpRelay:
    """Send e-mails to the mail server set by smtp.host (smtplib)."""

    UMS_ROLE = "transport"

    def __init__(self):
        self._transport: SmtpTransport | None = None

    @hookimpl(trylast=True)
    def ums_send_mail(self, mail, ctx):
        if self._transport is None:
            self._transport = SmtpTransport(ctx.config)
        return self._transport.send(mail)

    @hookimpl
    def ums_queue_drained(self, ctx):
        if self._transport is not None:
            self._transport.close()


def builtin_plugins(version: str) -> list[LoadedPlugin]:
    """Return the core's own plugins as loaded plugin records."""
    found = []
    builtins = (
        ("core.users", UserTable()),
        ("core.senders", UserSenders()),
        ("core.smtp", SmtpRelay()),
        ("core.transmit", Telephony()),
        ("core.directory", AddressBook()),
    )
    for name, obj in builtins:
        found.append(
            LoadedPlugin(
                name=name,
                distribution="ums-core",
                version=version,
                obj=obj,
                role=obj.UMS_ROLE,
                feature=getattr(obj, "UMS_FEATURE", ""),
                description=(type(obj).__doc__ or "").strip().split("\n")[0],
            )
        )
    return found
