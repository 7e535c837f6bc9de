"""Validate fax TIFF and PDF files and convert between them.

The public entry points are in :mod:`ums_core.media`; this module does the work on a
file already sniffed as TIFF or PDF.
"""

import collections
import io
import logging
import math
import os
import struct
import threading
import warnings
import zlib

import attrs
import img2pdf
from PIL import Image
from pypdf import PdfReader
from pypdf.errors import PyPdfError

from ums_core import tiff_decode
from ums_core.errors import MediaError

log = logging.getLogger(__name__)

# What Pillow and pypdf warn of in a damaged file is said once, in ums's own
# error (or the file is fine): their warnings would only add lines beside it.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
logging.getLogger("pypdf").setLevel(logging.ERROR)

FAX_XDPI = 204.0
FAX_NORMAL_YDPI = 98.0
FAX_FINE_YDPI = 196.0
# A 1728-pixel-wide page longer than this many rows is taken to be fine resolution.
FINE_ROWS_PER_1728 = 1500

TAG_BITS_PER_SAMPLE = 258
TAG_COMPRESSION = 259
TAG_PHOTOMETRIC = 262
TAG_FILL_ORDER = 266
TAG_ORIENTATION = 274
TAG_STRIP_OFFSETS = 273
TAG_STRIP_BYTE_COUNTS = 279
TAG_X_RESOLUTION = 282
TAG_Y_RESOLUTION = 283
TAG_T4_OPTIONS = 292
TAG_RESOLUTION_UNIT = 296
TAG_TILE_OFFSETS = 324
TAG_TILE_BYTE_COUNTS = 325
T4_2D_ENCODING = 1
T4_FILL_BITS = 4
CCITT_COMPRESSIONS = (2, 3, 4)

COMPRESSION_NAMES = {
    1: "uncompressed",
    2: "CCITT MH (RLE)",
    4: "CCITT G4",
    5: "LZW",
    8: "Deflate",
    32773: "PackBits",
    32946: "Deflate",
}
MODE_NAMES = {
    "L": "8-bit greyscale",
    "LA": "greyscale with alpha",
    "P": "palette colour",
    "RGB": "RGB colour",
    "RGBA": "RGB colour with alpha",
    "CMYK": "CMYK colour",
    "I;16": "16-bit greyscale",
}
BIT_REVERSED = bytes(int(f"{value:08b}"[::-1], 2) for value in range(256))

PIL_ERRORS = (
    OSError,
    ValueError,
    TypeError,
    SyntaxError,
    EOFError,
    KeyError,
    IndexError,
    ZeroDivisionError,
    struct.error,
    Image.DecompressionBombError,
)
PDF_ERRORS = (
    PyPdfError,
    OSError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    RecursionError,
    zlib.error,
)
IMG2PDF_ERRORS = (
    img2pdf.ImageOpenError,
    img2pdf.AlphaChannelError,
    img2pdf.ExifOrientationError,
    img2pdf.UnsupportedColorspaceError,
    img2pdf.NegativeDimensionError,
    img2pdf.PdfTooLargeError,
    OSError,
    ValueError,
    TypeError,
    KeyError,
)


@attrs.frozen
class FaxPage:
    """One decoded TIFF page: its size, coding and the resolution to lay it out at."""

    width: int
    height: int
    coding: str
    dpi: tuple[float, float]
    dpi_assumed: bool
    data_kind: str = "CCITT"
    # Where a G3 1-D page's coded rows lie: (offsets, counts, bits reversed,
    # black is 1), or None for pages coded otherwise (see g3_layout).
    g3: tuple | None = None


def inspect_tiff(path) -> list[FaxPage]:
    """Decode every page of the TIFF at PATH and return what each page is.

    The tags are read with Pillow; the pages are decoded with libtiff alone
    where it is available (much faster than Pillow's one byte per pixel).
    """
    file_size = os.path.getsize(path)
    fast = tiff_decode.available()
    try:
        with Image.open(path) as image:
            pages = [
                check_tiff_page(image, index, path, file_size, decode=not fast)
                for index in iter_frames(image)
            ]
    except PIL_ERRORS as exc:
        raise MediaError(f"not a fax: the TIFF structure is damaged ({exc})") from exc
    if fast:
        coded = [n for n, page in enumerate(pages, 1) if page.data_kind == "CCITT"]
        try:
            tiff_decode.check_pages(path, len(pages), coded)
        except tiff_decode.DecodeFailure as exc:
            raise MediaError(
                f"fax page {exc.page} cannot be decoded: {exc.reason}"
                f" (corrupt {pages[exc.page - 1].data_kind} data)"
            ) from None
    remember_pages(path, pages)
    return pages


