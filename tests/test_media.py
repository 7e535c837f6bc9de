"""Tests for ums_core.media: probing and converting fax and voice messages."""

import io
import os
import re
import struct
from pathlib import Path

import img2pdf
import pytest
from PIL import Image
from pypdf import PdfReader, PdfWriter

from ums_core import media_fax, samples, tiff_decode
from ums_core.errors import MediaError
from ums_core.media import (
    MediaInfo,
    fax_to_pdf,
    fax_to_tiff,
    probe_fax,
    probe_voice,
)

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("UMS_CORPUS", REPO.parent / "shared" / "corpus"))

# Pillow warns about the truncated files these tests make on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

# name -> (pages, first page size in points) or the expected error substring
FAX_CORPUS = {
    "1page.tif": (1, (610, 792)),
    "CCITT_1.TIF": (1, (622, 855)),
    "CCITTgetNextChangingElement.tif": (1, (576, 47)),
    "G3-Premature-EOL.tif": (1, (610, 852)),
    "ccitt.pdf": (1, (612, 792)),
    "epson.pdf": (1, (595, 841)),
    "fax2d.tif": (1, (610, 795)),
    "fivepages-scan-causingerrors.tif": (5, (595, 844)),
    "g3test.g3": "raw G3 data without a TIFF container is not accepted",
    "g3test.tif": (1, (610, 810)),
    "incorrect-compression-rle-as-g3.tif": "(mislabelled compression)",
    "kcs.pdf": (1, (459, 223)),
    "test-single-gray-compression-type-2.tiff": (1, (610, 842)),
}
# name -> (duration, detail) or the expected error substring
VOICE_CORPUS = {
    "alaw.wav": (3.55, "G.711 A-law 8000 Hz stereo"),
    "data_chunk_truncated.wav": (
        "WAV data chunk truncated: header declares 100000 bytes, 2240 present"
    ),
    "empty.wav": "not a WAV file: file is empty",
    "gsm_6_10.wav": (0.1, "GSM 6.10 44100 Hz mono"),
    "incomplete_riff_header.wav": "not a WAV file: RIFF header truncated (4 bytes)",
    "monkey.au": "Sun/NeXT .au audio file",
    "no_audio_data_uncompressed.wav": "no audio (data chunk is empty)",
    "talking.wav": (10.26, "PCM 16-bit 8000 Hz mono"),
    "vm-message.gsm": "headerless raw GSM 06.10 audio",
    "vm-message.ulaw": "not a WAV file: no RIFF header",
    "vm-message.wav": (0.95, "PCM 16-bit 8000 Hz mono"),
}


def list_corpus(folder: str, expected: dict) -> list[str]:
    """Return every expected name plus every file present in the corpus FOLDER."""
    present = set(os.listdir(CORPUS / folder)) if (CORPUS / folder).is_dir() else set()
    return sorted(present | set(expected))


def open_corpus(folder: str, name: str) -> Path:
    """Return the corpus file, skipping the test when the corpus is missing."""
    if not (CORPUS / folder).is_dir():
        pytest.skip(f"corpus not found at {CORPUS}")
    return CORPUS / folder / name


def read_pdf_sizes(path) -> list[tuple[float, float]]:
    """Return each page's (width, height) in points."""
    pages = PdfReader(path).pages
    return [(float(page.mediabox.width), float(page.mediabox.height)) for page in pages]


def read_ccitt_strip(compression: str, height: int = 200) -> bytes:
    """Return a small bilevel page as one strip of row-independent CCITT data."""
    page = Image.new("1", (1728, height), 1)
    page.paste(0, (100, 40, 900, 120))
    buffer = io.BytesIO()
    page.save(buffer, format="TIFF", compression=compression)
    with Image.open(buffer) as image:
        strips = zip(image.tag_v2[273], image.tag_v2[279], strict=True)
    data = buffer.getvalue()
    return b"".join(data[offset : offset + count] for offset, count in strips)


