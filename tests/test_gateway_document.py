"""The fax gateway's document builder: one PDF from an e-mail, or a clear refusal."""

import base64
import io
import os
import quopri
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest
from PIL import Image, ImageDraw
from pypdf import PdfReader, PdfWriter

from ums_core import media
from ums_core.gateway import document, render
from ums_core.gateway.document import (
    DocumentError,
    build_fax_document,
    extract_text,
    html_to_text,
    parse_mail,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.environ.get("UMS_CORPUS") or os.path.join(REPO, "..", "shared", "corpus")
MAIL_CORPUS = os.path.join(CORPUS, "mail")
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
HEADERS = b"From: Anna <anna@example.org>\r\nTo: fax@example.org\r\nSubject: t\r\n"


def make_mail(text: str | None = "Please fax this.") -> EmailMessage:
    """Return a new e-mail with TEXT as its plain body (none if TEXT is None)."""
    msg = EmailMessage()
    msg["From"] = "Anna <anna@example.org>"
    msg["To"] = "fax+4930123456@example.org"
    msg["Subject"] = "Fax"
    if text is not None:
        msg.set_content(text)
    return msg


def attach(msg: EmailMessage, data: bytes, content_type: str, filename: str) -> None:
    """Attach DATA to MSG as CONTENT_TYPE called FILENAME."""
    maintype, subtype = content_type.split("/")
    msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)


def make_pdf(pages: int = 1, size: tuple[int, int] = (200, 300)) -> bytes:
    """Return a PDF of PAGES blank pages of SIZE points."""
    images = [Image.new("L", size, 255) for _ in range(pages)]
    buffer = io.BytesIO()
    images[0].save(
        buffer, "PDF", save_all=True, append_images=images[1:], resolution=72
    )
    return buffer.getvalue()


def make_picture(image_format: str, mode: str = "RGB") -> bytes:
    """Return a small photo-like picture in IMAGE_FORMAT."""
    image = Image.linear_gradient("L").resize((320, 240)).convert(mode)
    ImageDraw.Draw(image).rectangle((40, 40, 120, 120), fill="black")
    buffer = io.BytesIO()
    image.save(buffer, image_format)
    return buffer.getvalue()


def make_fax_tiff(pages: int = 2) -> bytes:
    """Return a bilevel G4 TIFF of PAGES fax pages at 204 x 196 dpi."""
    frames = []
    for number in range(pages):
        frame = Image.new("1", (1728, 2200), 1)
        ImageDraw.Draw(frame).rectangle((100, 100, 600 + number, 300), fill=0)
        frames.append(frame)
    buffer = io.BytesIO()
    frames[0].save(
        buffer,
        "TIFF",
        save_all=True,
        append_images=frames[1:],
        compression="group4",
        dpi=(204, 196),
    )
    return buffer.getvalue()


def read_pdf(data: bytes) -> PdfReader:
    """Return a pypdf reader of DATA."""
    return PdfReader(io.BytesIO(data))


def summarise(outcomes) -> list[tuple[str, str, int]]:
    """Return (name, action, pages) for each outcome."""
    return [(outcome.name, outcome.action, outcome.pages) for outcome in outcomes]


def raw_text_mail(body: bytes, content_type: str, encoding: str | None) -> bytes:
    """Return the raw bytes of a single-part e-mail with BODY as given."""
    head = HEADERS + b"MIME-Version: 1.0\r\nContent-Type: " + content_type.encode()
    if encoding is not None:
        head += b"\r\nContent-Transfer-Encoding: " + encoding.encode()
    return head + b"\r\n\r\n" + body


def nest_multiparts(levels: int, leaf: bytes) -> bytes:
    """Return a MIME entity that is LEVELS multiparts deep around LEAF."""
    template = (
        b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n%s\r\n--b%d--\r\n"
    )
    entity = leaf
    for level in range(levels):
        entity = template % (level, level, entity, level)
    return entity


