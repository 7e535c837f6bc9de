"""Public helpers for plugins: what a plugin may import besides hookspecs and model."""

from __future__ import annotations

import functools
import re
import unicodedata
from email import headerregistry, policy
from email.message import EmailMessage
from email.utils import format_datetime, parsedate_to_datetime

__all__ = [
    "ascii_file_name",
    "attach_file",
    "template_environment",
    "caller_label",
    "fax_pdf_data",
    "fax_to_pdf",
    "fax_to_tiff",
    "header_text",
    "set_text_body",
    "probe_fax",
    "probe_voice",
    "withheld_label",
]

WITHHELD = {"en": "Unknown caller", "de": "Unbekannter Anrufer"}


def fax_to_pdf(path, out_path, checked: bool = False) -> int:
    """Write the fax at PATH as a PDF to OUT_PATH; return its page count.

    Pass CHECKED for a message's content file: intake decoded every page of
    it already, so it is not decoded again.
    """
    from . import media

    return media.fax_to_pdf(path, out_path, checked=checked)


def fax_pdf_data(path) -> bytes | None:
    """Return the PDF of a message's TIFF fax at PATH, None if it is a PDF.

    For content files only: intake decoded every page of them already.
    """
    from . import media

    converted = media.checked_fax_pdf(path)
    return converted[0] if converted else None


def fax_to_tiff(path, out_path) -> int:
    """Write the fax at PATH as a multi-page TIFF to OUT_PATH; return its pages."""
    from . import media

    return media.fax_to_tiff(path, out_path)


def probe_fax(path):
    """Return the MediaInfo of the fax at PATH (TIFF or PDF) or raise MediaError."""
    from . import media

    return media.probe_fax(path)


def probe_voice(path):
    """Return the MediaInfo of the WAV at PATH or raise MediaError."""
    from . import media

    return media.probe_voice(path)


def attach_file(mail, source, maintype: str, subtype: str, filename: str) -> None:
    """Attach SOURCE (a file path, or bytes) to MAIL, base64, encoded late.

    The part is written base64 straight from the file when the core queues
    the e-mail, in pieces, so a 60-minute recording or a 50 MiB PDF never
    sits in memory whole (and bytes skip the email generator's line work).
    A file must still exist when the hook returns.
    """
    from .mailqueue import attach_streamed

    attach_streamed(mail, source, maintype, subtype, filename)


def withheld_label(language: str) -> str:
    """Return the one label shown for a withheld or unknown caller."""
    return WITHHELD.get(language, WITHHELD["en"])


def header_text(text: str, limit: int = 200) -> str:
    """Return TEXT safe for a header: one line, no control characters."""
    chars = [" " if unicodedata.category(c)[0] == "C" else c for c in text or ""]
    return " ".join("".join(chars).split())[:limit]


def mail_text(text: str, limit: int = 200) -> str:
    """Return TEXT for a header of an e-mail: header_text, and no encoded word.

    "=?" loses its "=": the email package decodes RFC 2047 encoded words in
    the values it is given, and an encoded word can carry CR LF (a caller
    name "=?utf-8?q?=0D=0ABcc:...?=" would add a header line). A space
    between them would not do: folding may put "=" and "?" into two encoded
    words, and the space between those is dropped when they are decoded.
    """
    line = header_text(text, limit)
    while "=?" in line:
        line = line.replace("=?", "?")
    return line


# What would make a display name several addresses if the quotes around it
# were lost (Python's folding of long names has lost them).
_ADDRESS_SPECIALS = str.maketrans({c: " " for c in '"<>,;:@\\[]'})


def display_name(text: str, limit: int = 200) -> str:
    """Return TEXT as the name of an address: mail_text without address syntax."""
    return " ".join(mail_text(text, limit).translate(_ADDRESS_SPECIALS).split())


def caller_label(message, ctx, language: str) -> str:
    """Return who sent MESSAGE: name and number, the number, or the label."""
    name = header_text(message.sender_name)
    if message.sender is None:
        return (
            f"{name} ({withheld_label(language)})" if name else withheld_label(language)
        )
    number = ctx.format_number(message.sender)
    return f"{name} ({number})" if name else number


def ascii_file_name(*parts: str, extension: str) -> str:
    """Return an ASCII file name from PARTS, e.g. fax-20261204-0815-4930555010.pdf."""
    text = "-".join(p for p in parts if p)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("._") or "message"
    return text[:80] + extension


def template_environment(ctx, package: str):
    """Return Jinja2 text templates: the admin's folder first, then PACKAGE's.

    Templates are plain text (no autoescaping); the admin overrides one by
    putting a file of the same name into the instance's templates folder. A
    broken template raises UmsError naming the file and the line. The
    environment is kept per folder and package, so templates compile once;
    Jinja2 notices when a file on disk changes.
    """
    return _cached_environment(ctx.template_folder(), package)


