"""Sender identification: a caller's number found in a CSV or vCard address book."""

import logging
import os

import pytest
from conftest import reopen, use_mailserver

from ums_core import db, directory
from ums_core.context import PluginContext
from ums_core.directory import AddressBook, load_directory
from ums_core.errors import UmsError
from ums_core.hookspecs import hookimpl
from ums_core.intake import receive_message
from ums_core.model import Contact, IncomingMessage
from ums_core.numbers import SiteRules
from ums_core.queue import run_due_jobs
from ums_core.samples import write_fax_tiff
from ums_core.users import add_user

RULES = SiteRules(country="DE", area_code="89")
CALLER = "+4930555010"
HEADER = "name,company,phone,fax,other_fax,mobile,home,other\n"
BOOK = HEADER + "Erika Muster,Example GmbH,,+49 (0)30 555010,,,,\n"
VCARD = """BEGIN:VCARD\r
VERSION:3.0\r
FN:Max Muster\r
ORG:Muster AG;Vertrieb\r
TEL;type=WORK,FAX:030 555\r
 010\r
item1.TEL:+49 30 555011\r
END:VCARD\r
BEGIN:VCARD\r
VERSION:4.0\r
N:Kunde;Karl;;;\r
TEL;VALUE=uri;TYPE="voice,cell":tel:+49-170-1234567\r
TEL;TYPE=fax:n/a\r
END:VCARD\r
"""


class LookupRecorder:
    """Answer nothing, but record every caller lookup."""

    UMS_ROLE = "extension"

    def __init__(self):
        self.numbers = []

    @hookimpl(tryfirst=True)
    def ums_lookup_caller(self, number, ctx):
        self.numbers.append(number)


class BrokenDirectory:
    """A directory plugin that always fails."""

    UMS_ROLE = "user_source"

    @hookimpl(tryfirst=True)
    def ums_lookup_caller(self, number, ctx):
        raise RuntimeError("directory server down")


@pytest.fixture(autouse=True)
def fresh_cache():
    directory.clear_cache()
    yield
    directory.clear_cache()


