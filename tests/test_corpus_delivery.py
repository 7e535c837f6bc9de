"""Every sample in the shared corpus, end to end through intake and e-mail."""

import hashlib
import io

import pytest
from conftest import corpus_path, reopen, use_mailserver
from pypdf import PdfReader

from ums_core import db
from ums_core.errors import MediaError
from ums_core.intake import receive_message
from ums_core.model import IncomingMessage
from ums_core.queue import run_due_jobs

GOOD_FAXES = {
    "1page.tif": 1,
    "CCITT_1.TIF": 1,
    "CCITTgetNextChangingElement.tif": 1,
    "G3-Premature-EOL.tif": 1,
    "fax2d.tif": 1,
    "fivepages-scan-causingerrors.tif": 5,
    "g3test.tif": 1,
    "test-single-gray-compression-type-2.tiff": 1,
    "ccitt.pdf": 1,
    "epson.pdf": 1,
    "kcs.pdf": 1,
}
BAD_FAXES = {
    "g3test.g3": "raw G3 data without a TIFF container",
    "incorrect-compression-rle-as-g3.tif": "mislabelled compression",
}
GOOD_VOICE = {
    "talking.wav": 10.26,
    "vm-message.wav": 0.95,
    "alaw.wav": 3.55,
    "gsm_6_10.wav": 0.1,
}
BAD_VOICE = {
    "data_chunk_truncated.wav": "data chunk truncated",
    "empty.wav": "file is empty",
    "incomplete_riff_header.wav": "RIFF header truncated",
    "no_audio_data_uncompressed.wav": "has no audio",
    "monkey.au": ".au audio file",
    "vm-message.gsm": "raw GSM",
    "vm-message.ulaw": "no RIFF header",
}


@pytest.fixture
def mail_app(home, smtp_sink):
    use_mailserver(home, smtp_sink, fax__attachment_format="both")
    app = reopen(home)
    yield app
    app.close()


def digest(path):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


@pytest.mark.parametrize("name, pages", sorted(GOOD_FAXES.items()))
def test_corpus_fax_becomes_pdf_with_its_pages(mail_app, smtp_sink, name, pages):
    path = corpus_path("fax", name)
    incoming = IncomingMessage(
        kind="fax", called="+4930999", sender="+4930555010", content_path=path
    )
    row = db.Message.get_by_id(receive_message(mail_app, incoming))
    assert row.pages == pages
    assert run_due_jobs(mail_app).failed == 0
    [mail] = smtp_sink.handler.parsed()
    attachments = {p.get_content_type(): p for p in mail.iter_attachments()}
    pdf = PdfReader(io.BytesIO(attachments["application/pdf"].get_content()))
    assert len(pdf.pages) == pages
    assert "image/tiff" in attachments
    assert db.Message.get_by_id(row.id).state == "delivered"


@pytest.mark.parametrize("name, reason", sorted(BAD_FAXES.items()))
def test_corpus_broken_fax_is_refused_and_kept(mail_app, name, reason):
    path = corpus_path("fax", name)
    before = digest(path)
    incoming = IncomingMessage(kind="fax", called="+4930999", content_path=path)
    with pytest.raises(MediaError, match=reason):
        receive_message(mail_app, incoming)
    assert digest(path) == before and db.Message.select().count() == 0


@pytest.mark.parametrize("name, seconds", sorted(GOOD_VOICE.items()))
def test_corpus_voice_becomes_wav_mail(mail_app, smtp_sink, name, seconds):
    path = corpus_path("voice", name)
    incoming = IncomingMessage(kind="voice", called="+4930999", content_path=path)
    row = db.Message.get_by_id(receive_message(mail_app, incoming))
    assert row.duration == pytest.approx(seconds, abs=0.05)
    run_due_jobs(mail_app)
    [mail] = smtp_sink.handler.parsed()
    [wav] = list(mail.iter_attachments())
    with open(path, "rb") as handle:
        assert wav.get_content() == handle.read()


@pytest.mark.parametrize("name, reason", sorted(BAD_VOICE.items()))
def test_corpus_broken_voice_is_refused_and_kept(mail_app, name, reason):
    path = corpus_path("voice", name)
    before = digest(path)
    incoming = IncomingMessage(kind="voice", called="+4930999", content_path=path)
    with pytest.raises(MediaError, match=reason):
        receive_message(mail_app, incoming)
    assert digest(path) == before and db.Message.select().count() == 0


def test_corpus_asterisk_placeholders_are_refused(mail_app):
    path = corpus_path(
        "asterisk-spool", "voicemail", "default", "8000", "INBOX", "msg0000.wav"
    )
    incoming = IncomingMessage(kind="voice", called="+4930999", content_path=path)
    with pytest.raises(MediaError, match="not a WAV file"):
        receive_message(mail_app, incoming)