def check_tiff_page(
    image, index: int, path, file_size: int, decode: bool = True
) -> FaxPage:
    """Seek IMAGE to page INDEX, check it is a bilevel page, describe it.

    With DECODE the page is also decoded with Pillow to prove its data whole.
    """
    image.seek(index)
    number = index + 1
    if image.mode != "1":
        mode = MODE_NAMES.get(image.mode, f"mode {image.mode}")
        raise MediaError(f"not a fax: TIFF page {number} is {mode}, a fax is bilevel")
    tags = image.tag_v2
    check_strip_table(tags, number, file_size)
    compression = tags.get(TAG_COMPRESSION, 1)
    if compression == 3 and tags.get(TAG_T4_OPTIONS, 0) & T4_FILL_BITS:
        check_leading_eol(path, tags, number)
    what = "CCITT" if compression in CCITT_COMPRESSIONS else "image"
    if image.width * image.height > 2 * (Image.MAX_IMAGE_PIXELS or 1 << 62):
        raise MediaError(
            f"fax page {number} is too large ({image.width}x{image.height} pixels)"
        )
    if decode or what != "CCITT":
        try:
            image.load()
        except PIL_ERRORS as exc:
            raise MediaError(
                f"fax page {number} cannot be decoded: {exc} (corrupt {what} data)"
            ) from exc
    dpi, assumed = read_page_dpi(tags, image.size)
    coding = describe_coding(tags)
    layout = g3_layout(tags)
    return FaxPage(image.width, image.height, coding, dpi, assumed, what, layout)


def check_strip_table(tags, number: int, file_size: int) -> None:
    """Refuse a page whose strips are missing or lie beyond the end of the file.

    Pillow does not notice either: it hands back the previous page's pixels.
    """
    offsets = tags.get(TAG_STRIP_OFFSETS) or tags.get(TAG_TILE_OFFSETS)
    counts = tags.get(TAG_STRIP_BYTE_COUNTS) or tags.get(TAG_TILE_BYTE_COUNTS)
    if not offsets or not counts or len(offsets) != len(counts):
        raise MediaError(f"fax page {number} is damaged: its strip table is missing")
    end = max(offset + count for offset, count in zip(offsets, counts, strict=True))
    if end > file_size:
        raise MediaError(
            f"fax page {number} is truncated: its data ends at byte {end}, "
            f"the file has {file_size}"
        )


def check_leading_eol(path, tags, number: int) -> None:
    """Refuse G3 data whose tags promise byte-aligned EOL codes it does not start with.

    libtiff decodes such mislabelled data into noise without reporting an error.
    """
    offsets = tags.get(TAG_STRIP_OFFSETS) or tags.get(TAG_TILE_OFFSETS)
    with open(path, "rb") as stream:
        stream.seek(offsets[0])
        head = stream.read(64)
    if tags.get(TAG_FILL_ORDER, 1) == 2:
        head = head.translate(BIT_REVERSED)
    rest = head.lstrip(b"\0")
    if len(rest) == len(head) or not rest.startswith(b"\x01"):
        raise MediaError(
            f"fax page {number} cannot be decoded: the tags say G3 with byte-aligned "
            "EOL codes but the data has none (mislabelled compression)"
        )


def describe_coding(tags) -> str:
    """Return a short name for the compression of the page with TAGS."""
    compression = tags.get(TAG_COMPRESSION, 1)
    if compression == 3:
        two_d = tags.get(TAG_T4_OPTIONS, 0) & T4_2D_ENCODING
        return "CCITT G3 2-D" if two_d else "CCITT G3 1-D"
    return COMPRESSION_NAMES.get(compression, f"compression {compression}")


def read_page_dpi(tags, size: tuple[int, int]) -> tuple[tuple[float, float], bool]:
    """Return the page's (x, y) dpi and whether it had to be assumed."""
    unit = tags.get(TAG_RESOLUTION_UNIT)
    xres = read_positive(tags.get(TAG_X_RESOLUTION))
    yres = read_positive(tags.get(TAG_Y_RESOLUTION))
    if unit in (2, 3) and xres and yres:
        scale = 2.54 if unit == 3 else 1.0
        return (xres * scale, yres * scale), False
    return assume_fax_dpi(*size), True


