"""Turn text and attached files into fax pages, and join them into one PDF.

Every page ums draws itself is a bilevel image of 1728 x 2292 pixels, the fax grid at
204 x 196 dpi, embedded in a PDF page of exactly A4 (595 x 842 pt); a fax driver maps
the A4 width onto its 1728-pixel scan line. PDF and bilevel TIFF files are checked
and converted by :mod:`ums_core.media`; PNG and JPEG pictures and colour or grey TIFF
scans are fitted to the page, documents thresholded and photos dithered.

Text is set in 80 columns and 54 lines a page, in DejaVu Sans Mono when the system has
it (Debian's fonts-dejavu-core: Latin, Greek and Cyrillic) and otherwise in Pillow's
built-in font, which draws only ASCII. A character the font lacks is spelled with ones
it has (``ä`` as ``ae``, ``é`` as ``e``, ``€`` as ``EUR``), or else drawn as ``?``.

Every refusal is a MediaError whose message says what is wrong and how to fix it.
"""

import codecs
import functools
import io
import logging
import mimetypes
import os
import re
import struct
import tempfile
import textwrap
import unicodedata

import attrs
import img2pdf
import tnefparse
from PIL import Image, ImageDraw, ImageFont, ImageOps, ImageSequence
from pypdf import PdfReader, PdfWriter

from ums_core import media
from ums_core.errors import MediaError
from ums_core.media_fax import PDF_ERRORS, PIL_ERRORS

log = logging.getLogger(__name__)
# tnefparse logs a line per odd property of a damaged winmail.dat; what counts
# reaches the sender in the error mail.
logging.getLogger("tnefparse").setLevel(logging.ERROR)

