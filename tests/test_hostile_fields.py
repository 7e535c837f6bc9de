"""Hostile text in every named field: no header injection, no file outside the
instance, nothing hidden; and composed mails survive a round trip unchanged.
"""

import email
import json
import os
import re
import smtplib
import string
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage

import pytest
from conftest import reopen, use_mailserver
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_gateway import FAX, gateway_app, outbound  # noqa: F401

from ums_core import db, helpers
from ums_core.context import PluginContext
from ums_core.intake import receive_message
from ums_core.mailqueue import iter_wire, serialize_mail
from ums_core.messages import to_model
from ums_core.model import IncomingMessage
from ums_core.numbers import SiteRules
from ums_core.queue import run_due_jobs
from ums_core.samples import write_fax_tiff, write_wav
from ums_core.spool import scan_spool, spool_folder
from ums_core.users import add_user

HEADERS = {
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Message-Context",
    "Auto-Submitted",
    "X-UMS-Message",
    "MIME-Version",
    "Content-Type",
}
NASTY = st.text(
    alphabet=st.sampled_from(
        list('\r\n\t\x00\x0b\x0c\x1b\x7f\x85\u2028\u2029:<>"=?;,@ ../\\')
        + list("Bcc: evil@example.test")
        + list("äöü€漢")
    ),
    max_size=60,
)
SMS_TEXT = st.text(min_size=1, max_size=300).filter(
    lambda t: (
        any(c.isprintable() and not c.isspace() for c in t)
        and not any(0xD800 <= ord(c) <= 0xDFFF for c in t)
    )
)


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    folder = tmp_path_factory.mktemp("samples")
    fax, wav = folder / "f.tif", folder / "v.wav"
    write_fax_tiff(str(fax), "hostile", pages=1)
    write_wav(str(wav), seconds=0.3)
    return {"fax": str(fax), "voice": str(wav)}


@pytest.fixture
def mail_app(home, smtp_sink):
    use_mailserver(home, smtp_sink)
    app = reopen(home)
    rules = SiteRules(country="DE", area_code="89")
    numbers = {"fax": ["+4989123456"], "voice": ["+4989123457"], "sms": ["+4917012"]}
    add_user("alice@example.test", rules, "Alice", "en", numbers)
    yield app
    app.close()


CALLED = {"fax": "+4989123456", "voice": "+4989123457", "sms": "+4917012"}


def compose(app, kind, samples, name="", station="", sender="+4930555010", text=""):
    """Take one message in and return (row, composed mail, parsed wire form)."""
    incoming = IncomingMessage(
        kind=kind,
        called=CALLED[kind],
        sender=sender,
        sender_name=name,
        station_id=station,
        text=text if kind == "sms" else "",
        content_path=samples.get(kind),
    )
    row = db.Message.get_by_id(receive_message(app, incoming, run_now=False))
    ctx = PluginContext(app)
    mail = app.hook.ums_compose_mail(message=to_model(app, row), ctx=ctx)
    wire = b"".join(iter_wire(serialize_mail(mail)))  # base64 from the files too
    return row, mail, email.message_from_bytes(wire, policy=policy.default), wire


def visible(text: str) -> str:
    """Return the characters of TEXT a reader sees, spaces squeezed out."""
    return "".join(c for c in text if c.isprintable() and not c.isspace())


def assert_no_injection(parsed, wire: bytes) -> None:
    names = set(parsed.keys()) - {"Content-Transfer-Encoding"}
    assert names == HEADERS, sorted(parsed.keys())
    assert all(len(parsed.get_all(name)) == 1 for name in parsed.keys())
    head = wire.split(b"\r\n\r\n", 1)[0]
    assert b"\n" not in head.replace(b"\r\n", b"") and b"\r" not in head.replace(
        b"\r\n", b""
    )
    assert b"\x00" not in head
    for line in head.split(b"\r\n"):
        assert line[:1] in (b" ", b"\t") or b":" in line, line


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(name=NASTY, station=NASTY, kind=st.sampled_from(["fax", "voice"]))
def test_caller_name_and_station_id_cannot_inject_headers(
    mail_app, samples, name, station, kind
):
    """Whatever the phone side says, the mail has its own headers and no others,
    and the caller's name stays visible in the database and in the mail."""
    row, _, parsed, wire = compose(mail_app, kind, samples, name, station)
    assert_no_injection(parsed, wire)
    assert visible(row.sender_name) == visible(name)[: len(visible(row.sender_name))]
    assert visible(str(parsed["From"].addresses[0].display_name)) or not visible(name)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(text=SMS_TEXT, sender=NASTY)