def test_build_plain_text_gives_one_a4_page():
    doc = build_fax_document(make_mail("Hello Fax.\r\nSecond line."))

    assert doc.pages == 1
    assert summarise(doc.outcomes) == [("text body", "page", 1)]
    reader = read_pdf(doc.pdf)
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert float(box.width) == pytest.approx(595, abs=3)
    assert float(box.height) == pytest.approx(842, abs=3)


def test_render_text_page_is_a_ccitt_fax_page(tmp_path):
    """A page ums draws is a 1728-pixel G4 image that media can turn back into TIFF."""
    doc = build_fax_document(make_mail("Müller & Söhne\n\tTabs, € and 中文 😀"))
    path = tmp_path / "fax.pdf"
    path.write_bytes(doc.pdf)

    assert media.fax_to_tiff(path, tmp_path / "fax.tif") == 1
    image = Image.open(tmp_path / "fax.tif")
    assert image.size == (1728, 2292)
    assert image.mode == "1"


def test_build_keeps_mime_order_text_pdf_png_jpeg():
    msg = make_mail("Cover text.")
    attach(msg, make_pdf(2, size=(300, 400)), "application/pdf", "contract.pdf")
    attach(msg, make_picture("PNG", "RGBA"), "image/png", "plan.png")
    attach(msg, make_picture("JPEG"), "image/jpeg", "photo.jpg")

    doc = build_fax_document(msg)

    assert summarise(doc.outcomes) == [
        ("text body", "page", 1),
        ("contract.pdf", "page", 2),
        ("plan.png", "page", 1),
        ("photo.jpg", "page", 1),
    ]
    reader = read_pdf(doc.pdf)
    assert doc.pages == len(reader.pages) == 5
    sizes = [(float(p.mediabox.width), float(p.mediabox.height)) for p in reader.pages]
    assert sizes[1] == sizes[2] == (300, 400)
    assert sizes[3] == sizes[4] == sizes[0]


def test_build_converts_fax_tiff_and_colour_tiff():
    msg = make_mail(None)
    attach(msg, make_fax_tiff(2), "image/tiff", "scan.tif")
    attach(msg, make_picture("TIFF"), "image/tiff", "colour.tiff")

    doc = build_fax_document(msg)

    assert summarise(doc.outcomes) == [
        ("scan.tif", "page", 2),
        ("colour.tiff", "page", 1),
    ]
    assert len(read_pdf(doc.pdf).pages) == 3


def test_build_recognises_octet_stream_by_name_and_content():
    msg = make_mail("See files.")
    attach(msg, make_pdf(), "application/octet-stream", "invoice.PDF")
    attach(msg, make_picture("PNG"), "application/octet-stream", "scan")
    attach(msg, "Grüße".encode(), "application/octet-stream", "note.txt")

    doc = build_fax_document(msg)

    assert [o.action for o in doc.outcomes] == ["page"] * 4
    assert doc.pages == 4


def test_build_skips_html_logo_and_extracts_text_without_tags():
    msg = make_mail(None)
    html = (
        "<html><head><title>T</title><style>p {color: red}</style></head><body>"
        "<script>alert('x')</script><p>Dear M&uuml;ller &amp; S&ouml;hne,</p>"
        "<p>please&nbsp;fax<br>this.</p><ul><li>one</li><li>two</li></ul>"
        '<img src="cid:logo@example.org"></body></html>'
    )
    msg.set_content(html, subtype="html")
    msg.add_related(
        make_picture("PNG"),
        "image",
        "png",
        cid="<logo@example.org>",
        filename="logo.png",
        disposition="inline",
    )

    doc = build_fax_document(msg)
    text = extract_text(msg)

    assert summarise(doc.outcomes) == [
        ("text body", "page", 1),
        ("inline image logo.png", "skipped", 0),
    ]
    assert text == "Dear Müller & Söhne,\n\nplease fax\nthis.\n\n- one\n- two"