PAGE_WIDTH, PAGE_HEIGHT = 1728, 2292
XDPI, YDPI = 204, 196
MARGIN_X, MARGIN_Y = 96, 110
COLUMNS, LINES_PER_PAGE = 80, 54
FONT_SIZE, LINE_HEIGHT = 31, 38
MAX_PIXELS = 50_000_000
MAX_PICTURE_FRAMES = 100
TAG_ROWS_PER_STRIP = 278
# A picture with this share of near-black and near-white pixels is a document.
DOCUMENT_SHARE = 0.9
FONT_PATHS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/TTF/DejaVuSansMono.ttf",
    "/usr/share/fonts/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationMono-Regular.ttf",
)
SPELLINGS = dict(
    pair.split("=", 1)
    for pair in 'ä=ae ö=oe ü=ue Ä=Ae Ö=Oe Ü=Ue ß=ss €=EUR …=... •=* «=" »=" '
    "\u2018=' \u2019=' \u201a=' \u201c=\" \u201d=\" \u201e=\" \u2013=- \u2014=-".split()
)
A4_LAYOUT = img2pdf.get_layout_fun(
    pagesize=(img2pdf.mm_to_pt(210), img2pdf.mm_to_pt(297)),
    fit=img2pdf.FitMode.exact,
)
TYPE_KINDS = {
    "application/pdf": "pdf",
    "application/x-pdf": "pdf",
    "image/tiff": "tiff",
    "image/x-tiff": "tiff",
    "image/png": "picture",
    "image/jpeg": "picture",
    "image/jpg": "picture",
    "image/pjpeg": "picture",
    "text/plain": "text",
}
EXTENSION_KINDS = {".pdf": "pdf", ".tif": "tiff", ".tiff": "tiff", ".txt": "text"}
EXTENSION_KINDS |= dict.fromkeys((".png", ".jpg", ".jpeg", ".jpe"), "picture")
MAGIC_KINDS = (
    (b"%PDF", "pdf"),
    (b"II*\0", "tiff"),
    (b"MM\0*", "tiff"),
    (b"\x89PNG\r\n\x1a\n", "picture"),
    (b"\xff\xd8\xff", "picture"),
)
KIND_NAMES = {"pdf": "a PDF", "tiff": "a TIFF image", "picture": "a PNG or JPEG image"}
GENERIC = "application/octet-stream"
GENERIC_TYPES = {
    GENERIC,
    "application/binary",
    "application/unknown",
    "application/download",
    "application/force-download",
    "application/x-download",
}
AS_PDF = "save or print it as PDF and send that"
# Each refusal: the content types (prefixes) and file name extensions it covers.
REFUSALS = (
    (
        "application/msword application/vnd.ms-word application/vnd.openxmlformats-"
        "officedocument.wordprocessingml .doc .docx .docm .dot .dotx",
        f"Word documents cannot be faxed; {AS_PDF}",
    ),
    (
        "application/vnd.ms-excel application/vnd.openxmlformats-officedocument."
        "spreadsheetml text/csv .xls .xlsx .xlsm .csv",
        f"spreadsheets cannot be faxed; {AS_PDF}",
    ),
    (
        "application/vnd.ms-powerpoint application/vnd.openxmlformats-officedocument."
        "presentationml .ppt .pptx .pps .ppsx",
        f"presentations cannot be faxed; {AS_PDF}",
    ),
    (
        "application/vnd.oasis.opendocument .odt .ods .odp .odg",
        f"OpenDocument files cannot be faxed; {AS_PDF}",
    ),
    ("application/rtf text/rtf .rtf", f"RTF files cannot be faxed; {AS_PDF}"),
    (
        "text/html application/xhtml .html .htm .xhtml",
        f"HTML files cannot be faxed; {AS_PDF}",
    ),
    (
        "application/zip application/x-zip application/x-7z application/x-rar "
        "application/vnd.rar application/gzip application/x-gzip application/x-tar "
        "application/x-compressed .zip .7z .rar .gz .tgz .tar",
        "archives cannot be faxed; unpack it and attach the PDF, TIFF, PNG or JPEG "
        "files in it",
    ),
    (
        "audio/ .wav .mp3 .ogg .m4a .amr .flac",
        "sound files cannot be faxed; leave them out",
    ),
    ("video/ .mp4 .mov .avi .mkv .3gp", "videos cannot be faxed; leave them out"),
    (
        "image/ .gif .bmp .webp .heic .heif .svg",
        "only PNG and JPEG pictures can be faxed; convert it to PNG, JPEG or PDF",
    ),
)
CHARSET_ALIASES = {
    "uft-8": "utf-8",
    "utf8": "utf-8",
    "unicode-1-1-utf-7": "utf-7",
    "ks_c_5601-1987": "cp949",
    "x-sjis": "shift_jis",
    "windows-874": "cp874",
    "big5": "big5hkscs",
}
CHARSET_ALIASES |= dict.fromkeys(("iso-8859-1", "iso8859-1", "latin1"), "cp1252")
CHARSET_ALIASES |= dict.fromkeys(("gb2312", "gbk", "x-gbk"), "gb18030")
CHARSET_ALIASES |= {f"iso-8859-{n}-{v}": f"iso-8859-{n}" for n in (6, 8) for v in "ie"}
TNEF_ERRORS = (ValueError, KeyError, IndexError, TypeError, AttributeError)
TNEF_ERRORS += (OverflowError, struct.error)
# Declared charsets that say nothing: guess UTF-8, then Windows-1252.
UNKNOWN_CHARSETS = {"us-ascii", "ascii", "unknown", "unknown-8bit", "x-unknown"}
UNKNOWN_CHARSETS |= {"x-user-defined", "default", "8bit"}


@attrs.frozen
class Pages:
    """Fax pages of one part: a PDF, or text laid out but not drawn yet."""

    count: int
    pdf: bytes = b""
    lines: tuple = ()

    def to_pdf(self) -> bytes:
        """Return the PDF of these pages, drawing text pages now."""
        return self.pdf or render_text_pages(self.lines)


@attrs.frozen
class AttachedFile:
    """A file from the e-mail: its name ("" if none), declared type and content."""

    filename: str
    content_type: str
    data: bytes
    charset: str | None = None


