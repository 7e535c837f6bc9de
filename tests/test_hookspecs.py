"""Every hookspec is documented and every one is called by some flow."""

import inspect

import pytest
from conftest import reopen, use_mailserver

from ums_core import hookspecs
from ums_core.hookspecs import hookimpl
from ums_core.intake import receive_message
from ums_core.model import IncomingMessage
from ums_core.queue import run_due_jobs

SPECS = [
    name
    for name, obj in vars(hookspecs).items()
    if name.startswith("ums_") and callable(obj)
]


@pytest.mark.parametrize("name", SPECS)
def test_hookspec_is_documented(name):
    doc = inspect.getdoc(getattr(hookspecs, name))
    assert doc and len(doc) > 30, name


def test_hook_names_follow_the_convention():
    verbs = ("declare", "add", "resolve", "compose", "store", "send", "identify")
    verbs += ("convert", "transmit", "lookup", "start")
    for name in SPECS:
        words = name.split("_")
        assert words[0] == "ums"
        participle = words[-1].endswith("ed") or words[-1] in ("sent", "set")
        assert words[1] in verbs or participle, name


class Recorder:
    """Record the name of every hook called on it."""

    UMS_ROLE = "extension"

    def __init__(self):
        self.calls = set()

    def __getattr__(self, name):
        raise AttributeError(name)


def make_recorder():
    recorder = Recorder()
    for name in SPECS:
        params = list(inspect.signature(getattr(hookspecs, name)).parameters)

        def impl(*args, _name=name, **kwargs):
            recorder.calls.add(_name)

        impl.__signature__ = inspect.Signature(
            [
                inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                for p in params
            ]
        )
        impl.__name__ = name
        setattr(recorder, name, hookimpl(impl))
    return recorder


def test_every_hook_is_exercised(home, smtp_sink, tmp_path):
    from ums_core.cli import _plugin_commands

    recorder = make_recorder()
    use_mailserver(home, smtp_sink, archiving="true")
    app = reopen(home)
    app.pm.register(recorder, name="recorder")
    app.pm.hook.ums_declare_config()
    import click

    app.pm.hook.ums_add_commands(cli=click.Group())
    assert isinstance(_plugin_commands(), dict)
    receive_message(app, IncomingMessage(kind="sms", called="+4930999", text="hi"))
    run_due_jobs(app)
    app.config.set("default_recipient", "ops@example.test")
    receive_message(app, IncomingMessage(kind="sms", called="+4930998", text="x"))
    smtp_sink.handler.refuse["ops@example.test"] = "550 no such user"
    smtp_sink.handler.refuse["fallback@example.test"] = "550 no such user"
    app.config.set("default_recipient", "fallback@example.test")
    run_due_jobs(app)
    run_outbound_flows(app)
    run_account_flows(app)
    run_voice_flows(app)
    run_services(app)
    missing = set(SPECS) - recorder.calls
    assert not missing, missing


def run_services(app):
    """Start and stop what plugins run beside ``ums serve``."""
    from ums_core.serve import Server

    app.config.set("journal.listen", "")
    server = Server(app)
    server.start_services()
    server.stop_services()


def run_outbound_flows(app):
    """Send through the gateway's accept step: sent, failed, rejected, deleted."""
    from email.message import EmailMessage

    from ums_core.gateway.accept import Envelope, accept_mail
    from ums_core.gateway.addresses import parse_recipient
    from ums_core.numbers import SiteRules
    from ums_core.users import add_user

    app.config.set("transmit.backend", "simulation")
    app.config.set("simulation.fail", "+4930999999")
    add_user("alice@example.test", SiteRules(area_code="89"), "Alice")
    for sender, number, attachment in [
        ("alice@example.test", "+4930555010", None),
        ("alice@example.test", "+4930999999", None),
        ("alice@example.test", "+4930555010", "report.docx"),
        ("mallory@evil.test", "+4930555010", None),
    ]:
        mail = EmailMessage()
        mail["From"], mail["Subject"] = sender, f"to {number}"
        mail.set_content("Hallo")
        if attachment:
            mail.add_attachment(
                b"PK\x03\x04",
                maintype="application",
                subtype="octet-stream",
                filename=attachment,
            )
        address = f"{number}@fax.example.test"
        destination = parse_recipient(address, "fax.example.test", "", app.site_rules)
        accept_mail(
            app, Envelope("127.0.0.1", False, sender, (destination,), mail.as_bytes())
        )
    run_due_jobs(app)


def run_account_flows(app):
    """Passwords, info mails and a caller lookup, through the product's code."""
    from ums_core.accounts import issue_password, send_infomail
    from ums_core.users import find_active_user

    alice = find_active_user("alice@example.test")
    issue_password(app, alice, "new")
    send_infomail(app, alice)
    app.config.set("sender_identification", "true")
    receive_message(
        app,
        IncomingMessage(kind="sms", called="+4930555", sender="+4930111", text="x"),
    )


def run_voice_flows(app):
    """A voice mailbox and announcement access, through the product's code."""
    from ums_core.announcement import issue_access
    from ums_core.numbers import SiteRules
    from ums_core.users import add_user
    from ums_core.voicemail import enable_mailbox

    app.config.set("announcement.number", "+4989123499")
    add_user(
        "vera@example.test",
        SiteRules(area_code="89"),
        numbers={"voice": ["+4989123458"]},
    )
    enable_mailbox(app, "vera@example.test")
    issue_access(app, "ops@example.test")
