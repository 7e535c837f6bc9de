"""Every hook ums offers to plugins.

Two kinds. **Events** (``ums_<noun>_<past participle>``) tell every active
plugin that something happened; their return values are ignored. **Extension
points** (``ums_<verb>_<noun>``) ask for an answer; most are ``firstresult``:
the first plugin that returns something other than None wins, and plugins are
asked newest-registered first (the core's own defaults run last).

Call hooks with keyword arguments only. Every hook receives ``ctx``, the
:class:`ums_core.context.PluginContext` of the instance, when it declares it.

A plugin module states its role in a module attribute ``UMS_ROLE`` (one of
``ums_core.model.ROLES``); a notice plugin that writes an informational mail
also sets ``UMS_INFO_MAIL = True``. The activation rule in
:mod:`ums_core.plugins` decides from the role which plugins are active.
"""

from __future__ import annotations

import pluggy

PROJECT = "ums"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# Extension points -----------------------------------------------------------


@hookspec
def ums_declare_config():
    """Return configuration keys this plugin adds.

    Called once when plugins are loaded. Return a list of
    :class:`ums_core.config.ConfigKey` whose names start with the plugin's own
    prefix (for example ``journal.``), or None.
    """


@hookspec
def ums_add_commands(cli):
    """Add click commands or groups to the ``ums`` command.

    Called when the CLI starts. ``cli`` is the top-level :class:`click.Group`;
    call ``cli.add_command(...)``. The return value is ignored.
    """


@hookspec(firstresult=True)
def ums_resolve_recipient(number, kind, ctx):
    """Return the :class:`ums_core.model.User` who owns NUMBER, or None.

    Called at intake for every inbound message. ``number`` is the called number
    in E.164, ``kind`` is ``fax``, ``voice`` or ``sms``. Return only an active
    user; None lets the next plugin (finally the core's user table) answer, and
    when nobody owns the number the message goes to the default recipient.
    """


@hookspec(firstresult=True)
def ums_compose_mail(message, ctx):
    """Return the e-mail (an :class:`email.message.EmailMessage`) for MESSAGE.

    Called in ``mailserver`` mode when a routed message is delivered.
    ``message`` is a :class:`ums_core.model.Message` with its recipient set.
    The mail must carry To, From, Subject and Message-ID
    (``ctx.message_id_for(message)``). Return None to let another plugin
    compose it; when nobody does, the delivery job fails and is retried.
    """


@hookspec
def ums_store_message(message, ctx):
    """Keep MESSAGE in a local store; return a :class:`StoreResult` or None.

    Called for every active archive plugin: in ``local`` mode for every
    message, in ``mailserver`` mode when archiving is on, and for a message
    whose e-mail failed for good. It must be idempotent (a retried job may call
    it twice for the same message) and durable before it returns.
    """


@hookspec(firstresult=True)
def ums_send_mail(mail, ctx):
    """Send MAIL (a :class:`ums_core.model.Mail`); return a :class:`SendResult`.

    Called by the job worker for every queued e-mail, messages and notices
    alike. The core's SMTP transport answers last; a plugin may take over by
    returning a result first. Never raise for a refusal: return
    ``SendResult(ok=False, permanent=...)``.
    """


# Events -----------------------------------------------------------------------


@hookspec
def ums_message_received(message, ctx):
    """MESSAGE was committed by intake (row, content and first job)."""


@hookspec
def ums_message_routed(message, ctx):
    """MESSAGE got its recipient and location (``local`` or ``mailserver``)."""


@hookspec
def ums_message_stored(message, results, ctx):
    """MESSAGE was kept in the local store; RESULTS lists the StoreResults."""


@hookspec
def ums_message_delivered(message, mail, ctx):
    """The mail server accepted MAIL, the e-mail for MESSAGE."""


@hookspec
def ums_message_failed(message, reason, ctx):
    """MESSAGE could not be delivered for good; REASON says why.

    The message and its content stay in the instance. Notice plugins tell the
    default recipient from here.
    """


@hookspec
def ums_mail_failed(mail, reason, ctx):
    """MAIL (a notice or report, not a message) was refused for good."""


@hookspec
def ums_queue_drained(ctx):
    """The job worker ran every due job and is about to wait or exit.

    Transports close idle connections here.
    """
