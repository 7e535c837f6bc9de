"""Turn an e-mail sent to the fax gateway into the one PDF to transmit.

The fax is the text body first, then every attachment in MIME order. Each part of the
e-mail gets a :class:`PartOutcome`, so an error mail to the sender can name every part
that was left out and say how to fix it. The rules:

- The text body is text/plain, else the HTML converted to text. Inline text parts of a
  multipart/mixed (iPhone Mail splits the body around a picture) are joined into it.
- PDF and TIFF attachments are checked by :mod:`ums_core.media`; PNG and JPEG pictures
  (and colour or grey TIFF scans) are fitted to an A4 page in black and white. Text
  files (text/plain with a file name, ``*.txt``) become pages like the body. An
  application/octet-stream part is recognised by its file name, else by its content.
- Pictures used by the HTML (referenced by ``cid:``, or inline in a multipart/related)
  are signature logos and are skipped, as are the other versions of a
  multipart/alternative, S/MIME and PGP signatures and the machine-readable parts of
  delivery reports.
- An attached e-mail (message/rfc822) becomes pages of its own: a header block with its
  From, Date and Subject, then its text body; its attachments follow it.
- Outlook's winmail.dat (application/ms-tnef) is unpacked with tnefparse and the files
  in it are treated as attachments named ``NAME (in winmail.dat)``. Its own copy of the
  message text is not used: Outlook sends the same text as a text/plain part beside it.
- Everything else is refused with a reason that tells the fix, after the optional
  ``convert`` plugin was offered it. Parts nested deeper than 20 levels, parts over
  25 MiB and parts beyond the 500th are refused too.
"""

import email.errors
import re
import tempfile
import urllib.parse
from email.message import EmailMessage
from email.parser import BytesParser
from html.parser import HTMLParser

import attrs

from ums_core.errors import MediaError, UmsError
from ums_core.gateway import render
from ums_core.helpers import MAIL_POLICY

MAX_DEPTH = 20
MAX_PART_BYTES = 25 * 2**20
MAX_PARTS = 500
NOTHING_TO_FAX = (
    "nothing to fax: the e-mail has no text and no PDF, TIFF, PNG or JPEG attachment"
)
FATAL_DEFECTS = {
    email.errors.NoBoundaryInMultipartDefect: "a multipart part has no boundary",
    email.errors.StartBoundaryNotFoundDefect: "the multipart boundary never appears",
    email.errors.MultipartInvariantViolationDefect: "a multipart part has no parts",
}
TNEF_TYPES = {"application/ms-tnef", "application/vnd.ms-tnef"}
SKIPPED_TYPES = {
    "application/pkcs7-signature": "digital signature of the e-mail",
    "application/x-pkcs7-signature": "digital signature of the e-mail",
    "application/pgp-signature": "digital signature of the e-mail",
    "message/delivery-status": "machine-readable delivery report",
    "message/global-delivery-status": "machine-readable delivery report",
    "message/disposition-notification": "machine-readable read receipt",
    "message/rfc822-headers": "headers of a returned e-mail",
    "text/rfc822-headers": "headers of a returned e-mail",
}
ENCRYPTED = "encrypted e-mail cannot be faxed; send it again unencrypted"
REFUSED_TYPES = dict.fromkeys(
    ("application/pkcs7-mime", "application/x-pkcs7-mime", "application/pgp-encrypted"),
    ENCRYPTED,
)
REFUSED_TYPES["multipart/encrypted"] = ENCRYPTED
CID_REFERENCE = re.compile(r"cid:([^\s\"'<>)]+)", re.IGNORECASE)


@attrs.frozen
class PartOutcome:
    """What became of one part of the e-mail: pages, skipped or refused, and why."""

    name: str
    content_type: str
    action: str
    reason: str
    pages: int = 0


@attrs.frozen
class FaxDocument:
    """The one PDF to transmit, its page count and what became of every part."""

    pdf: bytes
    pages: int
    outcomes: tuple[PartOutcome, ...]