def build_tiff(strip: bytes, width: int = 1728, height: int = 200, **tags) -> bytes:
    """Return a one-strip little-endian TIFF; TAGS like t259=3 override, None drops."""
    # Pillow encodes its strips for Photometric 1 (MinIsBlack).
    entries = {256: width, 257: height, 258: 1, 259: 2, 262: 1, 277: 1, 278: height}
    entries.update({279: len(strip), 282: 204, 283: 98, 296: 2})
    entries.update({int(name[1:]): value for name, value in tags.items()})
    entries[273] = 0
    entries = {
        tag: value for tag, value in sorted(entries.items()) if value is not None
    }
    rationals = [tag for tag in entries if tag in (282, 283)]
    rational_at = 8 + 2 + 12 * len(entries) + 4
    strip_at = rational_at + 8 * len(rationals)
    entries[273] = strip_at
    ifd = struct.pack("<H", len(entries))
    extra = b""
    for tag, value in entries.items():
        if tag in rationals:
            ifd += struct.pack("<HHII", tag, 5, 1, rational_at + len(extra))
            extra += struct.pack("<II", value, 1)
        else:
            ifd += struct.pack("<HHII", tag, 4, 1, value)
    return b"II*\0" + struct.pack("<I", 8) + ifd + b"\0\0\0\0" + extra + strip


def build_wav(*chunks: tuple[bytes, bytes], form: bytes = b"WAVE") -> bytes:
    """Return a RIFF file holding CHUNKS (id, payload), odd sizes padded."""
    body = b""
    for chunk_id, payload in chunks:
        body += chunk_id + struct.pack("<I", len(payload)) + payload
        body += b"\0" * (len(payload) % 2)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + form + body


def make_fmt(tag=1, channels=1, rate=8000, byte_rate=16000, align=2, bits=16):
    """Return a 16-byte fmt chunk payload."""
    return struct.pack("<HHIIHH", tag, channels, rate, byte_rate, align, bits)


@pytest.fixture
def g3_fax(tmp_path) -> Path:
    path = tmp_path / "g3.tif"
    samples.write_fax_tiff(path, pages=2)
    return path


@pytest.fixture
def g4_fine_fax(tmp_path) -> Path:
    path = tmp_path / "g4fine.tif"
    samples.write_fax_tiff(path, pages=3, fine=True, compression="group4")
    return path


def write_bytes(tmp_path, name: str, data: bytes) -> Path:
    """Write DATA to a file NAME in TMP_PATH and return its path."""
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- probe_fax ---------------------------------------------------------------


def test_probe_fax_describes_g3_normal_tiff(g3_fax):
    assert probe_fax(g3_fax) == MediaInfo(
        "fax", "image/tiff", ".tif", 2, None, "CCITT G3 1-D, 204x98 dpi, 2 pages"
    )


def test_probe_fax_describes_g4_fine_tiff(g4_fine_fax):
    info = probe_fax(g4_fine_fax)
    assert (info.pages, info.detail) == (3, "CCITT G4, 204x196 dpi, 3 pages")


@pytest.mark.parametrize("compression", ["group3", "group4"])
@pytest.mark.parametrize("pages", [1, 4])
def test_probe_fax_counts_every_page(tmp_path, compression, pages):
    path = tmp_path / "fax.tif"
    samples.write_fax_tiff(path, pages=pages, compression=compression)
    assert probe_fax(path).pages == pages


def test_probe_fax_accepts_mh_rle_tiff(tmp_path):
    path = write_bytes(tmp_path, "mh.tif", build_tiff(read_ccitt_strip("tiff_ccitt")))
    assert probe_fax(path).detail == "CCITT MH (RLE), 204x98 dpi, 1 page"


@pytest.mark.parametrize(
    ("tags", "detail"),
    [
        ({"t296": 1}, "204x98 dpi (assumed)"),
        ({"t296": None}, "204x98 dpi (assumed)"),
        ({"t282": None, "t283": None}, "204x98 dpi (assumed)"),
        ({"t296": 3, "t282": 80, "t283": 77}, "203.2x195.58 dpi, 1 page"),
    ],
)
def test_probe_fax_reads_or_assumes_resolution(tmp_path, tags, detail):
    data = build_tiff(read_ccitt_strip("tiff_ccitt"), **tags)
    assert detail in probe_fax(write_bytes(tmp_path, "fax.tif", data)).detail


def test_probe_fax_assumes_fine_resolution_for_long_pages(tmp_path):
    strip = read_ccitt_strip("tiff_ccitt", height=2000)
    data = build_tiff(strip, height=2000, t296=1)
    assert (
        "204x196 dpi (assumed)"
        in probe_fax(write_bytes(tmp_path, "f.tif", data)).detail
    )