def read_positive(value) -> float | None:
    """Return VALUE as a positive finite float, or None."""
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def assume_fax_dpi(width: int, height: int) -> tuple[float, float]:
    """Return the fax resolution a page of WIDTH x HEIGHT pixels most likely has."""
    fine = height > FINE_ROWS_PER_1728 * width / 1728
    return FAX_XDPI, FAX_FINE_YDPI if fine else FAX_NORMAL_YDPI


def describe_tiff(pages: list[FaxPage]) -> str:
    """Return the detail line for a TIFF fax, e.g. "CCITT G4, 204x196 dpi, 1 page"."""
    first = pages[0]
    dpi = f"{first.dpi[0]:g}x{first.dpi[1]:g} dpi"
    if first.dpi_assumed:
        dpi += " (assumed)"
    return f"{first.coding}, {dpi}, {describe_page_count(len(pages))}"


def describe_page_count(count: int) -> str:
    """Return "1 page" or "N pages"."""
    return "1 page" if count == 1 else f"{count} pages"


def inspect_pdf(path) -> tuple[int, str]:
    """Return the page count and PDF version of the unencrypted PDF at PATH.

    The file is read through an open handle, so pypdf reads only the objects
    it needs (given a path, it reads the whole file into memory).
    """
    try:
        with open(path, "rb") as stream:
            reader = PdfReader(stream)
            if reader.is_encrypted:
                raise MediaError(
                    "not a fax: the PDF is encrypted; send it without a password"
                )
            count = len(reader.pages)
            version = reader.pdf_header.removeprefix("%PDF-")
    except PDF_ERRORS as exc:
        raise MediaError(f"not a fax: the PDF cannot be read ({exc})") from exc
    if count == 0:
        raise MediaError("not a fax: the PDF has no pages")
    return count, version


def convert_tiff_to_pdf(path, pages: list[FaxPage]) -> bytes:
    """Return a PDF of the decoded TIFF at PATH, one page per TIFF page."""
    with open(path, "rb") as stream:
        data = stream.read()
    pdf = embed_g3_pages(data, pages)
    if pdf is not None:
        return pdf
    try:
        pdf = run_img2pdf(data, pages)
    except IMG2PDF_ERRORS as exc:
        log.info(
            "img2pdf refused %s (%s); re-encoding its pages with Pillow", path, exc
        )
        pdf = run_img2pdf(reencode_pages(path, len(pages)), pages)
    check_pdf_page_count(pdf, len(pages))
    return pdf