class DocumentError(UmsError):
    """An e-mail that gives no fax; ``outcomes`` says what became of each part."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        outcomes: tuple[PartOutcome, ...] = (),
    ):
        super().__init__(message, hint)
        self.outcomes = tuple(outcomes)


@attrs.frozen
class Item:
    """A part found by the walk, waiting to be turned into pages."""

    kind: str
    name: str
    content_type: str
    part: EmailMessage | None = None
    text: str = ""
    reason: str = ""


@attrs.frozen
class Piece:
    """The outcome of one item and, if it gives any, its pages."""

    outcome: PartOutcome
    pages: render.Pages | None = None


def parse_mail(raw: bytes) -> EmailMessage:
    """Return the e-mail in RAW; raise DocumentError if its structure is unreadable."""
    if raw.startswith(b"From "):
        raw = raw.partition(b"\n")[2]
    try:
        msg = BytesParser(policy=MAIL_POLICY).parsebytes(raw)
    except RecursionError:
        raise DocumentError(
            "the e-mail is nested too deeply to read",
            hint="send the documents as plain attachments of a new e-mail",
        )
    check_structure(msg)
    return msg


def check_structure(msg: EmailMessage) -> None:
    """Raise DocumentError if the top level of MSG has a broken MIME structure."""
    problem = find_fatal_defect(msg)
    if problem:
        raise DocumentError(
            f"the e-mail cannot be read: its MIME structure is damaged ({problem})",
            hint="send it again, if need be from another mail program",
        )


def find_fatal_defect(part: EmailMessage) -> str | None:
    """Return what makes PART's structure unreadable, or None."""
    for defect in part.defects:
        for defect_type, problem in FATAL_DEFECTS.items():
            if isinstance(defect, defect_type):
                return problem
    return None


def extract_text(msg: EmailMessage) -> str:
    """Return the body text of MSG: text/plain, else its HTML converted to text."""
    walk = PartWalk(collect_cids(msg, 0))
    walk.visit(msg, 0)
    return walk.body_text()


def build_fax_document(
    msg: EmailMessage, max_pages: int = 50, convert=None
) -> FaxDocument:
    """Return the fax of MSG as one PDF with what became of each part.

    CONVERT, if given, is called as ``convert(data, content_type, filename)`` for a
    part ums cannot fax itself and returns PDF bytes or None. Raise DocumentError when
    there is nothing to fax, when the fax would exceed MAX_PAGES, or when the
    structure of MSG is unreadable.
    """
    check_structure(msg)
    walk = PartWalk(collect_cids(msg, 0))
    walk.visit(msg, 0)
    with tempfile.TemporaryDirectory(prefix="ums-fax-") as workdir:
        pieces = prepare_body(walk)
        for item in walk.items:
            pieces.extend(prepare_item(item, workdir, convert))
    outcomes = tuple(piece.outcome for piece in pieces)
    total = sum(outcome.pages for outcome in outcomes)
    check_page_count(total, max_pages, outcomes)
    return FaxDocument(join_pieces(pieces, total, outcomes), total, outcomes)


def check_page_count(total: int, max_pages: int, outcomes: tuple) -> None:
    """Raise DocumentError if TOTAL pages are none or more than MAX_PAGES."""
    if total == 0:
        refused = [f"{o.name}: {o.reason}" for o in outcomes if o.action == "refused"]
        hint = "; ".join(refused) or (
            "write the text into the e-mail or attach a PDF, TIFF, PNG or JPEG file"
        )
        raise DocumentError(NOTHING_TO_FAX, hint=hint, outcomes=outcomes)
    if total > max_pages:
        raise DocumentError(
            f"the fax would have {total} pages; the limit is {max_pages}",
            hint="send fewer or shorter documents, or spread them over several faxes",
            outcomes=outcomes,
        )


def join_pieces(pieces: list[Piece], total: int, outcomes: tuple) -> bytes:
    """Return one PDF of every piece that has pages, text pieces drawn now."""
    pdfs = [piece.pages.to_pdf() for piece in pieces if piece.outcome.pages]
    try:
        return render.merge_pdfs(pdfs, total)
    except MediaError as exc:
        raise DocumentError(f"cannot build the fax: {exc}", outcomes=outcomes) from exc


