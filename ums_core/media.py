"""Recognise, validate and convert fax and voice messages.

Faxes are TIFF (any CCITT variant a fax server writes) or PDF; voice messages are
RIFF/WAVE in PCM, G.711 A-law or mu-law, or GSM 6.10. Every bad input raises
:class:`~ums_core.errors.MediaError` with a one-line message saying what is wrong.
The decoding work is done in :mod:`ums_core.media_fax` and :mod:`ums_core.media_voice`.
"""

import errno
import os
import shutil
import stat

import attrs

from ums_core import media_fax, media_voice
from ums_core.errors import MediaError

HEAD_SIZE = 64
TIFF_MAGICS = (b"II*\0", b"MM\0*")
GSM_FRAME_SIZE = 33
GSM_SIGNATURE = 0xD
MAGIC_NAMES = (
    (b"%PDF", "a PDF document"),
    (b"II*\0", "a TIFF image"),
    (b"MM\0*", "a TIFF image"),
    (b".snd", "a Sun/NeXT .au audio file ('.snd' magic)"),
    (b"RIFX", "a big-endian RIFX file"),
    (b"RF64", "an RF64 (64-bit WAV) file"),
    (b"FORM", "an IFF/AIFF file"),
    (b"OggS", "an Ogg file"),
    (b"fLaC", "a FLAC audio file"),
    (b"ID3", "an MP3 audio file"),
    (b"#!AMR", "an AMR audio file"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"PK\x03\x04", "a ZIP archive"),
)


@attrs.frozen
class MediaInfo:
    """What a probe found out about a fax or voice message."""

    kind: str
    content_type: str
    extension: str
    pages: int | None
    duration: float | None
    detail: str


def probe_fax(path) -> MediaInfo:
    """Return what the fax at PATH is, after decoding every page."""
    return inspect_fax(path)[0]


def probe_voice(path) -> MediaInfo:
    """Return what the voice message at PATH is, after checking its chunks."""
    head, size = read_head(path, "not a WAV file")
    if not head.startswith(b"RIFF"):
        if b"RIFF".startswith(head):
            raise MediaError(f"not a WAV file: RIFF header truncated ({size} bytes)")
        raise MediaError(f"not a WAV file: {describe_non_riff(head, size)}")
    try:
        duration, detail = media_voice.inspect_wav(path, size)
    except OSError as exc:
        raise MediaError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return MediaInfo("voice", "audio/wav", ".wav", None, duration, detail)


def fax_to_pdf(path, out_path, checked: bool = False) -> int:
    """Write a PDF of the fax at PATH to OUT_PATH and return its page count.

    CHECKED says PATH already passed probe_fax (see checked_fax_pdf).
    """
    converted = checked_fax_pdf(path) if checked else None
    if converted is not None:
        write_atomically(out_path, converted[0])
        return converted[1]
    info, pages = inspect_fax(path)
    if pages is None:
        copy_atomically(path, out_path)
    else:
        write_atomically(out_path, media_fax.convert_tiff_to_pdf(path, pages))
    return info.pages


def fax_to_tiff(path, out_path) -> int:
    """Write a bilevel CCITT TIFF of the fax at PATH to OUT_PATH; return its pages."""
    info, pages = inspect_fax(path)
    if pages is None:
        write_atomically(out_path, media_fax.convert_pdf_to_tiff(path))
    else:
        copy_atomically(path, out_path)
    return info.pages


def inspect_fax(path) -> tuple[MediaInfo, list[media_fax.FaxPage] | None]:
    """Return the MediaInfo of the fax at PATH and its TIFF pages (None for a PDF)."""
    head, _ = read_head(path, "not a fax")
    try:
        if head.startswith(b"%PDF"):
            count, version = media_fax.inspect_pdf(path)
            detail = f"PDF {version}, {media_fax.describe_page_count(count)}"
            info = MediaInfo("fax", "application/pdf", ".pdf", count, None, detail)
            return info, None
        if head[:4] in TIFF_MAGICS:
            pages = media_fax.inspect_tiff(path)
            detail = media_fax.describe_tiff(pages)
            info = MediaInfo("fax", "image/tiff", ".tif", len(pages), None, detail)
            return info, pages
    except OSError as exc:
        raise MediaError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if looks_like_raw_g3(head):
        raise MediaError(
            "raw G3 data without a TIFF container is not accepted; "
            "wrap it with fax2tiff"
        )
    raise MediaError(f"not a fax: {describe_content(head)}; a fax is a TIFF or PDF")