def test_probe_fax_accepts_pdf(tmp_path, g3_fax):
    fax_to_pdf(g3_fax, tmp_path / "fax.pdf")
    info = probe_fax(tmp_path / "fax.pdf")
    assert (info.content_type, info.extension, info.pages) == (
        "application/pdf",
        ".pdf",
        2,
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a fax: file is empty"),
        (
            b"\x13\x37\xbe\xef" * 40,
            "not a fax: unknown format (starts with 13 37 be ef)",
        ),
        (b"Hello, this is not a fax.\n", "not a fax: this is a text file"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "not a fax: this is a PNG image"),
        (b"II*\0", "not a fax: the TIFF structure is damaged"),
        (b"MM\0*\0\0\0\x08\0\0", "not a fax: the TIFF structure is damaged"),
        (b"%PDF-1.4\n%garbage\n", "not a fax: the PDF cannot be read"),
    ],
)
def test_probe_fax_refuses_bad_bytes(tmp_path, data, message):
    with pytest.raises(MediaError, match="^" + re.escape(message)):
        probe_fax(write_bytes(tmp_path, "bad.tif", data))


def test_probe_fax_refuses_missing_file(tmp_path):
    with pytest.raises(MediaError, match="cannot read .*No such file"):
        probe_fax(tmp_path / "absent.tif")


def test_probe_fax_refuses_wav(tmp_path):
    samples.write_wav(tmp_path / "voice.wav", seconds=0.1)
    with pytest.raises(MediaError, match="this is a WAV audio file"):
        probe_fax(tmp_path / "voice.wav")


def test_probe_fax_refuses_raw_g3_stream(tmp_path):
    path = write_bytes(tmp_path, "fax.g3", read_ccitt_strip("group3"))
    with pytest.raises(MediaError, match="^raw G3 data without a TIFF container"):
        probe_fax(path)


def test_probe_fax_refuses_greyscale_tiff(tmp_path):
    Image.new("L", (100, 100), 128).save(tmp_path / "grey.tif")
    with pytest.raises(MediaError, match="page 1 is 8-bit greyscale, a fax is bilevel"):
        probe_fax(tmp_path / "grey.tif")


@pytest.mark.parametrize(
    "decoder, reason",
    [
        ("libtiff", "TIFFFillStrip: Invalid strip byte count 0, strip 1"),
        ("pillow", "decoder error -2"),
    ],
)
def test_probe_fax_refuses_image_length_beyond_data(
    tmp_path, monkeypatch, decoder, reason
):
    if decoder == "libtiff" and not tiff_decode.available():
        pytest.skip("no libtiff 4.5 here")
    if decoder == "pillow":
        monkeypatch.setattr(tiff_decode, "available", lambda: False)
    data = build_tiff(read_ccitt_strip("tiff_ccitt"), t257=3000)
    with pytest.raises(MediaError) as caught:
        probe_fax(write_bytes(tmp_path, "liar.tif", data))
    assert str(caught.value) == (
        f"fax page 1 cannot be decoded: {reason} (corrupt CCITT data)"
    )


@pytest.mark.parametrize("garbage", [b"\xff", b"\x00", b"\x5a\xc3"])
def test_libtiff_and_pillow_agree_on_garbled_pages(tmp_path, monkeypatch, garbage):
    samples.write_fax_tiff(tmp_path / "fax.tif", pages=2)
    with Image.open(tmp_path / "fax.tif") as image:
        image.seek(1)
        offset, count = image.tag_v2[273][0], image.tag_v2[279][0]
    data = bytearray((tmp_path / "fax.tif").read_bytes())
    data[offset + 40 : offset + count] = (garbage * count)[: count - 40]
    path = write_bytes(tmp_path, "garbled.tif", bytes(data))

    def verdict():
        try:
            return len(media_fax.inspect_tiff(path))
        except MediaError as exc:
            return str(exc).split(":")[0]

    fast = verdict()
    monkeypatch.setattr(tiff_decode, "available", lambda: False)
    assert verdict() == fast