class PartWalk:
    """Walk the MIME tree once, sorting parts into the body text and the items."""

    def __init__(self, cids: set[str]):
        self.cids = cids
        self.body: list[str] = []
        self.body_type = "text/plain"
        self.items: list[Item] = []
        self.visited = 0

    def body_text(self) -> str:
        """Return the body parts joined, or "" when all are blank."""
        texts = [text for text in self.body if text.strip()]
        return "\n\n".join(texts)

    def visit(self, part: EmailMessage, depth: int) -> None:
        """Sort PART and everything in it."""
        content_type = part.get_content_type()
        problem = find_fatal_defect(part)
        self.visited += 1
        if self.visited > MAX_PARTS:
            if self.visited == MAX_PARTS + 1:
                reason = f"the e-mail has more than {MAX_PARTS} parts; " + RESEND
                self.add("refused", "the remaining parts", content_type, reason=reason)
        elif depth > MAX_DEPTH:
            self.refuse(part, f"nested more than {MAX_DEPTH} levels deep; " + RESEND)
        elif problem and depth:
            self.refuse(part, f"its MIME structure is damaged ({problem}); " + RESEND)
        elif content_type in SKIPPED_TYPES:
            self.skip(part, SKIPPED_TYPES[content_type])
        elif content_type in REFUSED_TYPES:
            self.refuse(part, REFUSED_TYPES[content_type])
        elif content_type in ("message/rfc822", "message/global"):
            self.visit_attached_mail(part, depth)
        elif part.is_multipart():
            self.visit_multipart(part, depth)
        else:
            self.visit_leaf(part)

    def visit_multipart(self, part: EmailMessage, depth: int) -> None:
        """Sort the children of the multipart PART by its subtype."""
        children = part.get_payload()
        subtype = part.get_content_subtype()
        if subtype == "alternative":
            chosen = choose_alternative(children, depth + 1)
            for child in children:
                if child is chosen:
                    self.visit(child, depth + 1)
                else:
                    self.visit_unchosen(child, depth + 1)
        elif subtype == "related":
            root = find_related_root(part, children)
            for child in children:
                if child is root or is_attachment(child):
                    self.visit(child, depth + 1)
                else:
                    self.skip(child, INLINE_PICTURE, describe_inline(child))
        else:
            for child in children:
                self.visit(child, depth + 1)

    def visit_unchosen(self, part: EmailMessage, depth: int) -> None:
        """Skip another version of the body, but keep the files attached inside it."""
        if depth > MAX_DEPTH:
            self.refuse(part, f"nested more than {MAX_DEPTH} levels deep; " + RESEND)
        elif part.is_multipart() and part.get_content_maintype() == "multipart":
            for child in part.get_payload():
                self.visit_unchosen(child, depth + 1)
        elif read_filename(part) and part.get_content_maintype() != "text":
            self.visit(part, depth)
        else:
            self.skip(part, "another version of the text body")

    def visit_leaf(self, part: EmailMessage) -> None:
        """Sort a part that holds content: body text, logo, winmail.dat or a file."""
        content_id = read_content_id(part)
        filename = read_filename(part)
        if is_body_part(part):
            self.add_body(part)
        elif content_id and content_id in self.cids:
            self.skip(part, INLINE_PICTURE, describe_inline(part))
        elif part.get_content_type() in TNEF_TYPES or filename == "winmail.dat":
            self.add("tnef", filename or "winmail.dat", part.get_content_type(), part)
        else:
            name = filename or f"unnamed {part.get_content_type()} part"
            self.add("file", name, part.get_content_type(), part)

    def add_body(self, part: EmailMessage) -> None:
        """Add the text of PART to the body, or refuse a part too large to read."""
        data = read_payload(part)
        if isinstance(data, str):
            self.refuse(part, data)
            return
        text = render.decode_bytes(data, part.get_content_charset())
        if part.get_content_subtype() == "html":
            text = html_to_text(text)
        if not self.body:
            self.body_type = part.get_content_type()
        self.body.append(normalise_text(text))

    def visit_attached_mail(self, part: EmailMessage, depth: int) -> None:
        """Add an attached e-mail: its header block and body, then its files."""
        inner = read_attached_mail(part)
        outer = self.body, self.body_type, self.items
        self.body, self.items = [], []
        self.visit(inner, depth + 1)
        text = describe_mail_headers(inner) + "\n\n" + self.body_text()
        inner_items = self.items
        self.body, self.body_type, self.items = outer
        self.add("mail", name_attached_mail(inner), "message/rfc822", text=text)
        self.items.extend(inner_items)

    def skip(self, part: EmailMessage, reason: str, name: str | None = None) -> None:
        """Record PART as skipped on purpose."""
        name = name or read_filename(part) or describe_part(part)
        self.add("skipped", name, part.get_content_type(), reason=reason)

    def refuse(self, part: EmailMessage, reason: str) -> None:
        """Record PART as refused."""
        name = read_filename(part) or describe_part(part)
        self.add("refused", name, part.get_content_type(), reason=reason)

    def add(self, kind, name, content_type, part=None, text="", reason="") -> None:
        """Append an item to the walk's list."""
        self.items.append(Item(kind, name, content_type, part, text, reason))


