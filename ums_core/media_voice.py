"""Validate RIFF/WAVE voice messages by walking their chunks.

The stdlib wave module reads only PCM, so the chunks are parsed here with struct.
The public entry point is :func:`ums_core.media.probe_voice`.
"""

import struct

import attrs

from ums_core.errors import MediaError

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_ALAW = 0x0006
WAVE_FORMAT_MULAW = 0x0007
WAVE_FORMAT_GSM610 = 0x0031
WAVE_FORMAT_EXTENSIBLE = 0xFFFE

FORMAT_NAMES = {
    WAVE_FORMAT_PCM: "PCM",
    0x0002: "Microsoft ADPCM",
    0x0003: "IEEE float",
    WAVE_FORMAT_ALAW: "G.711 A-law",
    WAVE_FORMAT_MULAW: "G.711 mu-law",
    0x0011: "IMA ADPCM",
    0x0022: "DSP Group TrueSpeech",
    WAVE_FORMAT_GSM610: "GSM 6.10",
    0x0040: "G.721 ADPCM",
    0x0050: "MPEG audio",
    0x0055: "MPEG Layer 3 (MP3)",
    0x0064: "G.726 ADPCM",
    0x0065: "G.722 ADPCM",
    0x0161: "Windows Media Audio",
    WAVE_FORMAT_EXTENSIBLE: "WAVE_FORMAT_EXTENSIBLE",
}
SUPPORTED_FORMATS = (
    WAVE_FORMAT_PCM,
    WAVE_FORMAT_ALAW,
    WAVE_FORMAT_MULAW,
    WAVE_FORMAT_GSM610,
)
CHANNEL_NAMES = {1: "mono", 2: "stereo"}
KEPT_CHUNKS = (b"fmt ", b"fact")
FMT_SIZE = 16
MAX_KEPT_CHUNK = 1024


@attrs.frozen
class Chunk:
    """Where a chunk's body starts, the size its header declares, and what is there."""

    offset: int
    declared: int
    present: int
    payload: bytes = b""


@attrs.frozen
class WavFormat:
    """The fields of a fmt chunk that matter for a voice message."""

    tag: int
    channels: int
    rate: int
    bytes_per_second: int
    block_align: int
    bits: int


def inspect_wav(path, file_size: int) -> tuple[float, str]:
    """Return the duration in seconds and a detail line for the WAV file at PATH."""
    with open(path, "rb") as stream:
        check_riff_header(stream.read(12), file_size)
        chunks = walk_chunks(stream, file_size)
    wav_format = parse_fmt(chunks.get(b"fmt "))
    data = check_data_chunk(chunks)
    duration = measure_duration(wav_format, data, chunks.get(b"fact"))
    return duration, describe_format(wav_format)


def check_riff_header(header: bytes, file_size: int) -> None:
    """Refuse a RIFF header that is cut short or is not a WAVE form."""
    if len(header) < 12:
        raise MediaError(f"not a WAV file: RIFF header truncated ({file_size} bytes)")
    form = header[8:12]
    if form != b"WAVE":
        shown = form.decode("latin-1")
        raise MediaError(f"not a WAV file: RIFF form type is {shown!r}, not 'WAVE'")


def walk_chunks(stream, file_size: int) -> dict[bytes, Chunk]:
    """Return the first chunk of each id, walking in file order from offset 12."""
    chunks: dict[bytes, Chunk] = {}
    offset = 12
    while offset + 8 <= file_size:
        stream.seek(offset)
        chunk_id, declared = struct.unpack("<4sI", stream.read(8))
        body = offset + 8
        present = min(declared, file_size - body)
        payload = b""
        if chunk_id in KEPT_CHUNKS:
            payload = stream.read(min(present, MAX_KEPT_CHUNK))
        chunks.setdefault(chunk_id, Chunk(body, declared, present, payload))
        if present < declared:
            break
        offset = body + declared + (declared & 1)
    return chunks