def test_sms_sender_and_text_cannot_inject_and_text_is_kept(
    mail_app, samples, text, sender
):
    row, _, parsed, wire = compose(mail_app, "sms", samples, sender=sender, text=text)
    assert_no_injection(parsed, wire)
    assert (
        visible(parsed.get_body(("plain",)).get_content()).find(visible(row.text)) >= 0
    )
    assert visible(row.text) == visible(text)


def attachment_bytes(part) -> bytes:
    """Return what PART carries: streamed parts name their file (or bytes)."""
    streamed = getattr(part, "ums_stream_source", None)
    if streamed is None:
        return part.get_content()
    source = streamed[1]
    if isinstance(source, bytes):
        return source
    with open(source, "rb") as handle:
        return handle.read()


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    name=NASTY,
    kind=st.sampled_from(["fax", "voice", "sms"]),
    text=SMS_TEXT,
)
def test_composed_mail_round_trips_headers_and_attachment_bytes(
    mail_app, samples, name, kind, text
):
    """Serialised and parsed again: the same headers, the same attachment bytes."""
    _, mail, parsed, _ = compose(mail_app, kind, samples, name=name, text=text)
    assert [(k, str(v)) for k, v in parsed.items()] == [
        (k, str(v)) for k, v in mail.items()
    ]
    sent = [(p.get_filename(), attachment_bytes(p)) for p in mail.iter_attachments()]
    got = [(p.get_filename(), p.get_content()) for p in parsed.iter_attachments()]
    assert got == sent
    if kind == "voice":
        with open(samples["voice"], "rb") as handle:
            assert got[0][1] == handle.read()
    assert len(got) == {"fax": 1, "voice": 1, "sms": 0}[kind]


def wire_with(policy_used, app, row) -> bytes:
    """Compose ROW's mail with POLICY_USED for new mails; the boundary blanked."""
    saved = helpers.MAIL_POLICY
    helpers.MAIL_POLICY = policy_used
    try:
        ctx = PluginContext(app)
        mail = app.hook.ums_compose_mail(message=to_model(app, row), ctx=ctx)
        wire = b"".join(iter_wire(serialize_mail(mail)))
    finally:
        helpers.MAIL_POLICY = saved
    return re.sub(rb"={15}\d+==", b"BOUNDARY", wire)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    name=NASTY | st.text(max_size=90),
    kind=st.sampled_from(["fax", "voice", "sms"]),
    text=SMS_TEXT,
)
@example(name="x =?utf-8?q?a?= =?utf-8?q?b?= y", kind="sms", text="t")
@example(name="a" * 60 + " =?utf-8?q?=0d=0aX=3a_y?=", kind="fax", text="t")
def test_plain_headers_kept_as_text_write_the_same_bytes(
    mail_app, samples, name, kind, text
):
    """ums keeps plain one-line header values as text: the e-mail is the same."""
    row = compose(mail_app, kind, samples, name=name, text=text)[0]
    stock = policy.default.clone(header_factory=helpers._HeaderClasses())
    ours = wire_with(helpers.MAIL_POLICY, mail_app, row)
    assert b"BOUNDARY" in ours or kind == "sms"
    assert wire_with(stock, mail_app, row) == ours


# Values for each header: the email package's normal form and near misses.
HEADER_VALUES = {
    "Date": [
        "Fri, 04 Dec 2026 14:43:08 +0000",
        "Fri, 04 Dec 2026 14:43:08 -0000",
        "Fri, 4 Dec 2026 14:43:08 +0000",
        "Mon, 04 Dec 2026 14:43:08 +0000",
        "Fri, 04 Dec 2026 14:43:08 GMT",
        "04 Dec 2026 14:43:08 +0000",
        "Fri, 04 Dec 2026 14:43 +0000",
        "not a date",
    ],
    "Message-ID": [
        "<ums.1.msg2@example.test>",
        "ums.1@example.test",
        "<a@b> x",
        "<a b>",
        '<a"b@c>',
        "<a,b@c>",
        "<a@b@c>",
        "<a..b@c>",
    ],
    "MIME-Version": ["1.0", "1.1", "1.0 (x)"],
    "Content-Transfer-Encoding": ["base64", "BASE64", "7bit", "x-uue"],
    "Content-Type": [
        'text/plain; charset="utf-8"',
        "text/plain; charset=utf-8",
        'Text/Plain; charset="utf-8"',
        'text/plain;charset="utf-8"',
        'multipart/mixed; boundary="===============123=="',
        'application/pdf; name="a b.pdf"',
        'text/plain; charset="a\\"b"',
        "text/plain",
        "text",
    ],
    "Content-Disposition": [
        'attachment; filename="fax-20261204-141500-4930555010.pdf"',
        "attachment; filename=a.pdf",
        'Attachment; filename="a.pdf"',
        "inline",
        'attachment; filename*="x"',
    ],
    "Subject": ["Fax from 030 555010", " leading", "two  spaces", "=?utf-8?q?x?="],
    "X-UMS-Message": ["12", ""],
    "To": ["Alice <alice@example.test>", "Bob <bob@example.test"],
}


