"""A bounded, seeded fuzz run over the gateway's mail parsing and the intake probes.

Each input is mutated from a seed (corpus files when present, small generated
ones always) by a seeded generator, so a failure names the seed and the round
that reproduce it. A failure is an exception other than the documented refusal
(UmsError and its kinds) or one input taking longer than PER_INPUT_SECONDS.
"""

import io
import os
import random
import struct
import threading
import time
from email.message import EmailMessage

import pytest
from conftest import CORPUS

from ums_core import media
from ums_core.errors import UmsError
from ums_core.gateway.accept import automatic_reason, decode_raw_header
from ums_core.gateway.document import build_fax_document, extract_text, parse_mail
from ums_core.gateway.sms import plan_sms, sms_text_from_body
from ums_core.helpers import header_text
from ums_core.samples import write_fax_tiff, write_wav

ROUNDS = 90
PER_INPUT_SECONDS = 10.0
TOTAL_SECONDS = 40.0
HOSTILE_PIECES = (
    b"\r\n--",
    b"\r\n\r\n",
    b'Content-Type: multipart/mixed; boundary="b"\r\n',
    b"Content-Type: text/plain; charset=x-no-such-charset\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"=?utf-8?b?////?=",
    b"=?x-unknown?q?=FF=00?=",
    b"\x00",
    b"\xff\xfe",
    b"\r",
    b"..\r\n.\r\n",
    b"Content-Type: message/rfc822\r\n\r\n",
)