def test_libtiff_and_pillow_accept_the_same_good_pages(tmp_path, monkeypatch):
    samples.write_fax_tiff(tmp_path / "g3.tif", pages=2)
    samples.write_fax_tiff(tmp_path / "g4.tif", pages=2, compression="group4")
    fast = [media_fax.inspect_tiff(tmp_path / n) for n in ("g3.tif", "g4.tif")]
    monkeypatch.setattr(tiff_decode, "available", lambda: False)
    slow = [media_fax.inspect_tiff(tmp_path / n) for n in ("g3.tif", "g4.tif")]
    assert fast == slow


def test_probe_fax_refuses_strip_beyond_end_of_file(tmp_path):
    data = build_tiff(read_ccitt_strip("tiff_ccitt"), t279=100_000)
    with pytest.raises(MediaError, match="fax page 1 is truncated: its data ends at"):
        probe_fax(write_bytes(tmp_path, "liar.tif", data))


def test_probe_fax_refuses_mislabelled_g3(tmp_path):
    data = build_tiff(read_ccitt_strip("tiff_ccitt"), t259=3, t292=4)
    with pytest.raises(MediaError, match=r"\(mislabelled compression\)$"):
        probe_fax(write_bytes(tmp_path, "mislabelled.tif", data))


def test_probe_fax_names_the_page_with_missing_strips(tmp_path):
    samples.write_fax_tiff(tmp_path / "fax.tif", pages=3)
    data = (tmp_path / "fax.tif").read_bytes()
    with pytest.raises(MediaError, match="^fax page 3 is damaged"):
        probe_fax(write_bytes(tmp_path, "cut.tif", data[:-100]))