@pytest.mark.parametrize(
    ("name", "value"),
    [(name, value) for name, values in HEADER_VALUES.items() for value in values],
)
def test_a_header_kept_as_text_is_written_as_the_email_package_writes_it(name, value):
    stock = policy.default.clone(header_factory=helpers._HeaderClasses())

    def first_line(used) -> bytes:
        mail = EmailMessage(policy=used)
        mail[name] = value
        return mail.as_bytes(policy=policy.SMTP).split(b"\r\n\r\n")[0]

    kept = helpers.MAIL_POLICY.header_store_parse(name, value)[1]
    as_text = type(kept) is str  # a parsed header is a str subclass
    if as_text:
        assert first_line(helpers.MAIL_POLICY) == first_line(stock)
    if value == HEADER_VALUES[name][0]:
        assert as_text == (name not in ("Content-Type", "Content-Disposition", "To"))


@pytest.mark.parametrize("kind", ["fax", "sms"])
@pytest.mark.parametrize(
    "name",
    [
        "Müller =?utf-8?q?=0d=0aBcc=3a_evil=40x.test?=",
        "Fax =?utf-8?q?=0d=0aReply-To=3a_evil=40x.test?=",
        "a" * 60 + " =?utf-8?q?=0d=0aReply-To=3a_evil=40x.test?=",
        "=?utf-8?b?DQpCY2M6IGV2aWxAeC50ZXN0?=",
        "==?utf-8?q?=0d=0aBcc=3a_e?=?=",
        "x" * 24 + "aäaäaä=?utf-8?q?=0D=0ABcc:_evil@attacker.test?=ä",
    ],
)
def test_encoded_words_in_a_caller_name_add_no_header(mail_app, samples, kind, name):
    row, _, parsed, wire = compose(mail_app, kind, samples, name=name, text="hi")
    assert_no_injection(parsed, wire)
    assert b"evil" not in b"".join(
        line
        for line in wire.split(b"\r\n\r\n")[0].split(b"\r\n")
        if b":" in line[:20] and not line.startswith((b"From:", b"Subject:"))
    )
    assert "?utf-8" in str(parsed["Subject"]) and "=?" not in str(parsed["Subject"])
    assert parsed.get_all("Bcc") is None and parsed.get_all("Reply-To") is None


LIST_NAME = "Evil <evil@attacker.test>, " + "x" * 60


def test_a_long_name_with_address_syntax_stays_one_address(mail_app, samples):
    """Python's folding of a long display name can lose its quotes: ums's own
    names carry no address syntax, so the From and To still name one address."""
    db.User.update(name=LIST_NAME).where(
        db.User.email == "alice@example.test"
    ).execute()
    for kind in ("fax", "sms"):
        _, _, parsed, wire = compose(mail_app, kind, samples, name=LIST_NAME, text="t")
        assert [a.addr_spec for a in parsed["From"].addresses] == [
            "+4930555010@" + ("fax" if kind == "fax" else "sms") + ".example.test"
        ]
        assert [a.addr_spec for a in parsed["To"].addresses] == ["alice@example.test"]
        assert b"attacker" in wire  # the name is kept, without its brackets


@pytest.mark.parametrize(
    "value",
    [
        "=?utf-8?q?=0D=0ABcc:_evil@attacker.test?=",
        "=?utf-8?b?DQpCY2M6IGV2aWxAeC50ZXN0?=",
        "Grüße =?utf-8?q?=0D=0AX-Evil:_1?=",
    ],
)
@pytest.mark.parametrize("name", ["Subject", "X-Caller", "Comments"])
def test_a_header_a_plugin_sets_cannot_decode_to_a_line_break(name, value):
    mail = helpers.new_mail()
    with pytest.raises(ValueError, match="line break"):
        mail[name] = value
    assert name not in mail