def embed_g3_pages(data: bytes, pages: list[FaxPage]) -> bytes | None:
    """Return a PDF that carries the G3 1-D pages of the TIFF DATA unchanged.

    PDF's CCITTFaxDecode reads G3 1-D rows as a TIFF holds them, strips one
    after the other, so nothing is decoded or re-encoded. None when a page is
    coded otherwise (G3 2-D, G4, MH) or turned: img2pdf then does the work.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            streams = []
            for index in range(len(pages)):
                image.seek(index)
                streams.append(read_g3_strips(image.tag_v2, data))
    except PIL_ERRORS:
        return None
    if any(stream is None for stream in streams):
        return None
    return write_ccitt_pdf(list(zip(pages, streams, strict=True)))


def convert_checked_tiff_to_pdf(path) -> tuple[bytes, int]:
    """Return a PDF of a TIFF that inspect_tiff passed before, and its pages.

    Its pages are not decoded again: G3 1-D pages go in as they are, others
    through img2pdf.
    """
    with open(path, "rb") as stream:
        data = stream.read()
    known = known_pages(path)
    if known is not None and all(page.g3 is not None for page in known):
        pages = list(known)
        streams = [g3_rows(page.g3, data) for page in pages]
        return write_ccitt_pdf(list(zip(pages, streams, strict=True))), len(pages)
    pages, streams = [], []
    try:
        with Image.open(io.BytesIO(data)) as image:
            for _ in iter_frames(image):
                dpi, assumed = read_page_dpi(image.tag_v2, image.size)
                coding = describe_coding(image.tag_v2)
                pages.append(FaxPage(image.width, image.height, coding, dpi, assumed))
                streams.append(read_g3_strips(image.tag_v2, data))
    except PIL_ERRORS as exc:
        raise MediaError(f"not a fax: the TIFF structure is damaged ({exc})") from exc
    if all(stream is not None for stream in streams):
        return write_ccitt_pdf(list(zip(pages, streams, strict=True))), len(pages)
    return convert_tiff_to_pdf(path, pages), len(pages)


# The pages probe found, by file (path, size, times, inode): intake hands them
# from the file it probed to the content file it stored, and composing the
# PDF in the same process then reads no TIFF directory again.
_KNOWN_PAGES: collections.OrderedDict = collections.OrderedDict()
_KNOWN_LOCK = threading.Lock()
MAX_KNOWN = 64


def _file_key(path) -> tuple | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    # ctime too: mtime can be set back, ctime cannot.
    key = (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)
    return (os.path.abspath(path), *key)


def remember_pages(path, pages: list[FaxPage]) -> None:
    """Remember the PAGES probe found in the file at PATH (as it is now)."""
    key = _file_key(path)
    if key is None:
        return
    with _KNOWN_LOCK:
        _KNOWN_PAGES[key] = tuple(pages)
        while len(_KNOWN_PAGES) > MAX_KNOWN:
            _KNOWN_PAGES.popitem(last=False)


def carry_pages(source, target) -> None:
    """Let TARGET, a byte copy of SOURCE, share what probe found in SOURCE."""
    key = _file_key(source)
    with _KNOWN_LOCK:
        pages = _KNOWN_PAGES.get(key) if key else None
    if pages is not None:
        remember_pages(target, list(pages))


def known_pages(path) -> tuple | None:
    """Return the pages probe found in the file at PATH, if it has not changed."""
    key = _file_key(path)
    with _KNOWN_LOCK:
        return _KNOWN_PAGES.get(key) if key else None


def iter_frames(image, limit: int = 100000):
    """Seek IMAGE to each of its frames in turn, for a TIFF checked before.

    n_frames would read every directory once more before the first page.
    """
    for index in range(limit):
        try:
            image.seek(index)
        except EOFError:
            return
        yield index


def read_g3_strips(tags, data: bytes) -> tuple[bytes, bool] | None:
    """Return the coded rows of the page with TAGS and whether 1 bits are black."""
    layout = g3_layout(tags)
    return None if layout is None else g3_rows(layout, data)


def g3_rows(layout: tuple, data: bytes) -> tuple[bytes, bool]:
    """Return the coded rows LAYOUT (see g3_layout) places in DATA, and BlackIs1."""
    offsets, counts, reversed_bits, black_is_1 = layout
    rows = b"".join(
        data[offset : offset + count]
        for offset, count in zip(offsets, counts, strict=True)
    )
    return (rows.translate(BIT_REVERSED) if reversed_bits else rows), black_is_1


def g3_layout(tags) -> tuple | None:
    """Return where the G3 1-D rows of the page with TAGS lie, or None.

    (strip offsets, strip byte counts, whether the bits are reversed, whether
    1 bits are black); None for pages coded otherwise or turned.
    """
    plain = (
        tags.get(TAG_COMPRESSION) == 3
        and not tags.get(TAG_T4_OPTIONS, 0) & T4_2D_ENCODING
        and tags.get(TAG_ORIENTATION, 1) == 1
        and tags.get(TAG_PHOTOMETRIC, 0) in (0, 1)
        and tags.get(TAG_BITS_PER_SAMPLE, (1,)) in (1, (1,))
    )
    offsets, counts = tags.get(TAG_STRIP_OFFSETS), tags.get(TAG_STRIP_BYTE_COUNTS)
    if not plain or not offsets or not counts or len(offsets) != len(counts):
        return None
    reversed_bits = tags.get(TAG_FILL_ORDER, 1) == 2
    black_is_1 = tags.get(TAG_PHOTOMETRIC, 0) == 1
    return tuple(offsets), tuple(counts), reversed_bits, black_is_1


def write_ccitt_pdf(pages: list[tuple[FaxPage, tuple[bytes, bool]]]) -> bytes:
    """Return a PDF with one CCITT G3 1-D image per page, sized by its dpi."""
    count = len(pages)
    kids = " ".join(f"{3 + 3 * n} 0 R" for n in range(count))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {count} >>".encode(),
    ]
    for number, (page, (rows, black_is_1)) in enumerate(pages):
        first = 3 + 3 * number
        width = page.width * 72 / page.dpi[0]
        height = page.height * 72 / page.dpi[1]
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width:.4f} {height:.4f}]"
            f" /Resources << /XObject << /Im0 {first + 1} 0 R >> >>"
            f" /Contents {first + 2} 0 R >>".encode()
        )
        parms = (
            f"<< /K 0 /Columns {page.width} /Rows {page.height}"
            f" /BlackIs1 {'true' if black_is_1 else 'false'} >>"
        )
        objects.append(
            f"<< /Type /XObject /Subtype /Image /Width {page.width}"
            f" /Height {page.height} /ColorSpace /DeviceGray /BitsPerComponent 1"
            f" /Filter /CCITTFaxDecode /DecodeParms {parms}"
            f" /Length {len(rows)} >>\nstream\n".encode()
            + rows
            + b"\nendstream"
        )
        draw = f"q {width:.4f} 0 0 {height:.4f} 0 0 cm /Im0 Do Q".encode()
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(draw), draw))
    return join_pdf_objects(objects)


def join_pdf_objects(objects: list[bytes]) -> bytes:
    """Return a PDF file of OBJECTS (numbered from 1) with its xref table."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def run_img2pdf(images, pages: list[FaxPage]) -> bytes:
    """Convert IMAGES (TIFF bytes or a list of page images) with each page's dpi."""
    return img2pdf.convert(
        images,
        layout_fun=make_layout([page.dpi for page in pages]),
        rotation=img2pdf.Rotation.ifvalid,
        allow_oversized=True,
    )