@functools.lru_cache(maxsize=32)
def _cached_environment(folder: str, package: str):
    import jinja2

    class CheckedTemplate(jinja2.Template):
        def render(self, *args, **kwargs):
            try:
                return super().render(*args, **kwargs)
            except jinja2.TemplateError as exc:
                raise _template_error(self.name, exc) from None

    class CheckedEnvironment(jinja2.Environment):
        template_class = CheckedTemplate

        def get_template(self, name, *args, **kwargs):
            try:
                return super().get_template(name, *args, **kwargs)
            except jinja2.TemplateSyntaxError as exc:
                raise _template_error(name, exc) from None

    loader = jinja2.ChoiceLoader(
        [
            jinja2.FileSystemLoader(folder),
            jinja2.PackageLoader(package, "templates"),
        ]
    )
    return CheckedEnvironment(
        loader=loader, autoescape=False, keep_trailing_newline=True
    )


def _template_error(name: str, exc) -> Exception:
    from .errors import UmsError

    line = getattr(exc, "lineno", None)
    where = f"{name} line {line}" if line else name
    return UmsError(
        f"template {where}: {exc.message or exc}",
        hint=f"fix or remove the override: ums templates show {name}",
    )


def set_text_body(mail, text: str) -> None:
    """Set TEXT as the plain body: 7bit when ASCII, else quoted-printable.

    Quoted-printable keeps the wire ASCII, so a relay without 8BITMIME takes it
    and nothing is re-encoded on the way.
    """
    if text.isascii():
        mail.set_content(text)
    else:
        mail.set_content(text, charset="utf-8", cte="quoted-printable")


class _HeaderClasses(headerregistry.HeaderRegistry):
    """The standard header classes, made once per header name.

    The stock registry builds a new class with ``type()`` for every header
    set, a dozen or more per e-mail; the classes made are the same each time.
    """

    def __init__(self):
        super().__init__()
        self._made: dict[str, type] = {}

    def map_to_type(self, name, cls):
        self._made.clear()
        super().map_to_type(name, cls)

    def __getitem__(self, name):
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(name)
        return made


# Printable ASCII, not empty, no encoded word: nothing to encode or decode.
_PLAIN_VALUE = re.compile(r"(?!.*=\?)[\x20-\x7e]+")
# Structured values already in the form the email package writes them in.
# (Content-Type and Content-Disposition are not among them: the package reads
# them again and again while it builds and writes a mail, and a value kept as
# text would be parsed at every read.)
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = re.compile(rf"{_ATEXT}(\.{_ATEXT})*")
_NORMAL_FORMS = {
    "message-id": re.compile(rf"<{_DOT_ATOM.pattern}@{_DOT_ATOM.pattern}>"),
    "mime-version": re.compile(r"1\.0"),
    "content-transfer-encoding": re.compile(r"7bit|8bit|base64|quoted-printable"),
}


def _in_normal_form(name: str, value: str) -> bool:
    """Return whether the email package would write VALUE of NAME unchanged."""
    key = name.lower()
    if key == "date":
        try:
            return format_datetime(parsedate_to_datetime(value)) == value
        except (TypeError, ValueError, IndexError):
            return False
    form = _NORMAL_FORMS.get(key)
    if form is not None:
        return form.fullmatch(value) is not None
    return False


class _MailPolicy(policy.EmailPolicy):
    """The default policy, keeping a plain one-line header value as its text.

    The email package turns each value set into a parse tree and, when the
    e-mail is written, folds that tree back into text: a dozen or more
    headers per e-mail, about half the time of composing one. Some values
    come out of both steps unchanged, so they are kept as text, the way a
    parsed e-mail keeps its headers (parsed when read, written as they are):
    a well-formed Address on an address header, the text of an unstructured
    header (Subject, X-...), and a date, message id, MIME-Version or
    Content-Transfer-Encoding already in the form the package writes it in;
    each only when it is printable ASCII without an encoded word and fits on
    a line. Every other value takes the usual way, and one that decodes to a
    line break is refused.
    """

    def header_store_parse(self, name, value):
        if isinstance(value, headerregistry.Address):
            text = str(value)
            if (
                issubclass(self.header_factory[name], headerregistry.AddressHeader)
                and _DOT_ATOM.fullmatch(value.username)
                and _DOT_ATOM.fullmatch(value.domain)
                and self._plain(name, text)
            ):
                return (name, text)
        elif (
            type(value) is str
            and self._plain(name, value)
            and (
                issubclass(self.header_factory[name], headerregistry.UnstructuredHeader)
                or _in_normal_form(name, value)
            )
        ):
            return (name, value)
        stored = super().header_store_parse(name, value)
        if "\r" in stored[1] or "\n" in stored[1]:
            # An RFC 2047 word in VALUE decoded to a line break: written out, it
            # would start a header line of its own.
            raise ValueError(f"the {name} header would carry a line break: {value!r}")
        return stored

    def _plain(self, name: str, text: str) -> bool:
        fits = len(name) + len(text) + 2 <= self.max_line_length
        return fits and _PLAIN_VALUE.fullmatch(text) is not None


MAIL_POLICY = _MailPolicy(header_factory=_HeaderClasses())


def new_mail() -> EmailMessage:
    """Return an empty EmailMessage for ums to fill (the default policy)."""
    return EmailMessage(policy=MAIL_POLICY)