def make_file_pages(file: AttachedFile, workdir: str, convert) -> Pages:
    """Return the pages of FILE; raise MediaError saying why it is refused.

    WORKDIR is a folder for temporary files; CONVERT is the optional plugin converter.
    """
    if not file.data:
        raise MediaError("the file is empty; attach the document again")
    try:
        kind = classify_file(file.content_type, file.filename, file.data[:16])
        if kind == "text":
            return lay_out_text(decode_bytes(file.data, file.charset))
        if kind is None:
            return convert_file(file, workdir, convert)
        return read_fax_file(kind, file.data, workdir)
    except MediaError as exc:
        raise MediaError(explain(exc)) from exc


def explain(exc: MediaError) -> str:
    """Return the refusal reason for EXC, with a fix when it has none."""
    reason = str(exc).removeprefix("not a fax: ")
    if ";" not in reason:
        reason += "; send an undamaged copy, or the document as PDF"
    return reason


def classify_file(content_type: str, name: str, head: bytes) -> str | None:
    """Return "pdf", "tiff", "picture" or "text" for a file we fax, else None.

    Raise MediaError for a PDF or picture whose content is something else.
    """
    sniffed = next(
        (kind for magic, kind in MAGIC_KINDS if head.startswith(magic)), None
    )
    kind = TYPE_KINDS.get(content_type)
    if kind is None and content_type in GENERIC_TYPES:
        kind = EXTENSION_KINDS.get(os.path.splitext(name.lower())[1]) or sniffed
    if kind == "text" and sniffed:
        return sniffed
    if kind not in KIND_NAMES:
        return kind
    if sniffed is None:
        found = media.name_content(head) or "of unknown format"
        raise MediaError(
            f"the file is not {KIND_NAMES[kind]} but {found}; "
            "send the document itself as PDF"
        )
    return sniffed


def describe_refusal(content_type: str, name: str) -> str:
    """Return why a file of CONTENT_TYPE called NAME cannot be faxed, and the fix."""
    extension = os.path.splitext(name.lower())[1]
    generic = content_type in GENERIC_TYPES
    for covered, reason in REFUSALS:
        words = covered.split()
        prefixes = tuple(word for word in words if not word.startswith("."))
        if content_type.startswith(prefixes) or (generic and extension in words):
            return reason
    if not generic:
        return f"{content_type} files cannot be faxed; {AS_PDF}"
    what = f"{extension} files" if extension else "files of unknown type"
    return f"{what} cannot be faxed; {AS_PDF}"


def convert_file(file: AttachedFile, workdir: str, convert) -> Pages:
    """Return the pages the CONVERT plugin makes of a file we cannot fax ourselves."""
    reason = describe_refusal(file.content_type, file.filename)
    pdf = run_converter(convert, file)
    if pdf is None:
        raise MediaError(reason)
    try:
        return read_fax_file("pdf", pdf, workdir)
    except MediaError as exc:
        raise MediaError(f"{reason} (the converter's PDF is unusable: {exc})") from exc


def run_converter(convert, file: AttachedFile) -> bytes | None:
    """Return the PDF the converter plugin makes of FILE, or None."""
    if convert is None:
        return None
    try:
        pdf = convert(file.data, file.content_type, file.filename)
    except Exception:
        log.warning("the converter failed on %r", file.filename, exc_info=True)
        return None
    return pdf if isinstance(pdf, bytes) and pdf else None


def read_fax_file(kind: str, data: bytes, workdir: str) -> Pages:
    """Return the pages of a PDF, TIFF or picture file; raise MediaError if unusable."""
    if kind == "picture" or (kind == "tiff" and not is_bilevel(data)):
        return render_picture(data)
    handle, path = tempfile.mkstemp(dir=workdir)
    with os.fdopen(handle, "wb") as stream:
        stream.write(data)
    if kind == "tiff":
        count = media.fax_to_pdf(path, path + ".pdf")
        with open(path + ".pdf", "rb") as stream:
            pdf = stream.read()
        check_page_sizes(pdf)
        return Pages(count, pdf)
    count = media.probe_fax(path).pages
    try:
        PdfWriter().append(io.BytesIO(data))
    except PDF_ERRORS as exc:
        raise MediaError(f"the PDF pages cannot be copied ({exc})") from exc
    check_page_sizes(data)
    return Pages(count, data)