def make_layout(dpis: list[tuple[float, float]]):
    """Return an img2pdf layout function that sizes the Nth page by the Nth dpi.

    img2pdf calls it once per frame, in page order, after reading all frames.
    """
    remaining = iter(dpis)

    def lay_out_page(width_px, height_px, ndpi):
        return img2pdf.default_layout_fun(width_px, height_px, next(remaining, ndpi))

    return lay_out_page


def reencode_pages(path, count: int) -> list[bytes]:
    """Return every page of the TIFF at PATH as its own lossless G4 TIFF."""
    encoded = []
    try:
        with Image.open(path) as image:
            for index in range(count):
                image.seek(index)
                page = image.convert("1", dither=Image.Dither.NONE)
                buffer = io.BytesIO()
                page.save(buffer, format="TIFF", compression="group4")
                encoded.append(buffer.getvalue())
    except PIL_ERRORS as exc:
        raise MediaError(f"cannot convert this fax to PDF: {exc}") from exc
    return encoded


def check_pdf_page_count(pdf: bytes, expected: int) -> None:
    """Refuse a converted PDF that does not have EXPECTED pages."""
    try:
        count = len(PdfReader(io.BytesIO(pdf)).pages)
    except PDF_ERRORS as exc:
        raise MediaError(
            f"cannot convert this fax to PDF: output unreadable ({exc})"
        ) from exc
    if count != expected:
        raise MediaError(
            f"cannot convert this fax to PDF: {count} pages written, "
            f"{expected} expected"
        )


def convert_pdf_to_tiff(path) -> bytes:
    """Return a G4 TIFF of a PDF whose every page is one CCITT fax image."""
    try:
        reader = PdfReader(path)
        extracted = [
            extract_fax_image(page, number)
            for number, page in enumerate(reader.pages, start=1)
        ]
    except PDF_ERRORS + PIL_ERRORS as exc:
        raise MediaError(f"cannot convert this PDF to TIFF: {exc}") from exc
    resolutions = {dpi for _, dpi in extracted}
    if len(resolutions) > 1:
        raise MediaError(
            "cannot convert this PDF to TIFF: its pages have different resolutions"
        )
    images = [image for image, _ in extracted]
    buffer = io.BytesIO()
    images[0].save(
        buffer,
        format="TIFF",
        save_all=True,
        append_images=images[1:],
        compression="group4",
        dpi=resolutions.pop(),
    )
    return buffer.getvalue()


def extract_fax_image(page, number: int) -> tuple[Image.Image, tuple[int, int]]:
    """Return the one CCITT image on PAGE, bilevel, and its dpi on the page."""
    xobjects = resolve(resolve(page.get("/Resources")).get("/XObject"))
    candidates = [resolve(item) for item in xobjects.values()]
    images = [item for item in candidates if item.get("/Subtype") == "/Image"]
    if len(images) != 1:
        raise MediaError(
            f"cannot convert this PDF to TIFF: page {number} has {len(images)} "
            "images, not one fax image"
        )
    filters = images[0].get("/Filter")
    names = [filters] if isinstance(filters, str) else list(filters or [])
    if names != ["/CCITTFaxDecode"]:
        raise MediaError(
            f"cannot convert this PDF to TIFF: page {number} is not a CCITT fax image "
            f"(filter {' '.join(names) or 'none'})"
        )
    image = images[0].decode_as_image().convert("1", dither=Image.Dither.NONE)
    points = 72 / float(page.user_unit)
    box = page.mediabox
    dpi = (
        round(image.width * points / float(box.width)),
        round(image.height * points / float(box.height)),
    )
    return image, dpi


def resolve(value):
    """Return the PDF object VALUE points to, or an empty dict for None."""
    return {} if value is None else value.get_object()