def mutate(data: bytes, rng: random.Random) -> bytes:
    """Return DATA changed in one to four random ways."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        where = rng.randrange(len(data) + 1)
        choice = rng.randrange(6)
        if choice == 0 and data:
            for _ in range(rng.randint(1, 16)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif choice == 1:
            del data[where:]
        elif choice == 2:
            data[where:where] = rng.choice(HOSTILE_PIECES)
        elif choice == 3 and data:
            start = rng.randrange(len(data))
            data[where:where] = data[start : start + rng.randint(1, 512)] * 3
        elif choice == 4:
            del data[where : where + rng.randint(1, 256)]
        else:
            data[where:where] = struct.pack("<I", rng.choice((0, 1, 2**31, 2**32 - 1)))
    return bytes(data)


def generated_mails() -> list[bytes]:
    """Return a few small mails: text, multipart with a PDF, nested, HTML."""
    plain = EmailMessage()
    plain["From"], plain["To"], plain["Subject"] = "a@x.test", "b@y.test", "Hallo"
    plain.set_content("Bitte faxen. Grüße\n")
    mixed = EmailMessage()
    mixed["Subject"] = "=?utf-8?q?Bestellung_=C3=BC?="
    mixed.set_content("see attachment")
    mixed.add_attachment(b"%PDF-1.4\n%%EOF\n", "application", "pdf", filename="a.pdf")
    mixed.add_attachment(b"\x89PNG\r\n\x1a\n", "image", "png", filename="../x.png")
    html = EmailMessage()
    html.set_content("<p>Hallo <b>Welt</b></p>", subtype="html")
    outer = EmailMessage()
    outer.set_content("forwarded")
    outer.add_attachment(mixed)
    return [m.as_bytes() for m in (plain, mixed, html, outer)]


def corpus_files(folder: str, suffixes: tuple) -> list[bytes]:
    path = os.path.join(CORPUS, folder)
    if not os.path.isdir(path):
        return []
    names = sorted(n for n in os.listdir(path) if n.lower().endswith(suffixes))
    found = []
    for name in names:
        with open(os.path.join(path, name), "rb") as handle:
            data = handle.read()
        if len(data) < 300_000:
            found.append(data)
    return found


def digest_mail(raw: bytes) -> None:
    """Do to RAW what the gateway does: headers at DATA, then the document."""
    from email import policy
    from email.parser import BytesHeaderParser

    headers = BytesHeaderParser(policy=policy.default).parsebytes(raw)
    header_text(decode_raw_header(str(headers.get("Subject", ""))), 200)
    automatic_reason("a@x.test", headers)
    mail = parse_mail(raw)
    plan_sms(sms_text_from_body(extract_text(mail)))
    build_fax_document(mail, max_pages=5)


def run_bounded(inputs, check, deadline: float) -> int:
    """Feed every input to CHECK; return how many ran before DEADLINE.

    Each input runs in a daemon thread, so a hang fails the test instead of
    stopping the run.
    """
    done = 0
    for label, data in inputs:
        if time.monotonic() > deadline:
            break
        failure = run_one(check, data)
        if failure:
            pytest.fail(f"{label} ({len(data)} bytes): {failure}")
        done += 1
    return done


def run_one(check, data: bytes) -> str:
    """Return '' when CHECK(DATA) ends in time with no crash, else what happened."""
    failures = []

    def target():
        try:
            check(data)
        except UmsError:
            pass
        except Exception as exc:  # the point of the test: name what crashed
            failures.append(f"{type(exc).__name__}: {exc}"[:500])

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(PER_INPUT_SECONDS)
    if worker.is_alive():
        return f"still running after {PER_INPUT_SECONDS}s"
    return failures[0] if failures else ""


def mutants(seeds: list[bytes], tag: str, rounds: int = ROUNDS):
    rng = random.Random(tag)
    for index in range(rounds):
        seed_index = index % len(seeds)
        yield f"{tag} seed {seed_index} round {index}", mutate(seeds[seed_index], rng)


def test_gateway_mail_parsing_survives_mutated_mails():
    seeds = generated_mails() + corpus_files("mail", (".eml",))
    deadline = time.monotonic() + TOTAL_SECONDS
    done = run_bounded(mutants(seeds, "mail"), digest_mail, deadline)
    assert done >= ROUNDS // 3, f"only {done} inputs in {TOTAL_SECONDS}s"


def nested(levels: int) -> bytes:
    head = b""
    for level in range(levels):
        head += f'Content-Type: multipart/mixed; boundary="b{level}"\r\n\r\n'.encode()
        head += f"--b{level}\r\n".encode()
    return head + b"Content-Type: text/plain\r\n\r\ninner\r\n"


HOSTILE_MAILS = {
    "missing closing boundary": b'Content-Type: multipart/mixed; boundary="x"\r\n'
    b"\r\n--x\r\nContent-Type: text/plain\r\n\r\nno end",
    "boundary parameter missing": b"Content-Type: multipart/mixed\r\n\r\n--x\r\n",
    "100 levels of nesting": nested(100),
    "10 MB header line": b"Subject: " + b"A" * (10 << 20) + b"\r\n\r\nbody\r\n",
    "1 MB folded header": b"X-Long: a\r\n" + b" b\r\n" * (256 << 10) + b"\r\nbody",
    "invalid charset": b"Content-Type: text/plain; charset=utf-99\r\n\r\n\xff\xfe",
    "charset of a wrong kind": b"Content-Type: text/plain; charset=base64\r\n\r\nxx",
    "undecodable base64": b"Content-Transfer-Encoding: base64\r\n\r\n!!!!====",
    "raw 8-bit subject, not UTF-8": b"Subject: \x81\x8d\xff\xc3\r\n\r\nx\r\n",
    "control characters in headers": b"Subject: a\x00\x1b[2J\r\nFrom: \x07\r\n\r\n",
    "only NUL bytes": b"\x00" * 4096,
    "empty": b"",
}


@pytest.mark.parametrize("raw", HOSTILE_MAILS.values(), ids=HOSTILE_MAILS.keys())
def test_gateway_mail_parsing_survives_hostile_shapes(raw):
    run_bounded([("hostile", raw)], digest_mail, time.monotonic() + TOTAL_SECONDS)


def probe(kind: str, tmp_path):
    path = tmp_path / f"probe.{kind}"

    def check(data: bytes) -> None:
        path.write_bytes(data)
        if kind == "fax":
            media.probe_fax(str(path))
        else:
            media.probe_voice(str(path))

    return check


def sample_bytes(writer, tmp_path, name: str, **kwargs) -> bytes:
    path = tmp_path / name
    writer(str(path), **kwargs)
    return path.read_bytes()


def test_intake_probes_survive_mutated_tiff_pdf_and_wav(tmp_path):
    tiffs = [sample_bytes(write_fax_tiff, tmp_path, "s.tif", text="x", pages=2)]
    tiffs += corpus_files("fax", (".tif", ".tiff", ".pdf"))
    wavs = [sample_bytes(write_wav, tmp_path, "s.wav", seconds=0.5)]
    wavs += [sample_bytes(write_wav, tmp_path, "u.wav", seconds=0.5, encoding="ulaw")]
    deadline = time.monotonic() + TOTAL_SECONDS
    done = run_bounded(mutants(tiffs, "fax"), probe("fax", tmp_path), deadline)
    done += run_bounded(mutants(wavs, "wav"), probe("wav", tmp_path), deadline)
    assert done >= ROUNDS // 2


def lying_tiff(tmp_path) -> list[bytes]:
    """Return fax TIFFs whose strip offsets, counts and sizes lie."""
    good = sample_bytes(write_fax_tiff, tmp_path, "l.tif", text="x", pages=1)
    from PIL import Image

    image = Image.open(io.BytesIO(good))
    tags = image.tag_v2
    liars = []
    for tag, value in ((273, 2**31), (279, 2**31), (256, 2**30), (257, 2**30)):
        out = io.BytesIO()
        changed = {key: tags[key] for key in tags if key not in (273, 279)}
        changed[tag] = value
        try:
            image.save(out, format="TIFF", compression="group4", tiffinfo=changed)
        except (OSError, ValueError):
            continue
        liars.append(out.getvalue())
    header_only = good[:8] + struct.pack("<I", 2**31)
    return liars + [header_only, good[: len(good) // 2]]


def lying_wav() -> list[bytes]:
    """Return WAVs whose RIFF and chunk sizes lie, in both directions."""
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, 8000, 16000, 2, 16)
    data = b"\x00" * 1600
    wavs = []
    for riff_size, data_size, fmt_size in (
        (2**32 - 1, len(data), 16),
        (36 + len(data), 2**32 - 1, 16),
        (36 + len(data), 0, 16),
        (36 + len(data), len(data), 2**31),
        (4, len(data), 16),
    ):
        body = fmt[:4] + struct.pack("<I", fmt_size) + fmt[8:]
        body += struct.pack("<4sI", b"data", data_size) + data
        wavs.append(struct.pack("<4sI4s", b"RIFF", riff_size, b"WAVE") + body)
    return wavs


RIFF_SIZE_LIES = (0, 4)


def test_intake_probes_refuse_headers_that_lie_about_sizes(tmp_path):
    deadline = time.monotonic() + TOTAL_SECONDS
    fax = [(f"tiff {i}", d) for i, d in enumerate(lying_tiff(tmp_path))]
    wav = [(f"wav {i}", d) for i, d in enumerate(lying_wav())]
    assert run_bounded(fax, probe("fax", tmp_path), deadline) == len(fax)
    assert run_bounded(wav, probe("wav", tmp_path), deadline) == len(wav)
    for index, (_, data) in enumerate(wav):
        (tmp_path / "w.wav").write_bytes(data)
        if index in RIFF_SIZE_LIES:
            # the chunks are intact: taken, with the length the data really has
            assert media.probe_voice(str(tmp_path / "w.wav")).duration == 0.1
            continue
        with pytest.raises(UmsError):
            media.probe_voice(str(tmp_path / "w.wav"))