def test_an_attachment_name_cannot_carry_a_line_break():
    mail = helpers.new_mail()
    mail["To"] = "alice@example.test"
    mail.set_content("x")
    helpers.attach_file(
        mail, b"%PDF", "application", "pdf", "=?utf-8?q?=0D=0ABcc:_evil@x.test?=.pdf"
    )
    wire = b"".join(iter_wire(serialize_mail(mail)))
    assert b"\r\nBcc:" not in wire and b"\nBcc:" not in wire
    [part] = list(
        email.message_from_bytes(wire, policy=policy.default).iter_attachments()
    )
    assert "Bcc" in part.get_filename() and "\n" not in part.get_filename()


@pytest.mark.parametrize(
    ("name", "address"),
    [
        ("To", Address("Bob", username="bob", domain="example.test>, <evil@x.test")),
        ("To", Address("Bob", username="b ob", domain="example.test")),
        ("Subject", Address("Bob", addr_spec="bob@example.test")),
    ],
)
def test_an_odd_address_object_takes_the_stock_way(name, address):
    kept = helpers.MAIL_POLICY.header_store_parse
    assert type(kept("To", Address("Bob", addr_spec="bob@example.test"))[1]) is str
    try:
        stored = kept(name, address)[1]
    except (TypeError, AttributeError, ValueError):
        return  # what the stock policy does with it
    assert type(stored) is not str


BAD_NAMES = ["../../config.toml", "a\x00b.tif", "/etc/hostname", "..", ".hidden.tif"]
BAD_NAMES += ["sub/x.tif", "x.tif\r\nname: y", ""]


@pytest.mark.parametrize("content", BAD_NAMES)
def test_spool_content_names_outside_the_folder_are_refused(app, content, tmp_path):
    """The entry goes to spool/bad, touches nothing else, and blocks no other."""
    outside = tmp_path / "outside.tif"
    outside.write_bytes(b"not yours")
    new = spool_folder(app.home, "new")
    entries = {
        "e1": {"kind": "fax", "to": "+4989100", "content": content},
        "e2": {"kind": "sms", "to": "+4989100", "text": "next one"},
    }
    for name, meta in entries.items():
        with open(os.path.join(new, name + ".json"), "w", encoding="utf-8") as out:
            json.dump(meta, out)
    first, second = scan_spool(app)
    assert first.message_id is None and first.error
    assert second.message_id is not None
    assert db.Message.select().count() == 1
    bad = sorted(os.listdir(spool_folder(app.home, "bad")))
    assert bad == ["e1.json", "e1.reason.txt"]
    assert outside.read_bytes() == b"not yours"
    with open(os.path.join(app.home, "config.toml"), "rb") as handle:
        assert handle.read()


def files_outside(root, home: str) -> list[str]:
    found = []
    for folder, _, names in os.walk(root):
        if not os.path.abspath(folder).startswith(os.path.abspath(home)):
            found += [os.path.join(folder, n) for n in names if "evil" in n]
    return found


@pytest.mark.parametrize(
    "filename", ["../../evil.pdf", "..\\..\\evil.pdf", "evil\x00.pdf", "/tmp/evil.pdf"]
)
def test_gateway_attachment_names_write_nothing_outside(
    gateway_app,  # noqa: F811 (the fixture of test_gateway)
    smtp_sink,
    tmp_path,
    filename,
):
    pdf = (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages"
        b"/Kids[3 0 R]/Count 1>>endobj 3 0 obj<</Type/Page/Parent 2 0 R/MediaBox"
        b"[0 0 595 842]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
    )
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "alice@example.test", FAX, "SUBJ"
    mail.set_content("fax this")
    mail.add_attachment(pdf, "application", "pdf", filename=filename)
    hostile = b"=?utf-8?q?x=0D=0ABcc:_evil@example.test=00?="
    data = mail.as_bytes(policy=policy.SMTP).replace(b"SUBJ", hostile, 1)
    with smtplib.SMTP("127.0.0.1", gateway_app.port, timeout=10) as smtp:
        smtp.sendmail("alice@example.test", [FAX], data)
    run_due_jobs(gateway_app)
    [row] = outbound()
    assert row.state in ("sent", "rejected")
    assert files_outside(tmp_path.parent, gateway_app.home) == []
    for report in smtp_sink.handler.parsed():
        for value in report.values():
            assert "\r" not in str(value) and "\n" not in str(value)
            assert "\x00" not in str(value)


def test_nasty_printables_in_names_are_kept_not_dropped(mail_app, samples):
    """Cleaning replaces controls; it never drops what a reader could see."""
    name = "Müller & Söhne <ceo@evil.test>; DROP TABLE\r\nBcc: x@y.test"
    row, _, parsed, wire = compose(mail_app, "fax", samples, name=name)
    assert_no_injection(parsed, wire)
    assert visible(row.sender_name) == visible(name)
    assert set(string.printable) >= set(visible(name)) - set("üö")