SMALLEST_PAGE_PT = 72.0
LARGEST_PAGE_PT = 1300.0


def check_page_sizes(pdf: bytes) -> None:
    """Refuse pages no fax machine prints: under 1 inch or over A3 plus margin."""
    try:
        pages = PdfReader(io.BytesIO(pdf)).pages
        for number, page in enumerate(pages, start=1):
            unit = float(page.get("/UserUnit", 1) or 1)
            width = float(page.mediabox.width) * unit
            height = float(page.mediabox.height) * unit
            if not all(
                SMALLEST_PAGE_PT <= x <= LARGEST_PAGE_PT for x in (width, height)
            ):
                raise MediaError(
                    f"page {number} is {width / 72:.1f} x {height / 72:.1f} inches;"
                    " a fax page is at most A3: scale it to A4 first"
                )
    except PDF_ERRORS as exc:
        raise MediaError(f"the PDF pages cannot be measured ({exc})") from exc


def unpack_tnef(data: bytes) -> list[AttachedFile]:
    """Return the files in the winmail.dat DATA.

    Raise MediaError if DATA cannot be unpacked.
    """
    try:
        attachments = tnefparse.TNEF(data).attachments
        files = [(name_tnef_file(att), att.data) for att in attachments]
    except TNEF_ERRORS as exc:
        raise MediaError(
            f"Outlook's winmail.dat cannot be unpacked ({exc}); send the files as "
            "ordinary attachments (in Outlook, write the e-mail as HTML or plain text, "
            "not Rich Text)"
        ) from exc
    return [
        AttachedFile(name, mimetypes.guess_type(name)[0] or GENERIC, content)
        for name, content in files
    ]


def name_tnef_file(attachment) -> str:
    """Return the file name of a winmail.dat member, whatever its encoding."""
    try:
        name = attachment.long_filename()
    except (UnicodeError, ValueError, AttributeError, TypeError):
        name = getattr(attachment, "_name", b"") or b""
    if isinstance(name, bytes):
        name = name.decode("cp1252", "replace")
    return clean_name(str(name).strip("\x00")) or "unnamed file"


def clean_name(name: str) -> str:
    """Return NAME without a path, control characters or undecodable bytes."""
    if any("\udc80" <= char <= "\udcff" for char in name):
        name = decode_bytes(name.encode("utf-8", "surrogateescape"), None)
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(char if char.isprintable() else " " for char in name)
    return " ".join(name.split())[:120]


def is_bilevel(data: bytes) -> bool:
    """Tell whether every frame of the TIFF DATA is black and white, or unreadable."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return all(frame.mode == "1" for frame in ImageSequence.Iterator(image))
    except PIL_ERRORS:
        return True


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Return DATA decoded with CHARSET, falling back to UTF-8, then Windows-1252."""
    name = resolve_charset(charset)
    if name:
        try:
            return data.decode(name, "replace")
        except (LookupError, UnicodeError, ValueError):
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def resolve_charset(charset: str | None) -> str | None:
    """Return the codec for a declared CHARSET, or None to guess it."""
    name = (charset or "").strip().strip("\"'").lower()
    name = CHARSET_ALIASES.get(name, name)
    if not name or name in UNKNOWN_CHARSETS:
        return None
    try:
        codecs.lookup(name)
    except LookupError:
        return None
    return name


def lay_out_text(text: str) -> Pages:
    """Return TEXT wrapped to the page width and cut into pages, not drawn yet."""
    lines = []
    for line in spell_renderable(text).split("\n"):
        lines.extend(wrap_line(line))
    while lines and not lines[-1]:
        lines.pop()
    pages = tuple(
        tuple(lines[start : start + LINES_PER_PAGE])
        for start in range(0, len(lines), LINES_PER_PAGE)
    )
    return Pages(len(pages), lines=pages)