RESEND = "send the files as plain attachments of a new e-mail"
INLINE_PICTURE = "picture shown inside the HTML text (such as a signature logo)"


def is_body_part(part: EmailMessage) -> bool:
    """Tell whether PART is body text rather than an attached file."""
    declared = str(part.get("content-type") or "text/plain").partition(";")[0]
    return (
        part.get_content_type() in ("text/plain", "text/html")
        and declared.count("/") == 1
        and not is_attachment(part)
        and not read_filename(part)
    )


def is_attachment(part: EmailMessage) -> bool:
    """Tell whether PART says Content-Disposition: attachment."""
    return part.get_content_disposition() == "attachment"


def choose_alternative(children: list, depth: int) -> EmailMessage | None:
    """Return the version of a multipart/alternative to fax: plain text if any."""
    scores = [score_alternative(child, depth) for child in children]
    if not scores:
        return None
    return children[scores.index(max(scores))]


def score_alternative(part: EmailMessage, depth: int) -> int:
    """Return how well PART serves as the fax text: 3 plain, 2 HTML, 1 blank plain."""
    if depth > MAX_DEPTH:
        return 0
    if part.get_content_maintype() == "multipart" and part.is_multipart():
        scores = [score_alternative(child, depth + 1) for child in part.get_payload()]
        return max(scores, default=0)
    if not is_body_part(part):
        return 0
    if part.get_content_subtype() == "html":
        return 2
    data = read_payload(part)
    return 3 if isinstance(data, bytes) and data.strip() else 1


def find_related_root(part: EmailMessage, children: list) -> EmailMessage | None:
    """Return the root of a multipart/related: the start= part, else the first."""
    start = (part.get_param("start") or "").strip().strip("<>").lower()
    for child in children:
        if start and read_content_id(child) == start:
            return child
    return children[0] if children else None


def collect_cids(part: EmailMessage, depth: int) -> set[str]:
    """Return every Content-ID that an HTML part in PART refers to with cid:."""
    if depth > MAX_DEPTH:
        return set()
    if part.is_multipart():
        found = set()
        for child in part.get_payload():
            found |= collect_cids(child, depth + 1)
        return found
    if part.get_content_type() != "text/html":
        return set()
    data = read_payload(part)
    if isinstance(data, str):
        return set()
    html = render.decode_bytes(data, part.get_content_charset())
    return {
        urllib.parse.unquote(match).strip("<>").lower()
        for match in CID_REFERENCE.findall(html)
    }


def read_content_id(part: EmailMessage) -> str:
    """Return PART's Content-ID without angle brackets, lower-cased, or ""."""
    try:
        value = str(part.get("content-id") or "")
    except (ValueError, TypeError, IndexError):
        return ""
    return value.strip().strip("<>").strip().lower()


def read_filename(part: EmailMessage) -> str:
    """Return PART's file name made safe to show, or ""."""
    try:
        name = part.get_filename() or ""
    except (ValueError, TypeError, IndexError, LookupError):
        return ""
    if "\ufffd" in name:
        name = read_raw_filename(part) or name
    return render.clean_name(name)


def read_raw_filename(part: EmailMessage) -> str:
    """Return a file name written in raw 8-bit bytes, decoded UTF-8 or Windows-1252.

    The email package decodes such bytes as UTF-8 and loses what it cannot read.
    """
    headers = {key.lower(): value for key, value in part.raw_items()}
    for field, param in (("content-disposition", "filename"), ("content-type", "name")):
        raw = str(headers.get(field, "")).encode("utf-8", "surrogateescape")
        text = render.decode_bytes(raw, None)
        match = re.search(rf'\b{param}\s*=\s*(?:"([^"]*)"|([^;\s]+))', text, re.I)
        if match:
            return match.group(1) or match.group(2) or ""
    return ""