def checked_fax_pdf(path) -> tuple[bytes, int] | None:
    """Return the PDF of the checked TIFF fax at PATH and its page count.

    None when the fax is a PDF already. Checked means PATH passed probe_fax
    (a message's content file): its pages are not decoded a second time.
    """
    if not is_tiff(path):
        return None
    try:
        return media_fax.convert_checked_tiff_to_pdf(path)
    except OSError as exc:
        raise MediaError(f"cannot read {path}: {exc.strerror or exc}") from exc


def is_tiff(path) -> bool:
    """Tell whether the file at PATH starts like a TIFF."""
    return read_head(path, "not a fax")[0][:4] in TIFF_MAGICS


def read_head(path, refusal: str) -> tuple[bytes, int]:
    """Return the first bytes and the size of PATH; refuse an empty file."""
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
        if not stat.S_ISREG(info.st_mode):
            raise MediaError(f"cannot read {path}: not a regular file")
        size = info.st_size
        with open(path, "rb") as stream:
            head = stream.read(HEAD_SIZE)
    except OSError as exc:
        raise MediaError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if size == 0:
        raise MediaError(f"{refusal}: file is empty")
    return head, size


def describe_content(head: bytes) -> str:
    """Return what a file starting with HEAD looks like, e.g. "this is a PNG image"."""
    name = name_content(head)
    if name:
        return f"this is {name}"
    return f"unknown format (starts with {head[:4].hex(' ')})"


def name_content(head: bytes) -> str | None:
    """Return the kind of file HEAD starts, e.g. "a PNG image", or None if unknown."""
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "a WAV audio file"
    for magic, name in MAGIC_NAMES:
        if head.startswith(magic):
            return name
    if all(32 <= byte < 127 or byte in b"\t\r\n" for byte in head):
        return "a text file"
    return None


def describe_non_riff(head: bytes, size: int) -> str:
    """Return what an audio file without a RIFF header looks like."""
    if looks_like_raw_gsm(head, size):
        return "no RIFF header; this is headerless raw GSM 06.10 audio"
    name = name_content(head)
    if name:
        return f"this is {name}"
    return (
        f"no RIFF header (starts with {head[:4].hex(' ')}; headerless raw audio "
        "or an unknown format)"
    )


def looks_like_raw_g3(head: bytes) -> bool:
    """Tell whether HEAD starts with a G3 EOL code (11 zero bits, then a 1)."""
    first_set = next((index for index, byte in enumerate(head[:8]) if byte), None)
    if not first_set:
        return False
    byte = head[first_set]
    zeros_msb_first = 8 * first_set + 8 - byte.bit_length()
    zeros_lsb_first = 8 * first_set + (byte & -byte).bit_length() - 1
    return max(zeros_msb_first, zeros_lsb_first) >= 11


def looks_like_raw_gsm(head: bytes, size: int) -> bool:
    """Tell whether a file is a series of 33-byte GSM 06.10 frames."""
    frames = head[::GSM_FRAME_SIZE]
    return size % GSM_FRAME_SIZE == 0 and all(
        byte >> 4 == GSM_SIGNATURE for byte in frames
    )


def write_atomically(out_path, data: bytes) -> None:
    """Write DATA to OUT_PATH through a synced temporary file, never leaving half."""
    temporary = f"{os.fspath(out_path)}.tmp"
    try:
        with open(temporary, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, out_path)
    except OSError as exc:
        remove_quietly(temporary)
        raise MediaError(f"cannot write {out_path}: {exc.strerror or exc}") from exc


def copy_atomically(path, out_path) -> None:
    """Copy PATH to OUT_PATH through a synced temporary file."""
    temporary = f"{os.fspath(out_path)}.tmp"
    try:
        with open(path, "rb") as source, open(temporary, "wb") as target:
            shutil.copyfileobj(source, target)
            target.flush()
            os.fsync(target.fileno())
        os.replace(temporary, out_path)
    except OSError as exc:
        remove_quietly(temporary)
        raise MediaError(f"cannot write {out_path}: {exc.strerror or exc}") from exc


def remove_quietly(path) -> None:
    """Remove PATH if it exists."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
