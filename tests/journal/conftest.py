"""Fixtures for the web journal: an instance in local mode with users and mail."""

from __future__ import annotations

import datetime as dt
import functools
import os
import re

import pytest

from ums_core import db, users
from ums_core.app import App
from ums_core.context import PluginContext
from ums_core.intake import receive_message
from ums_core.model import IncomingMessage
from ums_core.samples import write_fax_tiff, write_g711_wav

PASSWORDS = {
    "alice@example.test": "alice-secret-1",
    "bob@example.test": "bob-secret-22",
    "fallback@example.test": "fallback-secret-3",
}
ALICE_FAX = "+4989123456"
ALICE_VOICE = "+4989123457"
ALICE_SMS = "+491701234567"
BOB_FAX = "+4989200200"


@pytest.fixture
def journal_app(home, tmp_path):
    """Return the open instance with alice, bob and the default recipient."""
    config = App.open(home, load_plugins=False).config
    config.set("timezone", "Europe/Berlin")
    config.set("info_mails", "false")
    config.set("journal.listen", "")
    config.save()
    app = App.open(home)
    users.add_user(
        "alice@example.test",
        name="Alice Müller",
        language="de",
        numbers={"fax": [ALICE_FAX], "voice": [ALICE_VOICE], "sms": [ALICE_SMS]},
        rules=app.site_rules,
    )
    users.add_user(
        "bob@example.test",
        name="Bob",
        language="en",
        numbers={"fax": [BOB_FAX]},
        rules=app.site_rules,
    )
    users.add_user("fallback@example.test", name="Office", rules=app.site_rules)
    with db.write_transaction():
        for email, hashed in password_hashes().items():
            db.User.update(password_hash=hashed).where(db.User.email == email).execute()
    yield app
    app.close()


@functools.cache
def password_hashes() -> dict[str, str]:
    """Return the argon2 hashes of PASSWORDS, computed once per test run."""
    from ums_core.secrets import hash_secret

    return {email: hash_secret(secret) for email, secret in PASSWORDS.items()}


@pytest.fixture(scope="session")
def samples(tmp_path_factory):
    """Write a two-page fax TIFF and an A-law WAV; return their paths."""
    folder = tmp_path_factory.mktemp("journal-samples")
    fax = str(folder / "fax.tif")
    write_fax_tiff(fax, pages=2)
    wav = str(folder / "voice.wav")
    write_g711_wav(wav, bytes(range(256)) * 64, 6, 8000)
    return {"fax": fax, "voice": wav}


def receive(app, kind, called, **fields) -> int:
    """Receive one message through intake (stored at once); return its id."""
    incoming = IncomingMessage(kind=kind, called=called, **fields)
    return receive_message(app, incoming)


@pytest.fixture
def mailbox(journal_app, samples):
    """Alice's fax, voice message and SMS, bob's fax and an unowned SMS."""
    app = journal_app
    ids = {
        "fax": receive(
            app,
            "fax",
            ALICE_FAX,
            sender="+4930555010",
            sender_name="Müller & <b>Söhne</b>",
            content_path=samples["fax"],
        ),
        "voice": receive(
            app,
            "voice",
            ALICE_VOICE,
            sender="+4930555011",
            content_path=samples["voice"],
        ),
        "sms": receive(
            app,
            "sms",
            ALICE_SMS,
            sender="+4930555012",
            text="<script>alert('x')</script> Grüße",
        ),
        "bob_fax": receive(
            app, "fax", BOB_FAX, sender="+4930555013", content_path=samples["fax"]
        ),
        "nobody": receive(app, "sms", "+4989999999", sender="+4930555014", text="hi"),
    }
    return ids


@pytest.fixture
def client(journal_app):
    """Return a Flask test client of the journal."""
    from ums_local_store.journal.web import create_journal

    web = create_journal(PluginContext(journal_app))
    web.testing = True
    return web.test_client()


def login(client, email="alice@example.test", password=None):
    """Log in through the form (its CSRF token included); return the response."""
    page = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)[1]
    return client.post(
        "/login",
        data={"email": email, "password": password or PASSWORDS[email], "csrf": token},
    )


def csrf_of(client, path="/messages") -> str:
    """Return the CSRF token a page of the logged-in session carries."""
    page = client.get(path)
    return re.search(r'name="csrf" value="([^"]+)"', page.text)[1]


def age_message(message_id: int, days: int) -> None:
    """Make message MESSAGE_ID DAYS days old."""
    when = db.utcnow() - dt.timedelta(days=days)
    with db.write_transaction():
        db.Message.update(received_at=when).where(db.Message.id == message_id).execute()


def content_file(app, message_id: int) -> str:
    """Return the path of the message's content file."""
    row = db.Message.get_by_id(message_id)
    return os.path.join(app.home, row.content_name)