def test_build_skips_cid_picture_in_mixed_and_html_alternative():
    msg = make_mail("Plain version.")
    msg.add_alternative('<p>HTML version <img src="cid:sig%40x"></p>', subtype="html")
    msg.make_mixed()
    attach(msg, make_picture("PNG"), "image/png", "signature.png")
    msg.get_payload()[1]["Content-ID"] = "<sig@x>"

    doc = build_fax_document(msg)

    assert summarise(doc.outcomes) == [
        ("text body", "page", 1),
        ("unnamed text/html part", "skipped", 0),
        ("inline image signature.png", "skipped", 0),
    ]
    assert extract_text(msg) == "Plain version."


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("a<br>b<br/>c", "a\nb\nc"),
        ("<p>one</p><p>two</p>", "one\n\ntwo"),
        ("<div>x</div><div>y</div>", "x\ny"),
        ("<style>b{}</style><script>if (a<b) x()</script>ok", "ok"),
        ("&lt;tag&gt; &quot;q&quot; &#1055; &euro;", '<tag> "q" П €'),
        ("  spread \n  over\tlines  ", "spread over lines"),
        ("<pre>  keep\n    this</pre>", "  keep\n    this"),
        ("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a  b\nc"),
        ("<!-- hidden --><p>shown", "shown"),
        ("<head><title>t</title><body>text", "text"),
    ],
)
def test_html_to_text_lays_out_lines(html, text):
    assert html_to_text(html) == text


def test_build_keeps_a_pdf_inside_the_html_version():
    """Apple Mail puts attachments in the HTML branch of a multipart/alternative."""
    html = EmailMessage()
    html.set_content("<p>See the PDF.</p>", subtype="html")
    html.add_attachment(
        make_pdf(), "application", "pdf", filename="plan.pdf", disposition="inline"
    )
    msg = make_mail("See the PDF.")
    msg.make_alternative()
    msg.attach(html)

    doc = build_fax_document(msg)

    assert summarise(doc.outcomes) == [
        ("text body", "page", 1),
        ("unnamed text/html part", "skipped", 0),
        ("plan.pdf", "page", 1),
    ]


def test_build_sniffs_a_part_whose_content_type_has_no_slash():
    """Content-Type: pdf makes the email package say text/plain; the content wins."""
    raw = (
        HEADERS + b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=x"
        b"\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nCover\r\n--x\r\n"
        b"Content-Type: pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(make_pdf(2))
        + b"\r\n--x--\r\n"
    )

    doc = build_fax_document(parse_mail(raw))

    assert [(o.action, o.pages) for o in doc.outcomes] == [("page", 1), ("page", 2)]


@pytest.mark.parametrize(
    "disposition",
    [
        b"attachment; filename*=UTF-8''Gr%C3%BC%C3%9Fe.pdf",
        b'attachment; filename="=?UTF-8?Q?Gr=C3=BC=C3=9Fe.pdf?="',
        'attachment; filename="Grüße.pdf"'.encode(),
        'attachment; filename="Grüße.pdf"'.encode("latin-1"),
    ],
)
def test_build_decodes_file_names(disposition):
    raw = (
        HEADERS + b"MIME-Version: 1.0\r\nContent-Type: application/pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\nContent-Disposition: "
        + disposition
        + b"\r\n\r\n"
        + base64.encodebytes(make_pdf())
    )

    doc = build_fax_document(parse_mail(raw))

    assert summarise(doc.outcomes) == [("Grüße.pdf", "page", 1)]


def test_build_refuses_parts_beyond_the_part_limit(monkeypatch):
    monkeypatch.setattr(document, "MAX_PARTS", 5)
    msg = make_mail("Cover.")
    for number in range(6):
        attach(msg, make_pdf(), "application/pdf", f"{number}.pdf")

    doc = build_fax_document(msg)

    assert [o.action for o in doc.outcomes] == ["page"] * 4 + ["refused"]
    assert doc.outcomes[-1].name == "the remaining parts"


def test_build_refuses_docx_but_faxes_the_text():
    msg = make_mail("Text survives.")
    attach(msg, b"PK\x03\x04 not really", DOCX, "letter.docx")

    doc = build_fax_document(msg)

    assert doc.pages == 1
    refused = doc.outcomes[1]
    assert (refused.name, refused.action) == ("letter.docx", "refused")
    assert refused.reason.startswith("Word documents cannot be faxed;")
    assert "PDF" in refused.reason