def write_book(tmp_path, text, name="contacts.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def open_mail_app(home, smtp_sink, book, **extra):
    options = {"sender_identification": "true", "directory__file": book}
    use_mailserver(home, smtp_sink, **(options | extra))
    app = reopen(home)
    add_user("bob@example.test", RULES, "Bob", "en", {"fax": ["+4989123400"]})
    add_user("alice@example.test", RULES, "Alice", "de", {"sms": ["+4917012345"]})
    return app


def deliver_sms(app, sender=CALLER, sender_name=""):
    incoming = IncomingMessage(
        kind="sms",
        called="+4917012345",
        sender=sender,
        sender_name=sender_name,
        text="Hallo",
    )
    message_id = receive_message(app, incoming)
    run_due_jobs(app)
    return db.Message.get_by_id(message_id)


def last_mail(smtp_sink):
    return smtp_sink.handler.parsed()[-1]


def body_of(mail):
    return mail.get_body(("plain",)).get_content()


def test_csv_contact_named_in_subject_from_and_body(home, smtp_sink, tmp_path):
    app = open_mail_app(home, smtp_sink, write_book(tmp_path, BOOK))
    fax = tmp_path / "fax.tif"
    write_fax_tiff(str(fax), "Bestellung", pages=1)
    incoming = IncomingMessage(
        kind="fax",
        called="+4989123400",
        sender=CALLER,
        sender_name="PHONE SIDE NAME",
        content_path=str(fax),
    )
    receive_message(app, incoming)
    run_due_jobs(app)
    mail = last_mail(smtp_sink)
    label = "Erika Muster (Example GmbH)"
    assert str(mail["Subject"]) == f"Fax from {label} (1 page)"
    assert mail["From"].addresses[0].display_name == label
    assert mail["From"].addresses[0].addr_spec == "+4930555010@fax.example.test"
    assert f"From:        {label} (030 555010)" in body_of(mail)
    assert "PHONE SIDE NAME" not in mail.as_string()


def test_company_only_contact_gives_company_subject(home, smtp_sink, tmp_path):
    book = write_book(tmp_path, HEADER + ",Example GmbH,030 555010,,,,,\n")
    app = open_mail_app(home, smtp_sink, book)
    deliver_sms(app)
    mail = last_mail(smtp_sink)
    assert str(mail["Subject"]) == "SMS von Example GmbH"
    assert "Von:         Example GmbH (030 555010)" in body_of(mail)


def test_vcard_contact_named_in_mail(home, smtp_sink, tmp_path):
    app = open_mail_app(home, smtp_sink, write_book(tmp_path, VCARD, "book.vcf"))
    deliver_sms(app, sender="+4930555011")
    mail = last_mail(smtp_sink)
    assert str(mail["Subject"]) == "SMS von Max Muster (Muster AG)"
    assert mail["From"].addresses[0].display_name == "Max Muster (Muster AG)"


def test_phone_side_name_used_when_no_contact_found(home, smtp_sink, tmp_path):
    app = open_mail_app(home, smtp_sink, write_book(tmp_path, BOOK))
    deliver_sms(app, sender="+4930999999", sender_name="Anruferin")
    mail = last_mail(smtp_sink)
    assert str(mail["Subject"]) == "SMS von Anruferin (030 999999)"
    assert mail["From"].addresses[0].display_name == "Anruferin"


def test_local_mode_looks_nothing_up(home, tmp_path, monkeypatch):
    """In local mode neither the hook is called nor the address book opened."""
    app = reopen(home)
    app.config.set("sender_identification", "true")
    app.config.set("directory.file", write_book(tmp_path, BOOK))
    recorder = LookupRecorder()
    app.pm.register(recorder, name="recorder")
    opened = []
    monkeypatch.setattr(directory, "read_address_book", opened.append)
    add_user("alice@example.test", RULES, "Alice", "de", {"sms": ["+4917012345"]})
    row = deliver_sms(app)
    ctx = PluginContext(app)
    assert (row.location, row.state) == ("local", "stored")
    assert ctx.lookup_caller(CALLER) is None
    assert AddressBook().ums_lookup_caller(number=CALLER, ctx=ctx) is None
    assert recorder.numbers == [] and opened == []


def test_sender_identification_off_looks_nothing_up(home, smtp_sink, tmp_path):
    book = write_book(tmp_path, BOOK)
    app = open_mail_app(home, smtp_sink, book, sender_identification="false")
    recorder = LookupRecorder()
    app.pm.register(recorder, name="recorder")
    deliver_sms(app)
    assert recorder.numbers == []
    assert str(last_mail(smtp_sink)["Subject"]) == "SMS von 030 555010"


def test_hook_is_asked_with_the_e164_caller(home, smtp_sink, tmp_path):
    app = open_mail_app(home, smtp_sink, write_book(tmp_path, BOOK))
    recorder = LookupRecorder()
    app.pm.register(recorder, name="recorder")
    deliver_sms(app)
    deliver_sms(app, sender="anonymous")
    assert recorder.numbers == [CALLER]


@pytest.mark.parametrize(
    "match, subject",
    [("unique", "SMS von 030 555010"), ("first", "SMS von Erste GmbH")],
)
def test_several_contacts_by_match_rule(home, smtp_sink, tmp_path, match, subject):
    text = HEADER + ",Erste GmbH,030 555010,,,,,\n,Zweite KG,,,,,,+4930555010\n"
    app = open_mail_app(
        home, smtp_sink, write_book(tmp_path, text), directory__match=match
    )
    deliver_sms(app)
    assert str(last_mail(smtp_sink)["Subject"]) == subject


def test_changed_file_is_read_again_without_restart(home, smtp_sink, tmp_path):
    book = write_book(tmp_path, BOOK)
    app = open_mail_app(home, smtp_sink, book)
    deliver_sms(app)
    stat = os.stat(book)
    write_book(tmp_path, HEADER + ",Neue Firma GmbH,030 555010,,,,,\n")
    os.utime(book, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    deliver_sms(app)
    subjects = [str(mail["Subject"]) for mail in smtp_sink.handler.parsed()]
    expected = "SMS von Erika Muster (Example GmbH)"
    assert subjects == [expected, "SMS von Neue Firma GmbH"]


def test_unchanged_file_is_read_once(tmp_path, monkeypatch):
    book = write_book(tmp_path, BOOK)
    reads = []
    real_read = directory.read_address_book
    monkeypatch.setattr(
        directory, "read_address_book", lambda p: reads.append(p) or real_read(p)
    )
    for _ in range(3):
        assert directory.find_directory(book, RULES).lookup(CALLER) is not None
    assert reads == [book]


def test_missing_file_logs_once_and_delivery_works(home, smtp_sink, tmp_path, caplog):
    missing = str(tmp_path / "nowhere.csv")
    app = open_mail_app(home, smtp_sink, missing)
    with caplog.at_level(logging.INFO, logger="ums_core.directory"):
        first = deliver_sms(app)
        second = deliver_sms(app)
    assert (first.state, second.state) == ("delivered", "delivered")
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "nowhere.csv does not exist" in errors[0].getMessage()
    assert str(last_mail(smtp_sink)["Subject"]) == "SMS von 030 555010"


def test_file_appearing_later_is_used(home, smtp_sink, tmp_path):
    book = str(tmp_path / "later.csv")
    app = open_mail_app(home, smtp_sink, book)
    deliver_sms(app)
    write_book(tmp_path, BOOK, "later.csv")
    deliver_sms(app)
    subject = str(last_mail(smtp_sink)["Subject"])
    assert subject == "SMS von Erika Muster (Example GmbH)"


def test_relative_path_is_inside_the_instance(home, smtp_sink):
    with open(os.path.join(home, "contacts.csv"), "w", encoding="utf-8") as handle:
        handle.write(BOOK)
    app = open_mail_app(home, smtp_sink, "contacts.csv")
    deliver_sms(app)
    assert "Example GmbH" in str(last_mail(smtp_sink)["Subject"])


def test_broken_directory_plugin_does_not_stop_delivery(home, smtp_sink, tmp_path):
    app = open_mail_app(home, smtp_sink, write_book(tmp_path, BOOK))
    app.pm.register(BrokenDirectory(), name="broken")
    row = deliver_sms(app)
    assert row.state == "delivered"
    assert str(last_mail(smtp_sink)["Subject"]) == "SMS von 030 555010"


def test_control_characters_and_markup_in_names_stay_data(home, smtp_sink, tmp_path):
    text = (
        HEADER
        + '"Evil\r\nBcc: victim@example.test\r\nX-Injected: yes","<script>x</script>"'
        + ",030 555010,,,,,\n"
    )
    app = open_mail_app(home, smtp_sink, write_book(tmp_path, text))
    row = deliver_sms(app)
    [(_, rcpts, raw)] = smtp_sink.handler.messages
    mail = last_mail(smtp_sink)
    assert row.state == "delivered" and rcpts == ["alice@example.test"]
    assert mail["Bcc"] is None and mail["X-Injected"] is None
    assert b"\r\nBcc:" not in raw and b"\r\nX-Injected:" not in raw
    name = mail["From"].addresses[0].display_name
    assert "\n" not in name and "\r" not in name
    assert "<script>x</script>" in str(mail["Subject"])
    assert "Evil Bcc: victim@example.test X-Injected: yes" in body_of(mail)


def test_vcard_line_breaks_in_names_cannot_reach_headers(tmp_path):
    text = "BEGIN:VCARD\nFN:Evil\\nBcc: x@example.test\nTEL:030 555010\nEND:VCARD\n"
    found = load_directory(write_book(tmp_path, text, "a.vcf"), RULES).lookup(CALLER)
    assert found == Contact("Evil Bcc: x@example.test", "", CALLER)


def test_numbers_in_any_written_form_match(tmp_path):
    text = (
        HEADER
        + "A,,030 555010,,,,,\n"
        + "B,,,,+49 (0)30 555011,,,\n"
        + "C,,,,,0049 170 1234567,,\n"
        + "D,,,,,,089/123456,\n"
    )
    book = load_directory(write_book(tmp_path, text), RULES)
    assert book.lookup("+4930555010").name == "A"
    assert book.lookup("+4930555011").name == "B"
    assert book.lookup("+491701234567").name == "C"
    assert book.lookup("+4989123456").name == "D"


def test_broken_cells_and_rows_are_skipped_with_a_warning(tmp_path, caplog):
    text = (
        HEADER
        + "Erika,Example GmbH,030 555010,n/a,,,,\n"
        + ",,030 555012,,,,,\n"
        + "Short,,030 555013\n"
        + "\n"
        + "Zoe,,call me,,,,,\n"
    )
    with caplog.at_level(logging.WARNING, logger="ums_core.directory"):
        book = load_directory(write_book(tmp_path, text), RULES)
    messages = [r.getMessage() for r in caplog.records]
    assert book.lookup("+4930555010").company == "Example GmbH"
    assert book.lookup("+4930555012") is None
    assert book.lookup("+4930555013").name == "Short"
    assert len(messages) == 3
    assert "line 2" in messages[0] and "fax 'n/a'" in messages[0]
    assert "line 3" in messages[1] and "no name or company" in messages[1]
    assert "line 6" in messages[2] and "phone 'call me'" in messages[2]


def test_csv_header_variants_and_semicolons(tmp_path):
    text = "\ufeffCompany;Other Fax;Ignored\nExample GmbH;030 555010;x\n"
    book = load_directory(write_book(tmp_path, text), RULES)
    assert book.lookup(CALLER) == Contact("", "Example GmbH", CALLER)


def test_csv_without_usable_header_is_refused(tmp_path):
    with pytest.raises(UmsError, match="no header"):
        load_directory(write_book(tmp_path, "Erika,030 555010\n"), RULES)


def test_vcard_subset_is_read(tmp_path):
    book = load_directory(write_book(tmp_path, VCARD, "book.vcf"), RULES)
    max_muster = Contact("Max Muster", "Muster AG", "+4930555010")
    assert book.lookup("+4930555010") == max_muster
    assert book.lookup("+4930555011").label == "Max Muster (Muster AG)"
    assert book.lookup("+491701234567").name == "Karl Kunde"


def test_vcard_is_recognised_by_content(tmp_path):
    text = "BEGIN:VCARD\nORG:Example GmbH\nTEL;TYPE=fax:030 555010\nEND:VCARD\n"
    book = load_directory(write_book(tmp_path, text, "export.txt"), RULES)
    assert book.lookup(CALLER).label == "Example GmbH"


def test_same_contact_twice_is_still_unique(tmp_path):
    text = HEADER + "Erika,Example GmbH,030 555010,030 555010,,,,\n"
    text += "Erika,Example GmbH,+4930555010,,,,,\n"
    book = load_directory(write_book(tmp_path, text), RULES)
    assert book.lookup(CALLER, "unique").name == "Erika"


@pytest.mark.parametrize(
    "content, problem",
    [(b"\xff\xfe\x00n\x00a", "not UTF-8"), (None, "does not exist")],
)
def test_unusable_file_is_a_clear_error(tmp_path, content, problem):
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UmsError, match=problem):
        load_directory(str(path), RULES)


def test_folder_instead_of_file_is_a_clear_error(tmp_path):
    with pytest.raises(UmsError, match="cannot read the address book"):
        load_directory(str(tmp_path), RULES)


def test_address_book_is_a_builtin_plugin(home, smtp_sink, tmp_path):
    app = open_mail_app(home, smtp_sink, write_book(tmp_path, BOOK))
    assert "core.directory" in app.active_names()
    assert PluginContext(app).lookup_caller(CALLER).company == "Example GmbH"