def describe_part(part: EmailMessage) -> str:
    """Return a name for a part without a file name."""
    return f"unnamed {part.get_content_type()} part"


def describe_inline(part: EmailMessage) -> str:
    """Return a name like "inline image logo.png" for a picture used by the HTML."""
    label = read_filename(part) or read_content_id(part)
    noun = "image" if part.get_content_maintype() == "image" else "part"
    return f"inline {noun} {label}".strip()


def read_attached_mail(part: EmailMessage) -> EmailMessage:
    """Return the e-mail inside a message/rfc822 PART."""
    payload = part.get_payload()
    if isinstance(payload, list) and payload:
        return payload[0]
    data = part.get_payload(decode=True) or b""
    return BytesParser(policy=MAIL_POLICY).parsebytes(data)


def describe_mail_headers(msg: EmailMessage) -> str:
    """Return the header block that starts the pages of an attached e-mail."""
    lines = ["Attached e-mail"]
    for field in ("From", "Date", "Subject"):
        value = read_header(msg, field)
        if value:
            lines.append(f"{field}: {value}")
    lines.append("-" * 60)
    return "\n".join(lines)


def name_attached_mail(msg: EmailMessage) -> str:
    """Return a name like 'attached e-mail "Subject"'."""
    subject = read_header(msg, "Subject")[:60]
    return f'attached e-mail "{subject}"' if subject else "attached e-mail"


def read_header(msg: EmailMessage, field: str) -> str:
    """Return the decoded header FIELD of MSG on one line, or ""."""
    try:
        value = str(msg.get(field) or "")
    except (ValueError, TypeError, IndexError, LookupError):
        return ""
    return " ".join(value.split())[:300]


def read_payload(part: EmailMessage) -> bytes | str:
    """Return the decoded content of PART, or why it is too large to read."""
    try:
        encoded = part.get_payload()
    except (LookupError, UnicodeError):
        part.set_param("charset", "utf-8")
        encoded = part.get_payload()
    if isinstance(encoded, str) and len(encoded) > MAX_PART_BYTES * 1.4:
        return f"the file is over {MAX_PART_BYTES // 2**20} MiB; " + SMALLER
    try:
        data = part.get_payload(decode=True) or b""
    except (LookupError, UnicodeError):
        raw = part.get_payload()
        data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""
    if len(data) > MAX_PART_BYTES:
        size = len(data) / 2**20
        limit = MAX_PART_BYTES // 2**20
        return f"the file is {size:.1f} MiB; the limit is {limit} MiB, so " + SMALLER
    return data


SMALLER = "send a smaller file or split it"