def test_build_only_docx_raises_nothing_to_fax():
    msg = make_mail(None)
    attach(msg, b"PK\x03\x04", DOCX, "letter.docx")

    with pytest.raises(DocumentError) as caught:
        build_fax_document(msg)

    assert str(caught.value) == document.NOTHING_TO_FAX
    assert "letter.docx: Word documents cannot be faxed" in caught.value.hint
    assert [o.action for o in caught.value.outcomes] == ["refused"]


@pytest.mark.parametrize(
    ("content_type", "filename", "data", "reason"),
    [
        ("audio/wav", "msg.wav", b"RIFF", "sound files cannot be faxed"),
        ("application/zip", "docs.zip", b"PK\x03\x04", "archives cannot be faxed"),
        ("text/html", "page.html", b"<p>x</p>", "HTML files cannot be faxed"),
        ("image/gif", "a.gif", b"GIF89a", "only PNG and JPEG pictures"),
        ("application/octet-stream", "b.xlsx", b"PK", "spreadsheets cannot be"),
        ("application/x-foo", "c.foo", b"??", "application/x-foo files cannot"),
        ("image/png", "fake.png", b"PK\x03\x04", "not a PNG or JPEG image but a ZIP"),
        ("application/pdf", "empty.pdf", b"", "the file is empty"),
        ("application/pdf", "a.pdf", b"<html>", "not a PDF but a text file"),
        ("application/pdf", "cut.pdf", make_pdf()[:300], "the PDF cannot be read"),
        ("image/jpeg", "cut.jpg", make_picture("JPEG")[:200], "cannot be decoded"),
    ],
)
def test_build_refuses_part_with_reason(content_type, filename, data, reason):
    msg = make_mail("Cover.")
    attach(msg, data, content_type, filename)

    doc = build_fax_document(msg)

    outcome = doc.outcomes[1]
    assert (outcome.name, outcome.action, outcome.content_type) == (
        filename,
        "refused",
        content_type,
    )
    assert reason in outcome.reason
    assert ";" in outcome.reason


def test_build_refuses_encrypted_pdf():
    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    writer.encrypt("secret")
    buffer = io.BytesIO()
    writer.write(buffer)
    msg = make_mail("Cover.")
    attach(msg, buffer.getvalue(), "application/pdf", "locked.pdf")

    outcome = build_fax_document(msg).outcomes[1]

    assert outcome.action == "refused"
    assert outcome.reason == "the PDF is encrypted; send it without a password"


def test_build_offers_unsupported_parts_to_the_converter():
    calls = []

    def convert(data, content_type, filename):
        calls.append((data, content_type, filename))
        return make_pdf(3) if filename == "letter.docx" else None

    msg = make_mail("Cover.")
    attach(msg, b"PK\x03\x04", DOCX, "letter.docx")
    attach(msg, b"RIFF", "audio/wav", "hello.wav")

    doc = build_fax_document(msg, convert=convert)

    assert summarise(doc.outcomes) == [
        ("text body", "page", 1),
        ("letter.docx", "page", 3),
        ("hello.wav", "refused", 0),
    ]
    assert calls == [
        (b"PK\x03\x04", DOCX, "letter.docx"),
        (b"RIFF", "audio/wav", "hello.wav"),
    ]
    assert len(read_pdf(doc.pdf).pages) == 4


def test_build_survives_a_failing_converter():
    def convert(data, content_type, filename):
        raise RuntimeError("converter crashed")

    msg = make_mail("Cover.")
    attach(msg, b"PK\x03\x04", DOCX, "letter.docx")

    doc = build_fax_document(msg, convert=convert)

    assert [o.action for o in doc.outcomes] == ["page", "refused"]


def test_build_raises_over_the_page_limit():
    msg = make_mail("line\n" * 150)
    attach(msg, make_pdf(2), "application/pdf", "more.pdf")

    with pytest.raises(
        DocumentError, match="the fax would have 5 pages; the limit is 4"
    ):
        build_fax_document(msg, max_pages=4)

    assert build_fax_document(msg, max_pages=5).pages == 5


