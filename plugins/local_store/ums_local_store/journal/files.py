"""The files the journal serves: fax as PDF or TIFF, page previews, audio.

Every file is found from the message row (never from a path in the request).
Conversions are written once into the plugin's cache folder, named after the
content file (never reused, unlike a message id after a delete), through a
temporary file and a rename, so two requests at once or a crash mid-way leave
no half file behind.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import unicodedata

from ums_core.errors import MediaError

log = logging.getLogger(__name__)

PREVIEW_WIDTH = 1000
FAX_TYPES = {"image/tiff": "tiff", "application/pdf": "pdf"}


def cache_folder(home: str) -> str:
    """Return (and create) the journal's cache folder."""
    path = os.path.join(home, "plugins", "local_store", "cache")
    os.makedirs(path, mode=0o700, exist_ok=True)
    return path


def content_path(home: str, row) -> str | None:
    """Return the path of ROW's content file, or None when it has none."""
    if not row.content_name:
        return None
    path = os.path.join(home, row.content_name)
    return path if os.path.isfile(path) else None


def content_format(row) -> str:
    """Return 'tiff', 'pdf', 'wav' or '' for ROW's content."""
    if row.content_type in FAX_TYPES:
        return FAX_TYPES[row.content_type]
    if row.kind == "voice" and row.content_name:
        return "wav"
    extension = os.path.splitext(row.content_name or "")[1].lower().lstrip(".")
    return {"tif": "tiff", "tiff": "tiff", "pdf": "pdf"}.get(extension, "")


def cache_key(row) -> str:
    """Return the cache name stem of ROW's conversions."""
    return hashlib.sha256((row.content_name or "").encode()).hexdigest()[:24]


def _cached(home: str, row, suffix: str, make) -> str:
    target = os.path.join(cache_folder(home), f"{cache_key(row)}{suffix}")
    if os.path.exists(target):
        return target
    tmp = f"{target}.{os.getpid()}.{id(make)}.part"
    try:
        make(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def fax_file(home: str, row, wanted: str) -> str | None:
    """Return the fax of ROW as WANTED ('pdf' or 'tiff'), converting once."""
    from ums_core.helpers import fax_to_pdf, fax_to_tiff

    source = content_path(home, row)
    have = content_format(row)
    if source is None or have not in ("pdf", "tiff"):
        return None
    if have == wanted:
        return source
    convert = fax_to_pdf if wanted == "pdf" else fax_to_tiff
    try:
        return _cached(home, row, f".{wanted}", lambda out: convert(source, out))
    except MediaError as exc:
        log.warning("msg %d: no %s for the journal: %s", row.id, wanted, exc)
        return None


def page_preview(home: str, row, number: int) -> str | None:
    """Return a PNG of page NUMBER (1-based) of ROW's fax, or None."""
    tiff = fax_file(home, row, "tiff")
    if tiff is None or not 1 <= number <= (row.pages or 0):
        return None
    try:
        return _cached(
            home, row, f".p{number}.png", lambda out: _render_page(tiff, number, out)
        )
    except (OSError, EOFError, ValueError) as exc:
        log.warning("msg %d: page %d preview failed: %s", row.id, number, exc)
        return None


def _render_page(tiff: str, number: int, out: str) -> None:
    from PIL import Image

    with Image.open(tiff) as image:
        image.seek(number - 1)
        page = image.convert("L")
        x_dpi, y_dpi = _dpi(image)
        # Standard-resolution faxes have half the lines: stretch them back.
        height = round(page.height * x_dpi / y_dpi) if y_dpi else page.height
        scale = PREVIEW_WIDTH / page.width
        size = (PREVIEW_WIDTH, max(1, round(height * scale)))
        page.resize(size, Image.Resampling.LANCZOS).save(out, "PNG", optimize=True)


def _dpi(image) -> tuple[float, float]:
    dpi = image.info.get("dpi") or (204, 196)
    try:
        x_dpi, y_dpi = float(dpi[0]), float(dpi[1])
    except (TypeError, ValueError, IndexError):
        return 204.0, 196.0
    return (x_dpi or 204.0), (y_dpi or 196.0)


def playable_audio(home: str, row) -> str | None:
    """Return a 16-bit PCM WAV of ROW's voice message for the browser."""
    source = content_path(home, row)
    if source is None or row.kind != "voice":
        return None
    try:
        import soundfile

        info = soundfile.info(source)
        if info.subtype == "PCM_16":
            return source
        return _cached(home, row, ".play.wav", lambda out: _to_pcm(source, out))
    except (RuntimeError, OSError, ValueError) as exc:
        log.warning("msg %d: no playable audio (%s); serving the original", row.id, exc)
        return source


def _to_pcm(source: str, out: str) -> None:
    import soundfile

    with soundfile.SoundFile(source) as reader:
        with soundfile.SoundFile(
            out,
            "w",
            samplerate=reader.samplerate,
            channels=reader.channels,
            subtype="PCM_16",
            format="WAV",
        ) as writer:
            # read() in pieces: blocks() needs a seekable file, and GSM is not
            for _ in range(1_000_000):
                block = reader.read(65536, dtype="int16")
                if not len(block):
                    break
                writer.write(block)


def remove_cached(home: str, row) -> None:
    """Remove every cached conversion of the message ROW."""
    folder = cache_folder(home)
    prefix = f"{cache_key(row)}."
    for name in os.listdir(folder):
        if name.startswith(prefix):
            os.unlink(os.path.join(folder, name))


def download_name(row, who: str, when, extension: str) -> str:
    """Return the file name a download of ROW gets, non-ASCII kept.

    WHO names the other party (name or number), WHEN is the local time.
    Path separators, control characters and quotes never reach the name.
    """
    direction = "to" if row.direction == "outbound" else "from"
    stamp = when.strftime("%Y-%m-%d %H%M")
    text = f"{row.kind} {stamp} {direction} {who}".strip()
    text = "".join(
        " " if unicodedata.category(c)[0] in "CZ" else c
        for c in unicodedata.normalize("NFC", text)
    )
    text = re.sub(r'[\\/:*?"<>|;]+', "_", text)
    text = " ".join(text.split()).strip(" .")[:120] or "message"
    return f"{text}.{extension}"