def render_text_pages(pages) -> bytes:
    """Return a PDF with one A4 page for each sequence of lines in PAGES."""
    return convert_to_pdf(encode_page(draw_text_page(lines)) for lines in pages)


def spell_renderable(text: str) -> str:
    """Return TEXT with tabs expanded and every character one the font can draw."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = unicodedata.normalize("NFC", text).expandtabs(8)
    return text.translate(SPELLING_TABLE)


class SpellingTable(dict):
    """A str.translate table that spells each character on first sight."""

    def __missing__(self, code: int) -> str:
        spelled = self[code] = spell_char(chr(code))
        return spelled


SPELLING_TABLE = SpellingTable()


@functools.cache
def spell_char(char: str) -> str:
    """Return CHAR, or a spelling of it the font can draw, or "?"."""
    category = unicodedata.category(char)
    if char == "\n":
        return char
    if category in ("Cf", "Cs"):
        return ""
    if category == "Cc":
        return " "
    if can_render(char):
        return char
    if category.startswith("Z"):
        return " "
    if category in ("Mn", "Me"):
        return ""
    spelled = SPELLINGS.get(char)
    if spelled is None:
        decomposed = unicodedata.normalize("NFKD", char)
        spelled = "".join(c for c in decomposed if not unicodedata.combining(c))
    if spelled and all(can_render(c) for c in spelled):
        return spelled
    return "?"


@functools.cache
def can_render(char: str) -> bool:
    """Tell whether the font has a glyph for the printable CHAR."""
    if char == " ":
        return True
    if not char.isprintable():
        return False
    if not isinstance(load_font(), ImageFont.FreeTypeFont):
        return char.isascii()
    return read_glyph(char) != read_glyph("\U0010fffd")


@functools.cache
def read_glyph(char: str) -> tuple:
    """Return the size and pixels the font draws for CHAR."""
    mask = load_font().getmask(char)
    return mask.size, bytes(mask)


@functools.cache
def load_font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Return the monospace system font if there is one, else Pillow's own."""
    for path in FONT_PATHS:
        if os.path.exists(path):
            try:
                return ImageFont.truetype(path, FONT_SIZE)
            except OSError:
                continue
    return ImageFont.load_default(size=FONT_SIZE)


def wrap_line(line: str) -> list[str]:
    """Return LINE broken into lines that fit the page width."""
    line = line.rstrip()
    if len(line) <= COLUMNS and is_monospace():
        return [line]
    pieces = textwrap.wrap(line, COLUMNS, break_on_hyphens=False) or [""]
    if is_monospace():
        return pieces
    return [short for piece in pieces for short in fit_width(piece)]


@functools.cache
def is_monospace() -> bool:
    """Tell whether every character of the font is as wide as any other."""
    font = load_font()
    return font.getlength("i") == font.getlength("W") == font.getlength("ä")


def fit_width(line: str) -> list[str]:
    """Return LINE split where a proportional font would run past the margin."""
    font = load_font()
    width = PAGE_WIDTH - 2 * MARGIN_X
    lines = []
    while len(line) > 1 and font.getlength(line) > width:
        cut = len(line) - 1
        while cut > 1 and font.getlength(line[:cut]) > width:
            cut -= 1
        space = line.rfind(" ", 0, cut)
        cut = space if space > 0 else cut
        lines.append(line[:cut].rstrip())
        line = line[cut:].lstrip()
    lines.append(line)
    return lines


def draw_text_page(lines) -> Image.Image:
    """Return a bilevel page image with LINES drawn from the top margin down."""
    page = Image.new("1", (PAGE_WIDTH, PAGE_HEIGHT), 1)
    draw = ImageDraw.Draw(page)
    font = load_font()
    for number, line in enumerate(lines):
        draw.text((MARGIN_X, MARGIN_Y + number * LINE_HEIGHT), line, font=font, fill=0)
    return page