def test_build_refuses_part_over_the_size_limit(monkeypatch):
    monkeypatch.setattr(document, "MAX_PART_BYTES", 1000)
    msg = make_mail("Cover.")
    attach(msg, make_picture("PNG"), "image/png", "big.png")

    outcome = build_fax_document(msg).outcomes[1]

    assert outcome.action == "refused"
    assert outcome.reason.startswith("the file is ")
    assert outcome.reason.endswith("send a smaller file or split it")


def test_parse_and_build_nested_100_levels_without_crash():
    leaf = b"Content-Type: text/plain\r\n\r\ndeep text\r\n"
    deep = nest_multiparts(100, leaf)
    raw = (
        HEADERS + b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=top"
        b"\r\n\r\n--top\r\nContent-Type: text/plain\r\n\r\ncover\r\n--top\r\n"
        + deep
        + b"\r\n--top--\r\n"
    )

    doc = build_fax_document(parse_mail(raw))

    assert doc.pages == 1
    assert doc.outcomes[1].action == "refused"
    assert "nested more than 20 levels" in doc.outcomes[1].reason


def test_parse_mail_refuses_nesting_the_parser_cannot_follow():
    raw = HEADERS + b"MIME-Version: 1.0\r\n" + nest_multiparts(1200, b"\r\nx\r\n")

    with pytest.raises(DocumentError, match="nested too deeply"):
        parse_mail(raw)


@pytest.mark.parametrize(
    "content_type",
    [b"multipart/mixed", b"multipart/mixed; boundary=other"],
)
def test_parse_mail_refuses_a_broken_boundary(content_type):
    raw = (
        HEADERS + b"MIME-Version: 1.0\r\nContent-Type: " + content_type + b"\r\n\r\n"
        b"--real\r\nContent-Type: text/plain\r\n\r\nhello\r\n--real--\r\n"
    )

    with pytest.raises(DocumentError, match="MIME structure is damaged"):
        parse_mail(raw)
    with pytest.raises(DocumentError, match="MIME structure is damaged"):
        build_fax_document(BytesParser(policy=policy.default).parsebytes(raw))


def test_parse_mail_strips_mbox_from_line():
    raw = b"From anna@example.org  Mon Jun 16 17:50:14 2025\n" + raw_text_mail(
        b"hello", "text/plain", None
    )

    msg = parse_mail(raw)

    assert msg["From"] == "Anna <anna@example.org>"
    assert extract_text(msg) == "hello"


@pytest.mark.parametrize(
    ("body", "content_type", "encoding"),
    [
        ("Grüße aus Köln".encode("latin-1"), "text/plain; charset=ISO-8859-1", "8bit"),
        (
            quopri.encodestring("Grüße „Köln“ 5 €".encode("cp1252")),
            "text/plain; charset=windows-1252",
            "quoted-printable",
        ),
        (
            base64.encodebytes("Grüße aus Köln".encode()),
            'text/plain; charset="utf-8"',
            "base64",
        ),
        ("Grüße".encode(), "text/plain; charset=uft-8", "8bit"),
        ("Grüße".encode("latin-1"), "text/plain; charset=x-unknown-foo", "8bit"),
        ("Grüße".encode("latin-1"), "text/plain; charset=us-ascii", "7bit"),
        ("Grüße".encode(), "text/plain", None),
        ("Grüße".encode(), "text/plain; charset=utf-8", ""),
        (b"<p>Gr&uuml;&szlig;e</p>", "text/html; charset=big5", ""),
        ("Grüße".encode("iso-8859-15"), "text/plain; charset=iso-8859-15", "8bit"),
    ],
)
def test_extract_text_honours_charset_and_encoding(body, content_type, encoding):
    msg = parse_mail(raw_text_mail(body, content_type, encoding))

    assert "Grüße" in extract_text(msg)


def test_extract_text_decodes_cyrillic_and_normalises_line_ends():
    body = quopri.encodestring("Привет\r\nмир\r\n".encode("koi8-r"))
    msg = parse_mail(
        raw_text_mail(body, "text/plain; charset=koi8-r", "quoted-printable")
    )

    assert extract_text(msg) == "Привет\nмир"