def test_probe_fax_refuses_truncated_tiff(tmp_path, g3_fax):
    data = g3_fax.read_bytes()
    with pytest.raises(MediaError, match="^not a fax: the TIFF structure is damaged"):
        probe_fax(write_bytes(tmp_path, "cut.tif", data[: len(data) // 2]))


def test_probe_fax_refuses_encrypted_pdf(tmp_path):
    writer = PdfWriter()
    writer.add_blank_page(612, 792)
    writer.encrypt("secret")
    writer.write(tmp_path / "locked.pdf")
    with pytest.raises(MediaError, match="^not a fax: the PDF is encrypted"):
        probe_fax(tmp_path / "locked.pdf")


def test_probe_fax_refuses_truncated_pdf(tmp_path, g3_fax):
    fax_to_pdf(g3_fax, tmp_path / "fax.pdf")
    data = (tmp_path / "fax.pdf").read_bytes()
    with pytest.raises(MediaError, match="^not a fax: the PDF cannot be read"):
        probe_fax(write_bytes(tmp_path, "cut.pdf", data[: len(data) // 2]))


# --- fax_to_pdf ----------------------------------------------------------------


def test_fax_to_pdf_sizes_normal_page_like_a4_or_letter(tmp_path):
    Image.new("1", (1728, 1100), 1).save(
        tmp_path / "fax.tif", compression="group3", dpi=(204, 98)
    )
    assert fax_to_pdf(tmp_path / "fax.tif", tmp_path / "fax.pdf") == 1
    [(width, height)] = read_pdf_sizes(tmp_path / "fax.pdf")
    assert width == pytest.approx(1728 / 204 * 72, abs=0.5)
    assert height == pytest.approx(1100 / 98 * 72, abs=0.5)
    assert 8.4 < width / 72 < 8.6 and 11.1 < height / 72 < 11.3


def test_fax_to_pdf_keeps_every_fine_page(tmp_path, g4_fine_fax):
    assert fax_to_pdf(g4_fine_fax, tmp_path / "fax.pdf") == 3
    sizes = read_pdf_sizes(tmp_path / "fax.pdf")
    assert sizes == [pytest.approx((1728 / 204 * 72, 2286 / 196 * 72), abs=0.5)] * 3


@pytest.mark.parametrize("unit", [1, None])
def test_fax_to_pdf_assumes_fax_resolution_without_unit(tmp_path, unit):
    data = build_tiff(
        read_ccitt_strip("tiff_ccitt", height=1100), height=1100, t296=unit
    )
    fax_to_pdf(write_bytes(tmp_path, "fax.tif", data), tmp_path / "fax.pdf")
    [size] = read_pdf_sizes(tmp_path / "fax.pdf")
    assert size == pytest.approx((1728 / 204 * 72, 1100 / 98 * 72), abs=0.5)


def test_fax_to_pdf_reencodes_pages_img2pdf_refuses(tmp_path, monkeypatch, g4_fine_fax):
    real_convert = img2pdf.convert
    seen = []

    def refuse_tiff_bytes(images, **kwargs):
        seen.append(type(images))
        if isinstance(images, bytes):
            raise img2pdf.ImageOpenError("refused for the test")
        return real_convert(images, **kwargs)

    monkeypatch.setattr(media_fax.img2pdf, "convert", refuse_tiff_bytes)
    assert fax_to_pdf(g4_fine_fax, tmp_path / "fax.pdf") == 3
    assert seen == [bytes, list]
    sizes = read_pdf_sizes(tmp_path / "fax.pdf")
    assert sizes == [pytest.approx((609.9, 839.8), abs=0.5)] * 3


@pytest.mark.parametrize("photometric", [0, 1, None])
@pytest.mark.parametrize(
    ("compression", "encoder"), [(2, "tiff_ccitt"), (3, "group3"), (4, "group4")]
)
def test_fax_to_pdf_keeps_the_pixels(tmp_path, compression, encoder, photometric):
    """Every CCITT coding and polarity reaches the PDF unchanged, img2pdf or not."""
    strip = read_ccitt_strip(encoder)
    data = build_tiff(strip, t259=compression, t262=photometric)
    source = write_bytes(tmp_path, "fax.tif", data)
    fax_to_pdf(source, tmp_path / "fax.pdf")
    fax_to_tiff(tmp_path / "fax.pdf", tmp_path / "back.tif")
    with Image.open(source) as original, Image.open(tmp_path / "back.tif") as back:
        assert back.tobytes() == original.tobytes()


def test_fax_to_pdf_copies_pdf_input(tmp_path, g3_fax):
    fax_to_pdf(g3_fax, tmp_path / "first.pdf")
    assert fax_to_pdf(tmp_path / "first.pdf", tmp_path / "second.pdf") == 2
    assert (tmp_path / "second.pdf").read_bytes() == (
        tmp_path / "first.pdf"
    ).read_bytes()


def test_fax_to_pdf_leaves_no_file_on_error(tmp_path):
    source = write_bytes(tmp_path, "bad.tif", b"II*\0garbage")
    with pytest.raises(MediaError):
        fax_to_pdf(source, tmp_path / "out.pdf")
    assert sorted(os.listdir(tmp_path)) == ["bad.tif"]


def test_fax_to_pdf_refuses_unwritable_target(tmp_path, g3_fax):
    with pytest.raises(MediaError, match="^cannot write"):
        fax_to_pdf(g3_fax, tmp_path / "missing" / "out.pdf")


# --- fax_to_tiff ---------------------------------------------------------------


def test_fax_to_tiff_copies_tiff_input(tmp_path, g3_fax):
    assert fax_to_tiff(g3_fax, tmp_path / "copy.tif") == 2
    assert (tmp_path / "copy.tif").read_bytes() == g3_fax.read_bytes()


def test_fax_to_tiff_extracts_ccitt_pdf_pages(tmp_path, g3_fax):
    fax_to_pdf(g3_fax, tmp_path / "fax.pdf")
    assert fax_to_tiff(tmp_path / "fax.pdf", tmp_path / "back.tif") == 2
    with Image.open(g3_fax) as original, Image.open(tmp_path / "back.tif") as back:
        assert back.n_frames == 2
        for index in range(2):
            original.seek(index)
            back.seek(index)
            assert back.info["compression"] == "group4"
            assert back.info["dpi"] == (204, 98)
            assert back.tobytes() == original.tobytes()


def test_fax_to_tiff_refuses_pdf_without_ccitt_image(tmp_path):
    Image.new("RGB", (200, 100), "red").save(tmp_path / "photo.pdf")
    with pytest.raises(MediaError, match="page 1 is not a CCITT fax image .*DCTDecode"):
        fax_to_tiff(tmp_path / "photo.pdf", tmp_path / "out.tif")
    assert not (tmp_path / "out.tif").exists()


def test_fax_to_tiff_refuses_pdf_page_without_image(tmp_path):
    writer = PdfWriter()
    writer.add_blank_page(612, 792)
    writer.write(tmp_path / "blank.pdf")
    with pytest.raises(
        MediaError, match="^cannot convert this PDF to TIFF: page 1 has 0"
    ):
        fax_to_tiff(tmp_path / "blank.pdf", tmp_path / "out.tif")


# --- probe_voice ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "rate", "detail"),
    [
        ("pcm", 8000, "PCM 16-bit 8000 Hz mono"),
        ("pcm", 16000, "PCM 16-bit 16000 Hz mono"),
        ("ulaw", 8000, "G.711 mu-law 8000 Hz mono"),
        ("alaw", 8000, "G.711 A-law 8000 Hz mono"),
    ],
)
def test_probe_voice_describes_sample(tmp_path, encoding, rate, detail):
    samples.write_wav(tmp_path / "v.wav", seconds=1.25, encoding=encoding, rate=rate)
    assert probe_voice(tmp_path / "v.wav") == MediaInfo(
        "voice", "audio/wav", ".wav", None, 1.25, detail
    )


def test_probe_voice_reads_chunks_in_any_order(tmp_path):
    data = build_wav(
        (b"LIST", b"INFOodd"),
        (b"fact", struct.pack("<I", 8000)),
        (b"fmt ", make_fmt(tag=7, byte_rate=8000, align=1, bits=8)),
        (b"data", b"\xff" * 16001),
        (b"id3 ", b"ID3\x03\0\0\0\0\0\0"),
    )
    assert probe_voice(write_bytes(tmp_path, "v.wav", data)).duration == 1.0


def test_probe_voice_skips_chunks_after_data(tmp_path):
    data = build_wav(
        (b"fmt ", make_fmt()), (b"data", b"\0" * 8000), (b"LIST", b"x" * 33)
    )
    assert probe_voice(write_bytes(tmp_path, "v.wav", data)).duration == 0.5


def test_probe_voice_measures_pcm_from_data_size(tmp_path):
    data = build_wav(
        (b"fmt ", make_fmt()), (b"fact", struct.pack("<I", 1)), (b"data", b"\0" * 800)
    )
    assert probe_voice(write_bytes(tmp_path, "v.wav", data)).duration == 0.05


def test_probe_voice_accepts_extensible_pcm(tmp_path):
    extension = struct.pack("<HHI", 22, 16, 4) + b"\x01\x00" + b"\0" * 14
    data = build_wav((b"fmt ", make_fmt(tag=0xFFFE) + extension), (b"data", b"\0" * 16))
    assert probe_voice(write_bytes(tmp_path, "v.wav", data)).detail.startswith("PCM")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a WAV file: file is empty"),
        (b"RIFF", "not a WAV file: RIFF header truncated (4 bytes)"),
        (b"RIFF\x10\0\0\0WA", "not a WAV file: RIFF header truncated (10 bytes)"),
        (b"RIFF\x04\0\0\0AVI ", "not a WAV file: RIFF form type is 'AVI ', not 'WAVE'"),
        (b".snd\0\0\0\x1c" + b"\0" * 40, "not a WAV file: this is a Sun/NeXT .au"),
        (
            b"\x7f\xfe\x7e" * 100,
            "not a WAV file: no RIFF header (starts with 7f fe 7e 7f",
        ),
        (bytes([0xD5] + [0] * 32) * 3, "headerless raw GSM 06.10 audio"),
        (build_wav((b"data", b"\0" * 8)), "not a WAV file: it has no fmt chunk"),
        (
            build_wav((b"fmt ", make_fmt())),
            "voice message has no audio (no data chunk)",
        ),
        (build_wav((b"fmt ", make_fmt()[:10])), "WAV fmt chunk is too short: 10 bytes"),
        (
            build_wav((b"fmt ", make_fmt()))[:30],
            "WAV fmt chunk truncated: 10 of 16 bytes present",
        ),
        (
            build_wav((b"fmt ", make_fmt()), (b"LIST", b"x" * 40))[:60],
            "WAV file truncated inside its 'LIST' chunk, before any audio",
        ),
        (
            build_wav((b"fmt ", make_fmt()), (b"data", b"")),
            "voice message has no audio (data chunk is empty)",
        ),
        (
            build_wav((b"fmt ", make_fmt(tag=0x55)), (b"data", b"\0" * 8)),
            "unsupported WAV format: MPEG Layer 3 (MP3) (format tag 0x0055)",
        ),
        (
            build_wav((b"fmt ", make_fmt(tag=0x1234)), (b"data", b"\0" * 8)),
            "unsupported WAV format: unknown codec (format tag 0x1234)",
        ),
        (
            build_wav((b"fmt ", make_fmt(rate=0)), (b"data", b"\0" * 8)),
            "WAV fmt chunk is invalid: 1 channels at 0 Hz",
        ),
    ],
)
def test_probe_voice_refuses_bad_bytes(tmp_path, data, message):
    with pytest.raises(MediaError) as caught:
        probe_voice(write_bytes(tmp_path, "bad.wav", data))
    assert message in str(caught.value)


def test_probe_voice_refuses_data_size_that_lies(tmp_path):
    samples.write_wav(tmp_path / "v.wav", seconds=0.1)
    data = bytearray((tmp_path / "v.wav").read_bytes())
    data[40:44] = struct.pack("<I", 100_000)
    with pytest.raises(MediaError) as caught:
        probe_voice(write_bytes(tmp_path, "liar.wav", bytes(data)))
    assert str(caught.value) == (
        "WAV data chunk truncated: header declares 100000 bytes, 1600 present"
    )


def test_probe_voice_refuses_missing_file(tmp_path):
    with pytest.raises(MediaError, match="^cannot read"):
        probe_voice(tmp_path / "absent.wav")


# --- the shared corpus ---------------------------------------------------------


@pytest.mark.parametrize("name", list_corpus("fax", FAX_CORPUS))
def test_corpus_fax_matches_expected_outcome(tmp_path, name):
    path = open_corpus("fax", name)
    assert name in FAX_CORPUS, f"no expected outcome written down for fax/{name}"
    expected = FAX_CORPUS[name]
    if isinstance(expected, str):
        with pytest.raises(MediaError, match=re.escape(expected)):
            probe_fax(path)
        with pytest.raises(MediaError):
            fax_to_pdf(path, tmp_path / "out.pdf")
        assert not (tmp_path / "out.pdf").exists()
        return
    pages, first_size = expected
    assert probe_fax(path).pages == pages
    assert fax_to_pdf(path, tmp_path / "out.pdf") == pages
    sizes = read_pdf_sizes(tmp_path / "out.pdf")
    assert len(sizes) == pages
    assert sizes[0] == pytest.approx(first_size, abs=1)
    assert fax_to_tiff(path, tmp_path / "out.tif") == pages
    with Image.open(tmp_path / "out.tif") as image:
        assert image.n_frames == pages


@pytest.mark.parametrize("name", list_corpus("voice", VOICE_CORPUS))
def test_corpus_voice_matches_expected_outcome(name):
    path = open_corpus("voice", name)
    assert name in VOICE_CORPUS, f"no expected outcome written down for voice/{name}"
    expected = VOICE_CORPUS[name]
    if isinstance(expected, str):
        with pytest.raises(MediaError, match=re.escape(expected)):
            probe_voice(path)
        return
    duration, detail = expected
    info = probe_voice(path)
    assert info.duration == pytest.approx(duration, abs=0.05)
    assert info.detail == detail


# --- G3 1-D pages carried into the PDF unchanged -------------------------------


@pytest.mark.parametrize("name", ["fax2d.tif", "g3test.tif", "G3-Premature-EOL.tif"])
def test_g3_pages_go_into_the_pdf_pixel_for_pixel(tmp_path, name):
    """FillOrder 2 and fill bits included: the PDF decodes to the TIFF's pixels."""
    check_g3_embedding(open_corpus("fax", name), tmp_path)


def test_generated_g3_fax_is_embedded_not_reencoded(tmp_path, g3_fax):
    pdf = check_g3_embedding(g3_fax, tmp_path)
    assert b"/CCITTFaxDecode" in pdf and b"/K 0" in pdf


def test_g4_and_g3_2d_pages_are_left_to_img2pdf(g4_fine_fax):
    pages = media_fax.inspect_tiff(g4_fine_fax)
    assert media_fax.embed_g3_pages(g4_fine_fax.read_bytes(), pages) is None


def check_g3_embedding(path: Path, tmp_path: Path) -> bytes:
    from PIL import ImageChops

    pages = media_fax.inspect_tiff(path)
    pdf = media_fax.embed_g3_pages(path.read_bytes(), pages)
    assert pdf is not None
    fax_to_pdf(path, tmp_path / "out.pdf", checked=True)
    assert (tmp_path / "out.pdf").read_bytes() == pdf
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == len(pages)
    with Image.open(path) as image:
        for index, page in enumerate(reader.pages):
            image.seek(index)
            [shown] = page.images
            pixels = shown.image.convert("L")
            assert not ImageChops.difference(image.convert("L"), pixels).getbbox()
            width = float(page.mediabox.width)
            assert width == pytest.approx(pages[index].width * 72 / pages[index].dpi[0])
    return pdf


def patch_ifd_values(data: bytes, page: int, values: dict[int, int]) -> bytes:
    """Return little-endian TIFF DATA with inline tag VALUES set on PAGE (from 0)."""
    out = bytearray(data)
    (offset,) = struct.unpack_from("<I", out, 4)
    for _ in range(page):
        (count,) = struct.unpack_from("<H", out, offset)
        (offset,) = struct.unpack_from("<I", out, offset + 2 + 12 * count)
    (count,) = struct.unpack_from("<H", out, offset)
    for index in range(count):
        at = offset + 2 + 12 * index
        tag, kind = struct.unpack_from("<HH", out, at)
        if tag in values:
            struct.pack_into("<HHII", out, at, tag, 4, 1, values[tag])
    return bytes(out)


@pytest.mark.parametrize("decoder", ["libtiff", "pillow"])
def test_probe_fax_refuses_a_giant_second_page_before_decoding(
    tmp_path, monkeypatch, decoder
):
    if decoder == "pillow":
        monkeypatch.setattr(tiff_decode, "available", lambda: False)
    samples.write_fax_tiff(tmp_path / "fax.tif", pages=2)
    data = patch_ifd_values(
        (tmp_path / "fax.tif").read_bytes(), 1, {256: 16000, 257: 16000}
    )
    with pytest.raises(MediaError, match=r"^fax page 2 is too large \(16000x16000"):
        probe_fax(write_bytes(tmp_path, "giant.tif", data))


def test_libtiff_messages_are_one_line_without_the_folder(tmp_path):
    if not tiff_decode.available():
        pytest.skip("no libtiff 4.5 here")
    data = build_tiff(read_ccitt_strip("tiff_ccitt"), t257=3000)
    folder = tmp_path / "secret-folder"
    folder.mkdir()
    path = folder / "evil\nFAKE LOG LINE \x1b[2J.tif"
    path.write_bytes(data)
    with pytest.raises(MediaError) as caught:
        probe_fax(path)
    text = str(caught.value)
    assert text.startswith("fax page 1 cannot be decoded: ")
    assert "secret-folder" not in text
    assert not any(ord(c) < 32 or ord(c) == 127 for c in text)


def test_probe_fax_refuses_a_fifo_without_waiting_for_a_writer(tmp_path):
    os.mkfifo(tmp_path / "fax.tif")
    with pytest.raises(MediaError, match="not a regular file"):
        probe_fax(tmp_path / "fax.tif")


def test_compose_reuses_the_pages_probe_found_and_makes_the_same_pdf(tmp_path):
    samples.write_fax_tiff(tmp_path / "in.tif", pages=3)
    probe_fax(tmp_path / "in.tif")
    copy = tmp_path / "stored.tif"
    copy.write_bytes((tmp_path / "in.tif").read_bytes())
    media_fax.carry_pages(tmp_path / "in.tif", copy)
    assert media_fax.known_pages(copy) == media_fax.known_pages(tmp_path / "in.tif")
    reused, count = media_fax.convert_checked_tiff_to_pdf(copy)
    fresh = tmp_path / "fresh.tif"
    fresh.write_bytes(copy.read_bytes())
    assert media_fax.known_pages(fresh) is None
    assert (
        media_fax.convert_checked_tiff_to_pdf(fresh) == (reused, count) and count == 3
    )


def test_a_changed_file_is_read_again_not_taken_from_memory(tmp_path):
    samples.write_fax_tiff(tmp_path / "fax.tif", pages=2)
    probe_fax(tmp_path / "fax.tif")
    assert media_fax.known_pages(tmp_path / "fax.tif") is not None
    samples.write_fax_tiff(tmp_path / "fax.tif", pages=1)
    assert media_fax.known_pages(tmp_path / "fax.tif") is None
    assert media_fax.convert_checked_tiff_to_pdf(tmp_path / "fax.tif")[1] == 1
