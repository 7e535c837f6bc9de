"""Write synthetic fax and voice messages for the demo and the tests.

Run ``python -m ums_core.samples fax|voice|all PATH``: ``fax`` and ``voice`` write one
file at PATH, ``all`` writes ``fax.tif`` and ``voice.wav`` into the folder PATH.
"""

import argparse
import math
import os
import struct
import sys
import textwrap
import wave
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FAX_WIDTH = 1728
FAX_XDPI = 204
NORMAL_ROWS = 1143
FINE_ROWS = 2286
DEFAULT_FAX_TEXT = (
    "This is a sample fax written by ums. It stands in for a page received from a "
    "fax machine: 1728 pixels wide, bilevel, CCITT compressed."
)

WAVE_FORMAT_ALAW = 6
WAVE_FORMAT_MULAW = 7
ENCODINGS = ("pcm", "ulaw", "alaw")
COMPRESSIONS = ("group3", "group4")


def write_fax_tiff(
    path,
    text: str = DEFAULT_FAX_TEXT,
    pages: int = 1,
    fine: bool = False,
    compression: str = "group3",
) -> None:
    """Write a multi-page bilevel CCITT TIFF fax with TEXT on every page."""
    if compression not in COMPRESSIONS:
        raise ValueError(
            f"compression must be one of {COMPRESSIONS}, not {compression!r}"
        )
    if pages < 1:
        raise ValueError("a fax needs at least one page")
    ydpi = 196 if fine else 98
    images = [
        render_fax_page(text, number, pages, fine) for number in range(1, pages + 1)
    ]
    images[0].save(
        os.fspath(path),
        format="TIFF",
        save_all=True,
        append_images=images[1:],
        compression=compression,
        dpi=(FAX_XDPI, ydpi),
    )


def render_fax_page(text: str, number: int, pages: int, fine: bool) -> Image.Image:
    """Return one bilevel fax page showing TEXT, drawn at fine resolution."""
    page = Image.new("L", (FAX_WIDTH, FINE_ROWS), 255)
    draw = ImageDraw.Draw(page)
    draw.rectangle((60, 60, FAX_WIDTH - 60, FINE_ROWS - 60), outline=0, width=6)
    title = ImageFont.load_default(size=72)
    body = ImageFont.load_default(size=44)
    draw.text((120, 120), "ums sample fax", font=title, fill=0)
    draw.text((120, 230), f"page {number} of {pages}", font=body, fill=0)
    top = 360
    for line in textwrap.wrap(text, width=60) or [""]:
        draw.text((120, top), line, font=body, fill=0)
        top += 64
    if not fine:
        page = page.resize((FAX_WIDTH, NORMAL_ROWS), Image.Resampling.BOX)
    return page.point(lambda value: 255 if value > 160 else 0).convert(
        "1", dither=Image.Dither.NONE
    )


def write_wav(
    path, seconds: float = 2.0, encoding: str = "pcm", rate: int = 8000
) -> None:
    """Write a mono speech-like WAV: 16-bit PCM, G.711 mu-law or A-law."""
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, not {encoding!r}")
    samples = make_speech_like_samples(round(seconds * rate), rate)
    if encoding == "pcm":
        write_pcm_wav(path, samples, rate)
    elif encoding == "ulaw":
        write_g711_wav(path, bytes(map(encode_ulaw, samples)), WAVE_FORMAT_MULAW, rate)
    else:
        write_g711_wav(path, bytes(map(encode_alaw, samples)), WAVE_FORMAT_ALAW, rate)


def make_speech_like_samples(count: int, rate: int) -> list[int]:
    """Return COUNT 16-bit samples: a gliding voiced tone in syllable-like bursts."""
    samples = []
    phase = 0.0
    for index in range(count):
        t = index / rate
        pitch = 140 + 30 * math.sin(2 * math.pi * 0.7 * t)
        phase += 2 * math.pi * pitch / rate
        voice = math.sin(phase) + 0.5 * math.sin(2 * phase) + 0.25 * math.sin(3 * phase)
        envelope = max(0.0, math.sin(2 * math.pi * 2.5 * t)) ** 0.5
        samples.append(round(9000 * envelope * voice))
    return samples


def write_pcm_wav(path, samples: list[int], rate: int) -> None:
    """Write SAMPLES as a 16-bit mono PCM WAV with the wave module."""
    with open(path, "wb") as stream, wave.open(stream, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(struct.pack(f"<{len(samples)}h", *samples))


def write_g711_wav(path, data: bytes, format_tag: int, rate: int) -> None:
    """Write 8-bit G.711 DATA as a mono WAV with fmt, fact and data chunks."""
    fmt = struct.pack("<HHIIHHH", format_tag, 1, rate, rate, 1, 8, 0)
    fact = struct.pack("<I", len(data))
    pad = b"\0" if len(data) % 2 else b""
    chunks = (
        make_chunk(b"fmt ", fmt)
        + make_chunk(b"fact", fact)
        + make_chunk(b"data", data)
        + pad
    )
    Path(path).write_bytes(
        b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks
    )


def make_chunk(chunk_id: bytes, payload: bytes) -> bytes:
    """Return a RIFF chunk header followed by PAYLOAD (unpadded)."""
    return chunk_id + struct.pack("<I", len(payload)) + payload


def encode_ulaw(sample: int) -> int:
    """Return the G.711 mu-law byte for a signed 16-bit SAMPLE."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = magnitude.bit_length() - 8
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | exponent << 4 | mantissa) & 0xFF


def encode_alaw(sample: int) -> int:
    """Return the G.711 A-law byte for a signed 16-bit SAMPLE."""
    sign = 0x80 if sample >= 0 else 0
    magnitude = min(sample if sample >= 0 else -sample - 1, 32767) >> 3
    if magnitude < 32:
        exponent, mantissa = 0, magnitude >> 1
    else:
        exponent = magnitude.bit_length() - 5
        mantissa = (magnitude >> exponent) & 0x0F
    return (sign | exponent << 4 | mantissa) ^ 0x55


def write_sample_set(folder) -> dict[str, str]:
    """Write fax.tif and voice.wav into FOLDER and return their paths by kind."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"fax": folder / "fax.tif", "voice": folder / "voice.wav"}
    write_fax_tiff(paths["fax"], pages=2)
    write_wav(paths["voice"], seconds=3.0)
    return {kind: str(path) for kind, path in paths.items()}


def main(argv=None) -> int:
    """Write the sample named on the command line; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m ums_core.samples", description="Write synthetic samples."
    )
    parser.add_argument("kind", choices=("fax", "voice", "all"))
    parser.add_argument("path", help="file to write (folder for 'all')")
    args = parser.parse_args(argv)
    try:
        if args.kind == "fax":
            write_fax_tiff(args.path)
        elif args.kind == "voice":
            write_wav(args.path)
        else:
            write_sample_set(args.path)
    except OSError as exc:
        sys.stderr.write(f"Error: cannot write {args.path}: {exc.strerror or exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
