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
    (``ctx.message_id_for(message)``). Attach files with
    ``ums_core.helpers.attach_file``: they are written base64 from the file
    when the e-mail is queued, so a big one is never in memory whole. Return
    None to let another plugin compose it; when nobody does, the delivery
    job fails and is retried.
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


@hookspec(firstresult=True)
def ums_identify_sender(address, ctx):
    """Return the active :class:`ums_core.model.User` who sent from ADDRESS.

    Called by the gateway for every accepted e-mail, first with the envelope
    sender and, on a trusted connection, with the From address. Return None
    when the address is not a known active user; the core's user table
    answers last (case-insensitive e-mail match).
    """


@hookspec(firstresult=True)
def ums_convert_document(data, content_type, filename, ctx):
    """Return PDF bytes for an attachment the core cannot fax, or None.

    Called while a fax is built from an e-mail, for each part that is not
    text, PDF, TIFF, PNG or JPEG. ``data`` is the decoded part, ``filename``
    its name (may be empty). Return None to leave the part refused.
    """


@hookspec(firstresult=True)
def ums_transmit_message(message, ctx):
    """Hand the outbound MESSAGE to the telephony side; return a TransmitResult.

    Called by the transmit job, again after ``retry`` (by the retry schedule)
    and after ``pending`` (to ask for the outcome). ``message.content_path``
    is the PDF for a fax; ``message.text`` the text of an SMS. Must be
    idempotent: a job repeated after a crash must not send twice where the
    backend can tell. The core's outbox and simulation backends answer last.
    """


@hookspec(firstresult=True)
def ums_lookup_caller(number, ctx):
    """Return the :class:`ums_core.model.Contact` for the caller NUMBER, or None.

    Called for inbound messages in ``mailserver`` mode when sender
    identification is on (never in ``local`` mode). ``number`` is E.164.
    The name found goes into the e-mail's subject, body and From name.
    """


@hookspec
def ums_start_service(ctx):
    """Start a long-running service beside ``ums serve``; return it or None.

    Called once when ``ums serve`` starts, after the spool and queue are ready.
    Return an object with a ``stop()`` method (called when ``ums serve``
    stops, from the main thread) or None when the plugin has nothing to run.
    The service runs in its own threads and must not block this call.
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

    Transports close idle connections here. With several nodes on one
    PostgreSQL it fires on every node: work that must happen once across
    the nodes belongs in a job, not here.
    """


@hookspec
def ums_outgoing_accepted(message, ctx):
    """The gateway committed the outbound MESSAGE (one per recipient number)."""


@hookspec
def ums_outgoing_deleted(sender, recipients, subject, reason, ctx):
    """An e-mail from SENDER that is no known user was deleted, not sent.

    ``recipients`` lists the addresses it was for, ``subject`` its Subject.
    Notice plugins tell the default recipient; never the claimed sender.
    """


@hookspec
def ums_outgoing_rejected(message, reason, outcomes, ctx):
    """The outbound MESSAGE could not be built; REASON says why and how to fix it.

    ``outcomes`` lists what happened to each part of the e-mail (may be empty).
    Notice plugins write the error mail to the sender.
    """


@hookspec
def ums_outgoing_sent(message, result, ctx):
    """The outbound MESSAGE was transmitted; RESULT is the TransmitResult."""


@hookspec
def ums_outgoing_failed(message, result, ctx):
    """The outbound MESSAGE was not transmitted, for good; RESULT says why."""


@hookspec
def ums_password_set(user, password, reason, ctx):
    """USER got a new login PASSWORD (``reason``: ``new`` or ``reset``).

    Only informational notice plugins receive it (they are inactive when info
    mails are off). Return True when the password was queued in a mail to the
    user; when no plugin returns True the command shows it to the admin.
    Never log the password.
    """


@hookspec
def ums_voicemail_created(user, mailbox, pin, ctx):
    """USER's voice mailbox MAILBOX (its number) got the PIN.

    Return True when the welcome mail carrying the PIN was queued; otherwise
    the command shows the PIN to the admin. Never log the PIN.
    """


@hookspec
def ums_announcement_access_issued(recipient, username, pin, number, ctx):
    """Access data for recording the global announcement was made for RECIPIENT.

    ``username`` and ``pin`` log in at ``number``. Return True when the mail
    carrying them was queued; otherwise the command shows them. Never log them.
    """


@hookspec
def ums_infomail_requested(user, ctx):
    """The admin asked for the info mail explaining the service to USER.

    Return True when it was queued.
    """
