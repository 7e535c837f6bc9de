"""Tests for ums_core.samples: the synthetic fax and voice generators."""

import struct
import subprocess
import sys
import wave
from pathlib import Path

import pytest
from PIL import Image

from ums_core import samples
from ums_core.media import probe_fax, probe_voice

REPO = Path(__file__).resolve().parents[1]


def decode_ulaw(code: int) -> int:
    """Return the linear value of a G.711 mu-law byte (ITU formula)."""
    code = ~code & 0xFF
    exponent = (code >> 4) & 0x07
    magnitude = (((code & 0x0F) << 3) + 0x84) << exponent
    return 0x84 - magnitude if code & 0x80 else magnitude - 0x84


def decode_alaw(code: int) -> int:
    """Return the linear value of a G.711 A-law byte (ITU formula)."""
    code ^= 0x55
    exponent = (code >> 4) & 0x07
    magnitude = ((code & 0x0F) << 4) + 8
    if exponent:
        magnitude = (magnitude + 0x100) << (exponent - 1)
    return magnitude if code & 0x80 else -magnitude


def read_riff_chunks(path) -> dict[bytes, bytes]:
    """Return each chunk's payload by id from a small RIFF file."""
    data = Path(path).read_bytes()
    chunks = {}
    offset = 12
    while offset + 8 <= len(data):
        chunk_id, size = struct.unpack("<4sI", data[offset : offset + 8])
        chunks[chunk_id] = data[offset + 8 : offset + 8 + size]
        offset += 8 + size + size % 2
    return chunks


def test_write_fax_tiff_writes_normal_g3_pages(tmp_path):
    samples.write_fax_tiff(tmp_path / "fax.tif", text="Hello", pages=2)
    with Image.open(tmp_path / "fax.tif") as image:
        assert image.n_frames == 2
        for index in range(2):
            image.seek(index)
            assert (image.mode, image.size) == ("1", (1728, 1143))
            assert image.info["compression"] == "group3"
            assert image.info["dpi"] == (204, 98)
            assert image.tag_v2[296] == 2


def test_write_fax_tiff_writes_fine_g4_pages(tmp_path):
    samples.write_fax_tiff(tmp_path / "fax.tif", fine=True, compression="group4")
    with Image.open(tmp_path / "fax.tif") as image:
        assert image.size == (1728, 2286)
        assert image.info["compression"] == "group4"
        assert image.info["dpi"] == (204, 196)


def test_write_fax_tiff_draws_the_text(tmp_path):
    samples.write_fax_tiff(tmp_path / "short.tif", text="x")
    samples.write_fax_tiff(tmp_path / "long.tif", text="a longer line of text " * 8)
    with (
        Image.open(tmp_path / "short.tif") as short,
        Image.open(tmp_path / "long.tif") as long,
    ):
        assert short.histogram()[0] < long.histogram()[0]
        assert 0 < short.histogram()[0] < short.width * short.height // 10


@pytest.mark.parametrize(
    ("arguments", "message"),
    [({"compression": "jpeg"}, "compression must be"), ({"pages": 0}, "one page")],
)
def test_write_fax_tiff_refuses_bad_arguments(tmp_path, arguments, message):
    with pytest.raises(ValueError, match=message):
        samples.write_fax_tiff(tmp_path / "fax.tif", **arguments)


def test_write_wav_writes_16_bit_pcm(tmp_path):
    samples.write_wav(tmp_path / "v.wav", seconds=1.5, rate=16000)
    with wave.open(str(tmp_path / "v.wav")) as audio:
        assert audio.getparams()[:4] == (1, 2, 16000, 24000)
        frames = audio.readframes(audio.getnframes())
    values = struct.unpack(f"<{len(frames) // 2}h", frames)
    assert max(values) > 5000 and min(values) < -5000
    assert values.count(0) > len(values) // 20


@pytest.mark.parametrize(("encoding", "tag"), [("ulaw", 7), ("alaw", 6)])
def test_write_wav_writes_g711_with_fact_chunk(tmp_path, encoding, tag):
    samples.write_wav(tmp_path / "v.wav", seconds=0.5, encoding=encoding)
    chunks = read_riff_chunks(tmp_path / "v.wav")
    fmt = struct.unpack("<HHIIHH", chunks[b"fmt "][:16])
    assert fmt == (tag, 1, 8000, 8000, 1, 8)
    assert struct.unpack("<I", chunks[b"fact"]) == (4000,)
    assert len(chunks[b"data"]) == 4000


def test_write_wav_refuses_unknown_encoding(tmp_path):
    with pytest.raises(ValueError, match="encoding must be"):
        samples.write_wav(tmp_path / "v.wav", encoding="mp3")


@pytest.mark.parametrize(
    ("encode", "decode"),
    [(samples.encode_ulaw, decode_ulaw), (samples.encode_alaw, decode_alaw)],
)
def test_encode_g711_stays_within_one_quantisation_step(encode, decode):
    for sample in range(-32768, 32768, 37):
        decoded = decode(encode(sample))
        step = max(16, abs(sample) // 16)
        assert abs(decoded - sample) <= step, sample


def test_encode_g711_matches_reference_codes():
    assert [samples.encode_ulaw(value) for value in (0, -1, 32767, -32768)] == [
        0xFF,
        0x7F,
        0x80,
        0x00,
    ]
    assert [samples.encode_alaw(value) for value in (0, -1, 32767, -32768)] == [
        0xD5,
        0x55,
        0xAA,
        0x2A,
    ]


def test_write_sample_set_writes_probeable_messages(tmp_path):
    paths = samples.write_sample_set(tmp_path / "set")
    assert paths == {
        "fax": str(tmp_path / "set" / "fax.tif"),
        "voice": str(tmp_path / "set" / "voice.wav"),
    }
    assert probe_fax(paths["fax"]).pages == 2
    assert probe_voice(paths["voice"]).duration == 3.0


@pytest.mark.parametrize(("kind", "name"), [("fax", "f.tif"), ("voice", "v.wav")])
def test_main_writes_one_sample(tmp_path, kind, name):
    assert samples.main([kind, str(tmp_path / name)]) == 0
    probe = probe_fax if kind == "fax" else probe_voice
    assert probe(tmp_path / name).kind == kind


def test_main_writes_all_samples_into_folder(tmp_path):
    assert samples.main(["all", str(tmp_path / "out")]) == 0
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [
        "fax.tif",
        "voice.wav",
    ]


def test_main_reports_unwritable_path(tmp_path, capsys):
    assert samples.main(["voice", str(tmp_path / "missing" / "v.wav")]) == 1
    assert capsys.readouterr().err.startswith("Error: cannot write")


def test_main_refuses_unknown_kind(capsys):
    with pytest.raises(SystemExit) as caught:
        samples.main(["sms", "x"])
    assert caught.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_main_runs_as_module(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "ums_core.samples", "voice", str(tmp_path / "v.wav")],
        cwd=REPO,
        check=True,
    )
    assert probe_voice(tmp_path / "v.wav").duration == 2.0