def render_picture(data: bytes) -> Pages:
    """Return the picture DATA fitted to A4 pages, one per frame of a TIFF."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            count = getattr(image, "n_frames", 1)
            if count > MAX_PICTURE_FRAMES:
                raise MediaError(
                    f"the picture has {count} pages; the limit is "
                    f"{MAX_PICTURE_FRAMES}, so send it as PDF"
                )
            frames = ImageSequence.Iterator(image)
            encoded = [encode_page(fit_picture(frame)) for frame in frames]
    except PIL_ERRORS as exc:
        raise MediaError(f"the picture cannot be decoded ({exc})") from exc
    return Pages(len(encoded), convert_to_pdf(encoded))


def fit_picture(image: Image.Image) -> Image.Image:
    """Return IMAGE as a bilevel A4 page, as large as fits, aspect ratio kept."""
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise MediaError(
            f"the picture is {width} x {height} pixels; the limit is "
            f"{MAX_PIXELS // 1_000_000} megapixels, so scale it down"
        )
    if image.format == "JPEG":
        image.draft("L", (PAGE_WIDTH, PAGE_HEIGHT))
    grey = flatten_to_grey(ImageOps.exif_transpose(image))
    width, height = grey.size
    # A fax pixel is a little taller than wide: 204 dpi across, 196 down.
    aspect = YDPI / XDPI
    room_x, room_y = PAGE_WIDTH - 2 * MARGIN_X, PAGE_HEIGHT - 2 * MARGIN_Y
    scale = min(room_x / width, room_y / (height * aspect))
    size = (max(1, round(width * scale)), max(1, round(height * aspect * scale)))
    picture = make_bilevel(grey.resize(size, Image.Resampling.LANCZOS))
    page = Image.new("1", (PAGE_WIDTH, PAGE_HEIGHT), 1)
    page.paste(picture, ((PAGE_WIDTH - size[0]) // 2, (PAGE_HEIGHT - size[1]) // 2))
    return page


def flatten_to_grey(image: Image.Image) -> Image.Image:
    """Return IMAGE in greyscale, transparent areas made white."""
    if "A" in image.getbands() or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, "white")
        return Image.alpha_composite(white, rgba).convert("L")
    if image.mode.startswith("I;16"):
        return image.point(lambda value: value / 257).convert("L")
    return image.convert("L")


def make_bilevel(grey: Image.Image) -> Image.Image:
    """Return GREY in black and white: a document thresholded, a photo dithered."""
    histogram = grey.histogram()
    extremes = sum(histogram[:64]) + sum(histogram[192:])
    if extremes >= DOCUMENT_SHARE * grey.width * grey.height:
        return grey.convert("1", dither=Image.Dither.NONE)
    return grey.convert("1", dither=Image.Dither.FLOYDSTEINBERG)


def encode_page(image: Image.Image) -> bytes:
    """Return the bilevel page IMAGE as a single-strip CCITT G4 TIFF.

    img2pdf embeds such a page unchanged, and :func:`ums_core.media.fax_to_tiff`
    can take it back out of the PDF.
    """
    buffer = io.BytesIO()
    image.save(
        buffer,
        format="TIFF",
        compression="group4",
        dpi=(XDPI, YDPI),
        tiffinfo={TAG_ROWS_PER_STRIP: image.height},
    )
    return buffer.getvalue()


def convert_to_pdf(pages) -> bytes:
    """Return a PDF with each of the encoded PAGES on its own A4 page."""
    return img2pdf.convert(list(pages), layout_fun=A4_LAYOUT)


def merge_pdfs(pdfs: list[bytes], expected: int) -> bytes:
    """Return PDFS joined in order, checked to have EXPECTED pages.

    The page count is checked by reading the result back with pypdf.
    """
    writer = PdfWriter()
    buffer = io.BytesIO()
    try:
        for pdf in pdfs:
            writer.append(io.BytesIO(pdf))
        writer.write(buffer)
        count = len(PdfReader(io.BytesIO(buffer.getvalue())).pages)
    except PDF_ERRORS as exc:
        raise MediaError(f"cannot join the pages into one PDF ({exc})") from exc
    if count != expected:
        raise MediaError(f"the joined PDF has {count} pages, {expected} expected")
    return buffer.getvalue()