def test_build_joins_inline_text_parts_around_a_photo():
    """iPhone Mail splits the body around a picture: the text comes first, whole."""
    msg = make_mail("Hello")
    msg.add_attachment(
        make_picture("JPEG"),
        "image",
        "jpeg",
        filename="photo.jpg",
        disposition="inline",
    )
    signature = EmailMessage()
    signature.set_content("~Anna")
    msg.attach(signature)

    doc = build_fax_document(msg)

    assert extract_text(msg) == "Hello\n\n~Anna"
    assert summarise(doc.outcomes) == [
        ("text body", "page", 1),
        ("photo.jpg", "page", 1),
    ]


def test_build_attached_mail_gives_header_block_and_its_files():
    inner = make_mail("Inner text.")
    inner.replace_header("Subject", "Order 17")
    attach(inner, make_picture("PNG"), "image/png", "order.png")
    msg = make_mail("Outer text.")
    msg.add_attachment(inner)

    doc = build_fax_document(msg)

    assert summarise(doc.outcomes) == [
        ("text body", "page", 1),
        ('attached e-mail "Order 17"', "page", 1),
        ("order.png", "page", 1),
    ]
    assert extract_text(msg) == "Outer text."
    assert document.describe_mail_headers(inner).splitlines() == [
        "Attached e-mail",
        "From: Anna <anna@example.org>",
        "Subject: Order 17",
        "-" * 60,
    ]


def test_build_refuses_a_winmail_dat_that_cannot_be_unpacked():
    msg = make_mail("Cover.")
    attach(msg, b"not a TNEF stream", "application/ms-tnef", "winmail.dat")

    outcome = build_fax_document(msg).outcomes[1]

    assert (outcome.name, outcome.action) == ("winmail.dat", "refused")
    assert "winmail.dat cannot be unpacked" in outcome.reason


def test_build_skips_signature_and_refuses_encrypted_mail():
    msg = make_mail("Signed.")
    attach(msg, b"\x30\x82", "application/pkcs7-signature", "smime.p7s")
    attach(msg, b"\x30\x82", "application/pkcs7-mime", "smime.p7m")

    outcomes = build_fax_document(msg).outcomes

    assert [o.action for o in outcomes] == ["page", "skipped", "refused"]
    assert "unencrypted" in outcomes[2].reason


def test_render_spells_characters_the_font_lacks():
    assert render.spell_char("😀") == "?"
    assert render.spell_char("\u200b") == ""
    assert render.spell_renderable("a\tb") == "a       b"
    assert render.lay_out_text("x" * 200).lines[0] == ("x" * 80, "x" * 80, "x" * 40)
    assert render.lay_out_text(" \n\t\n").count == 0


@pytest.fixture
def builtin_font(monkeypatch):
    """Make the renderer use Pillow's own font, as on a machine without DejaVu."""
    caches = (render.load_font, render.is_monospace, render.can_render)
    caches += (render.read_glyph, render.spell_char, render.SPELLING_TABLE)
    for cache in caches:
        getattr(cache, "cache_clear", getattr(cache, "clear", None))()
    monkeypatch.setattr(render, "FONT_PATHS", ())
    yield
    for cache in caches:
        getattr(cache, "cache_clear", getattr(cache, "clear", None))()


def test_render_with_builtin_font_spells_and_fits_lines(builtin_font):
    pages = render.lay_out_text("Grüße 5 € – “quoted” 中\n" + "W" * 80)

    assert render.is_monospace() is False
    first, *rest = pages.lines[0]
    assert first == "Gruesse 5 EUR - “quoted” ?"
    assert len(rest) == 2 and "".join(rest) == "W" * 80
    assert read_pdf(pages.to_pdf()).pages[0].mediabox.width == pytest.approx(595, 1)


