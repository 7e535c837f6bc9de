"""Decode-check the pages of a TIFF with Pillow's own libtiff, through ctypes.

Pillow decodes a bilevel page with libtiff, then unpacks it to one byte per
pixel; only the check "does every strip decode" is wanted at intake, and
libtiff alone does that about eight times faster. The library used is the
one Pillow has loaded (its wheel bundles one), so a page passes here exactly
when Pillow could decode it: libtiff versions differ in what they forgive.
Where that library cannot be found (not Linux) or is older than 4.5 (no
``TIFFOpenExt``), :func:`available` is false and callers decode with Pillow.
"""

from __future__ import annotations

import collections
import ctypes
import ctypes.util
import functools
import logging
import os
import platform

from .errors import MediaError

log = logging.getLogger(__name__)

# A strip larger than this is refused before a buffer is made for it
# (a 600-dpi A3 bilevel page in one strip is about 8 MiB).
MAX_STRIP_BYTES = 64 * 1024 * 1024
MAX_MESSAGES = 20

_HANDLER = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_void_p,
)


class DecodeFailure(Exception):
    """Page PAGE (1-based) did not decode; REASON is what libtiff reported."""

    def __init__(self, page: int, reason: str):
        super().__init__(f"page {page}: {reason}")
        self.page = page
        self.reason = reason


def pillow_libtiff() -> str | None:
    """Return the path of the libtiff that Pillow's C module is linked with."""
    from PIL import _imaging  # noqa: F401  (loads Pillow's libtiff)

    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = {line.split(maxsplit=5)[-1].strip() for line in maps}
    except OSError:
        return None
    found = [p for p in paths if os.path.basename(p).startswith("libtiff")]
    return sorted(found)[0] if len(found) == 1 else None


@functools.cache
def _library():
    """Return the loaded libtiff and libc, or None when either is unusable."""
    if platform.machine() not in ("x86_64", "AMD64", "aarch64", "arm64"):
        return None
    name = pillow_libtiff()
    libc_name = ctypes.util.find_library("c")
    if not name or not libc_name:
        return None
    try:
        lib = ctypes.CDLL(name)
        libc = ctypes.CDLL(libc_name)
        _declare(lib, libc)
    except (OSError, AttributeError) as exc:
        log.info("libtiff not usable for fax checks (%s); Pillow decodes", exc)
        return None
    return lib, libc


def _declare(lib, libc) -> None:
    """Set the ctypes signatures of the functions used (raises AttributeError)."""
    ptr, u32, ssize = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_ssize_t
    lib.TIFFOpenOptionsAlloc.restype = ptr
    lib.TIFFOpenOptionsAlloc.argtypes = []
    lib.TIFFOpenOptionsFree.argtypes = [ptr]
    lib.TIFFOpenOptionsSetErrorHandlerExtR.argtypes = [ptr, _HANDLER, ptr]
    lib.TIFFOpenOptionsSetWarningHandlerExtR.argtypes = [ptr, _HANDLER, ptr]
    lib.TIFFOpenOptionsSetMaxSingleMemAlloc.argtypes = [ptr, ssize]
    lib.TIFFOpenExt.restype = ptr
    lib.TIFFOpenExt.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ptr]
    lib.TIFFClose.argtypes = [ptr]
    lib.TIFFReadDirectory.argtypes = [ptr]
    lib.TIFFNumberOfStrips.restype = u32
    lib.TIFFNumberOfStrips.argtypes = [ptr]
    lib.TIFFIsTiled.argtypes = [ptr]
    lib.TIFFStripSize.restype = ssize
    lib.TIFFStripSize.argtypes = [ptr]
    lib.TIFFReadEncodedStrip.restype = ssize
    lib.TIFFReadEncodedStrip.argtypes = [ptr, u32, ptr, ssize]
    lib.TIFFNumberOfTiles.restype = u32
    lib.TIFFNumberOfTiles.argtypes = [ptr]
    lib.TIFFTileSize.restype = ssize
    lib.TIFFTileSize.argtypes = [ptr]
    lib.TIFFReadEncodedTile.restype = ssize
    lib.TIFFReadEncodedTile.argtypes = [ptr, u32, ptr, ssize]
    libc.vsnprintf.restype = ctypes.c_int
    libc.vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ptr, ptr]