def normalise_text(text: str) -> str:
    """Return TEXT with \\n line ends, no leading blank lines and no trailing space."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.rstrip().lstrip("\n")


def html_to_text(html: str) -> str:
    """Return the readable text of HTML, one line per line break or block."""
    extractor = TextExtractor()
    extractor.feed(html)
    extractor.close()
    return extractor.finish()


class TextExtractor(HTMLParser):
    """Collect the text of an HTML document as a browser would lay out its lines."""

    HIDDEN = {"head", "script", "style", "title", "template"}
    # How many line breaks an element starts and ends with: a paragraph or a line.
    BREAKS = dict.fromkeys(
        "p h1 h2 h3 h4 h5 h6 blockquote pre table ul ol dl address figure".split(), 2
    )
    BREAKS |= dict.fromkeys(
        "div li tr dt dd section article header footer nav aside main form fieldset "
        "caption center option hr".split(),
        1,
    )
    SPACES = re.compile(r"[ \t\n\r\f]+")

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.hidden: list[str] = []
        self.preformatted = 0
        self.newlines = 0

    def handle_starttag(self, tag, attrs):
        if tag == "body" and "head" in self.hidden:
            del self.hidden[self.hidden.index("head") :]
        if tag in self.HIDDEN:
            self.hidden.append(tag)
        elif tag == "br":
            self.write("\n")
        elif tag in ("td", "th") and self.chunks and not self.newlines:
            self.write("  ")
        elif tag in self.BREAKS:
            self.preformatted += tag == "pre"
            self.break_line(self.BREAKS[tag])
            self.write({"li": "- ", "hr": "-" * 40 + "\n"}.get(tag, ""))

    def handle_endtag(self, tag):
        if tag in self.hidden:
            while self.hidden.pop() != tag:
                pass
        elif tag in self.BREAKS:
            if tag == "pre" and self.preformatted:
                self.preformatted -= 1
            self.break_line(self.BREAKS[tag])

    def handle_data(self, data):
        if self.hidden:
            return
        if not self.preformatted:
            data = self.SPACES.sub(" ", data)
            if not self.chunks or self.newlines:
                data = data.lstrip(" ")
        self.write(data)

    def break_line(self, count: int) -> None:
        """End the current line so that COUNT line breaks precede what follows."""
        if self.chunks and self.newlines < count:
            self.write("\n" * (count - self.newlines))

    def write(self, text: str) -> None:
        """Append TEXT to the output and remember how many line breaks end it."""
        if not text:
            return
        self.chunks.append(text)
        stripped = text.rstrip("\n")
        if stripped:
            self.newlines = len(text) - len(stripped)
        else:
            self.newlines += len(text)

    def finish(self) -> str:
        """Return the collected text with runs of blank lines made one."""
        lines = "".join(self.chunks).replace("\xa0", " ").split("\n")
        kept: list[str] = []
        for line in (line.rstrip() for line in lines):
            if line or (kept and kept[-1]):
                kept.append(line)
        return "\n".join(kept).strip("\n")


def prepare_body(walk: PartWalk) -> list[Piece]:
    """Return the piece of the body text, or none when the e-mail has no text part."""
    if not walk.body:
        return []
    return [prepare_text("text body", walk.body_type, walk.body_text())]


def prepare_text(name: str, content_type: str, text: str) -> Piece:
    """Return TEXT laid out into pages, or skipped when it is blank."""
    pages = render.lay_out_text(text)
    if not pages.count:
        return settle(name, content_type, "skipped", "the text is empty")
    return settle(name, content_type, "page", pages=pages)


def prepare_item(item: Item, workdir: str, convert) -> list[Piece]:
    """Return the pieces ITEM gives: one, or one per file in a winmail.dat."""
    if item.kind in ("skipped", "refused"):
        return [settle(item.name, item.content_type, item.kind, item.reason)]
    if item.kind == "mail":
        return [prepare_text(item.name, item.content_type, item.text)]
    data = read_payload(item.part)
    if isinstance(data, str):
        return [settle(item.name, item.content_type, "refused", data)]
    if item.kind == "tnef":
        return unpack_tnef(item, data, workdir, convert)
    filename, charset = read_filename(item.part), item.part.get_content_charset()
    file = render.AttachedFile(filename, item.content_type, data, charset)
    return [prepare_file(item.name, file, workdir, convert)]


def unpack_tnef(item: Item, data: bytes, workdir: str, convert) -> list[Piece]:
    """Return a piece for every file in the winmail.dat DATA."""
    try:
        files = render.unpack_tnef(data)
    except MediaError as exc:
        return [settle(item.name, item.content_type, "refused", str(exc))]
    if not files:
        reason = "Outlook's winmail.dat holds no files, only formatting of the text"
        return [settle(item.name, item.content_type, "skipped", reason)]
    return [
        prepare_file(f"{file.filename} (in {item.name})", file, workdir, convert)
        for file in files
    ]


def prepare_file(name: str, file: render.AttachedFile, workdir: str, convert) -> Piece:
    """Return the piece of the attached FILE, shown to the sender as NAME."""
    try:
        pages = render.make_file_pages(file, workdir, convert)
    except MediaError as exc:
        return settle(name, file.content_type, "refused", str(exc))
    if not pages.count:
        return settle(name, file.content_type, "skipped", "the file holds no text")
    return settle(name, file.content_type, "page", pages=pages)


def settle(name, content_type, action, reason="", pages=None) -> Piece:
    """Return a piece whose outcome is ACTION, with PAGES when it gives any."""
    count = pages.count if pages else 0
    return Piece(PartOutcome(name, content_type, action, reason, count), pages)