# Per corpus file: the fax's page count and outcome actions, or (the DocumentError
# message's start, None); then text that extract_text must contain. The delivery
# reports (dsn-*) never get here in the gateway, but they must not crash either.
CORPUS_EXPECTED = {
    "applemail-rfc2231-iso8859-filename.eml": (1, ("page",), ""),
    "dsn-exchange2007.eml": (
        2,
        ("page", "skipped", "skipped", "page", "skipped"),
        "Delivery has failed",
    ),
    "dsn-gmail-plaintext.eml": (1, ("page",), "failed permanently"),
    "dsn-mailsite-rfc822-headers.eml": (
        1,
        ("page", "skipped", "skipped"),
        "mailbox quota exceeded",
    ),
    "dsn-outlook-utf7.eml": (2, ("page", "skipped", "page"), "Delivery to the"),
    "dsn-postfix-base64-parts.eml": (
        4,
        ("page", "skipped", "page", "skipped"),
        "This is the mail system",
    ),
    "dsn-postfix.eml": (2, ("page", "skipped", "page"), "could not\nbe delivered"),
    "empty-cte-big5-html.eml": (1, ("page",), "9bbf38a5"),
    "eudora-html-only.eml": (1, ("page",), "Die Hasen und die Frösche\n\nDie Hasen"),
    "evolution-8bit-multipart-alternative.eml": (1, ("page", "skipped"), "Превел"),
    "gmail-web-iso8859-1-attachment-mbox-from.eml": ("nothing to fax", None, ""),
    "iphone-mail-inline-jpeg.eml": (2, ("page", "page"), "Hello\n\n~Danielle"),
    "outlook-express-raw-8bit-utf8-filename.eml": (1, ("page",), ""),
    "outlook-ios-android.eml": (2, ("page", "skipped", "page"), "bills of the goods"),
    "outlook2000-4kb-header-line.eml": (1, ("page",), "mißliche Lage"),
    "outlook2000-windows-1252.eml": (1, ("page",), "ärger als der Tod"),
    "outlook365-koi8r-winmail-dat.eml": (1, ("page", "skipped"), "шостий"),
    "thunderbird24-smime-signed-jpeg.eml": (
        2,
        ("page", "page", "skipped"),
        "Hopefully this works",
    ),
    "winmail-two-files.tnef": (1, ("page", "refused", "refused"), "See the files."),
}


def list_corpus_mail() -> list[str]:
    """Return the file names in the corpus mail/ folder, or the expected ones."""
    if os.path.isdir(MAIL_CORPUS):
        return sorted(os.listdir(MAIL_CORPUS))
    return sorted(CORPUS_EXPECTED)


def read_corpus_mail(name: str) -> bytes:
    """Return the raw e-mail for corpus file NAME, a TNEF stream wrapped in a mail."""
    path = os.path.join(MAIL_CORPUS, name)
    if not os.path.exists(path):
        pytest.skip(f"corpus not available at {CORPUS}")
    with open(path, "rb") as stream:
        data = stream.read()
    if not name.endswith(".tnef"):
        return data
    msg = make_mail("See the files.")
    attach(msg, data, "application/ms-tnef", "winmail.dat")
    return msg.as_bytes()


@pytest.mark.parametrize("name", list_corpus_mail())
def test_corpus_mail_gives_expected_fax(name):
    assert name in CORPUS_EXPECTED, f"write the expected fax of new corpus file {name}"
    pages, actions, text = CORPUS_EXPECTED[name]
    msg = parse_mail(read_corpus_mail(name))

    assert text in extract_text(msg)
    if actions is None:
        with pytest.raises(DocumentError, match=pages):
            build_fax_document(msg)
        return
    doc = build_fax_document(msg)
    assert (doc.pages, tuple(o.action for o in doc.outcomes)) == (pages, actions)
    assert len(read_pdf(doc.pdf).pages) == pages


def test_corpus_file_names_are_decoded():
    names = {}
    for name in ("applemail-rfc2231-iso8859-filename.eml", "winmail-two-files.tnef"):
        doc = build_fax_document(parse_mail(read_corpus_mail(name)))
        names[name] = [o.name for o in doc.outcomes]

    assert names["applemail-rfc2231-iso8859-filename.eml"] == ["Eelanalüüsi päring.jpg"]
    assert names["winmail-two-files.tnef"][1:] == [
        "AUTHORS (in winmail.dat)",
        "README (in winmail.dat)",
    ]