def available() -> bool:
    """Return whether libtiff can check pages here."""
    return _library() is not None


def check_pages(path, count: int, wanted=None) -> None:
    """Decode every strip (or tile) of the pages WANTED of the TIFF at PATH.

    The file has COUNT pages; WANTED holds page numbers (1-based), None means
    all. Raises DecodeFailure naming the page and libtiff's message, or
    MediaError when the file has fewer pages or a strip is too large.
    """
    lib, libc = _library()
    wanted = set(range(1, count + 1)) if wanted is None else set(wanted)
    messages: collections.deque[str] = collections.deque(maxlen=MAX_MESSAGES)
    name = os.fsencode(path)

    def record(_tif, _data, module, fmt, args) -> int:
        module = None if module == name else module
        messages.append(_format(libc, module, fmt, args, name))
        return 1

    handler = _HANDLER(record)
    options = lib.TIFFOpenOptionsAlloc()
    try:
        lib.TIFFOpenOptionsSetErrorHandlerExtR(options, handler, None)
        lib.TIFFOpenOptionsSetWarningHandlerExtR(options, handler, None)
        lib.TIFFOpenOptionsSetMaxSingleMemAlloc(options, MAX_STRIP_BYTES)
        # "m": no memory map; a file cut short while it is read would SIGBUS.
        tif = lib.TIFFOpenExt(os.fsencode(path), b"rm", options)
        if not tif:
            raise DecodeFailure(1, f"libtiff cannot open it ({_last(messages)})")
        try:
            _check_directories(lib, tif, wanted, count, messages)
        finally:
            lib.TIFFClose(tif)
    finally:
        lib.TIFFOpenOptionsFree(options)


def _check_directories(lib, tif, wanted, count: int, messages) -> None:
    buffer = None
    for number in range(1, count + 1):
        if number > 1 and not lib.TIFFReadDirectory(tif):
            raise MediaError(f"not a fax: libtiff finds {number - 1} of {count} pages")
        if number not in wanted:
            continue
        tiled = lib.TIFFIsTiled(tif)
        size = lib.TIFFTileSize(tif) if tiled else lib.TIFFStripSize(tif)
        if size <= 0 or size > MAX_STRIP_BYTES:
            raise MediaError(f"fax page {number} has a strip of {size} bytes")
        if buffer is None or len(buffer) < size:
            buffer = ctypes.create_string_buffer(size)
        messages.clear()
        pieces = lib.TIFFNumberOfTiles(tif) if tiled else lib.TIFFNumberOfStrips(tif)
        read = lib.TIFFReadEncodedTile if tiled else lib.TIFFReadEncodedStrip
        for piece in range(pieces):
            if read(tif, piece, buffer, size) < 0:
                raise DecodeFailure(number, _last(messages))


def _last(messages: list[str]) -> str:
    return messages[-1] if messages else "libtiff reported no reason"


def _format(libc, module: bytes | None, fmt: bytes | None, args, name: bytes) -> str:
    """Return libtiff's message from its printf format and va_list.

    The file's path (NAME) becomes its base name; control characters become
    spaces: the text ends up in log lines and in the refusal.
    """
    text = ctypes.create_string_buffer(512)
    if fmt:
        libc.vsnprintf(text, len(text), fmt, args)
    raw = text.value.replace(name, os.path.basename(name))
    message = _one_line(raw.decode("utf-8", "replace"), 300)
    where = _one_line(module.decode("utf-8", "replace"), 60) if module else ""
    return f"{where}: {message}" if where else message


def _one_line(text: str, limit: int) -> str:
    """Return TEXT with control characters as spaces, cut to LIMIT characters."""
    from .helpers import header_text

    return header_text(text, limit)