def parse_fmt(chunk: Chunk | None) -> WavFormat:
    """Return the format described by the fmt CHUNK, refusing what is unusable."""
    if chunk is None:
        raise MediaError("not a WAV file: it has no fmt chunk")
    if chunk.present < chunk.declared:
        raise MediaError(
            f"WAV fmt chunk truncated: {chunk.present} of {chunk.declared} bytes "
            "present"
        )
    if len(chunk.payload) < FMT_SIZE:
        raise MediaError(
            f"WAV fmt chunk is too short: {len(chunk.payload)} bytes, {FMT_SIZE} needed"
        )
    wav_format = unwrap_extensible(
        WavFormat(*struct.unpack("<HHIIHH", chunk.payload[:FMT_SIZE])), chunk.payload
    )
    if wav_format.tag not in SUPPORTED_FORMATS:
        name = FORMAT_NAMES.get(wav_format.tag, "unknown codec")
        raise MediaError(
            f"unsupported WAV format: {name} (format tag 0x{wav_format.tag:04x}); "
            "use PCM, G.711 A-law or mu-law, or GSM 6.10"
        )
    if not wav_format.channels or not wav_format.rate:
        raise MediaError(
            f"WAV fmt chunk is invalid: {wav_format.channels} channels "
            f"at {wav_format.rate} Hz"
        )
    return wav_format


def unwrap_extensible(wav_format: WavFormat, payload: bytes) -> WavFormat:
    """Return WAV_FORMAT with the real codec of a WAVE_FORMAT_EXTENSIBLE header."""
    if wav_format.tag != WAVE_FORMAT_EXTENSIBLE or len(payload) < 26:
        return wav_format
    return attrs.evolve(wav_format, tag=struct.unpack("<H", payload[24:26])[0])


def check_data_chunk(chunks: dict[bytes, Chunk]) -> Chunk:
    """Return the data chunk if it holds the audio its header promises."""
    chunk = chunks.get(b"data")
    if chunk is None:
        cut = [name for name, item in chunks.items() if item.present < item.declared]
        if cut:
            raise MediaError(
                f"WAV file truncated inside its {cut[0].decode('latin-1')!r} chunk, "
                "before any audio"
            )
        raise MediaError("voice message has no audio (no data chunk)")
    if chunk.present < chunk.declared:
        raise MediaError(
            f"WAV data chunk truncated: header declares {chunk.declared} bytes, "
            f"{chunk.present} present"
        )
    if chunk.declared == 0:
        raise MediaError("voice message has no audio (data chunk is empty)")
    return chunk


def measure_duration(wav_format: WavFormat, data: Chunk, fact: Chunk | None) -> float:
    """Return the playing time in seconds.

    Compressed formats take it from the fact chunk's sample count; PCM, and any
    file without a usable fact chunk, from the data size and the byte rate.
    """
    if wav_format.tag != WAVE_FORMAT_PCM and fact and len(fact.payload) >= 4:
        samples = struct.unpack("<I", fact.payload[:4])[0]
        if samples:
            return round(samples / wav_format.rate, 3)
    byte_rate = wav_format.bytes_per_second
    if not byte_rate and wav_format.tag != WAVE_FORMAT_GSM610:
        byte_rate = wav_format.block_align * wav_format.rate
    if not byte_rate:
        raise MediaError("WAV fmt chunk is invalid: 0 bytes per second")
    return round(data.declared / byte_rate, 3)


def describe_format(wav_format: WavFormat) -> str:
    """Return e.g. "G.711 mu-law 8000 Hz mono" or "PCM 16-bit 8000 Hz mono"."""
    name = FORMAT_NAMES[wav_format.tag]
    if wav_format.tag == WAVE_FORMAT_PCM:
        name = f"PCM {wav_format.bits}-bit"
    channels = CHANNEL_NAMES.get(wav_format.channels, f"{wav_format.channels} channels")
    return f"{name} {wav_format.rate} Hz {channels}"
