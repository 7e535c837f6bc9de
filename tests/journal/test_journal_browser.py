"""The journal in real headless Chromium (Debian's), driven by Playwright.

Chromium is never downloaded: Playwright is pointed at the executable that
``.ci/run`` installs from Debian (``/usr/bin/chromium``, or $UMS_CHROMIUM).
Screenshots of the list and of an open fax go to $UMS_ARTIFACTS (default:
``test-artifacts/`` in the checkout).
"""

from __future__ import annotations

import io
import os
import shutil

import pytest

from tests.conftest import free_port
from ums_core import db
from ums_core.context import PluginContext

from .conftest import PASSWORDS, content_file

CHROMIUM = os.environ.get("UMS_CHROMIUM") or shutil.which("chromium") or ""
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARTIFACTS = os.environ.get("UMS_ARTIFACTS") or os.path.join(ROOT, "test-artifacts")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _need_browser():
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package")
    if not CHROMIUM or not os.access(CHROMIUM, os.X_OK):
        missing.append("Debian's chromium (apt-get install chromium)")
    if missing:
        reason = "browser tests need " + " and ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def journal_url(journal_app, mailbox):
    from ums_local_store.journal.service import JournalService

    service = JournalService(PluginContext(journal_app), f"127.0.0.1:{free_port()}")
    service.start()
    yield f"http://{service.address}"
    service.stop()


@pytest.fixture
def page(browser, tmp_path):
    context = browser.new_context(accept_downloads=True, locale="de-DE")
    tab = context.new_page()
    tab.problems = []
    tab.on("dialog", lambda dialog: (tab.problems.append("dialog"), dialog.dismiss()))
    tab.on(
        "console",
        lambda msg: tab.problems.append(msg.text) if msg.type == "error" else None,
    )
    tab.on("pageerror", lambda exc: tab.problems.append(str(exc)))
    yield tab
    context.close()


def log_in(page, base, email="alice@example.test"):
    page.goto(f"{base}/messages")
    assert page.url.startswith(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORDS[email])
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#messages")


def screenshot(page, name: str) -> None:
    os.makedirs(ARTIFACTS, exist_ok=True)
    page.screenshot(path=os.path.join(ARTIFACTS, name), full_page=True)


def test_a_day_in_the_journal(page, journal_url, journal_app, mailbox, tmp_path):
    base = journal_url
    log_in(page, base)
    rows = page.locator("#messages tbody tr")
    assert rows.count() == 3
    assert page.locator("html").get_attribute("lang") == "de"
    screenshot(page, "journal-list.png")

    with page.expect_response(lambda r: "/file/pdf" in r.url) as pdf_response:
        page.click(f"tr[data-id='{mailbox['fax']}'] td a >> nth=0")
    assert pdf_response.value.status == 200
    assert pdf_response.value.headers["content-type"] == "application/pdf"
    page.wait_for_selector("#message")
    assert page.inner_text("#size") == "2 Seiten"
    assert page.locator("#fax-pdf").is_visible()
    page.wait_for_timeout(1500)  # let the PDF viewer paint before the picture
    screenshot(page, "journal-fax.png")

    with page.expect_download() as pdf_download:
        page.click("#download-pdf")
    pdf = pdf_download.value
    assert pdf.suggested_filename.startswith("fax ")
    assert "Müller" in pdf.suggested_filename
    assert pdf.suggested_filename.endswith(".pdf")
    saved = tmp_path / "fax.pdf"
    pdf.save_as(saved)
    from pypdf import PdfReader

    assert len(PdfReader(io.BytesIO(saved.read_bytes())).pages) == 2
    with page.expect_download() as tiff_download:
        page.click("#download-tiff")
    tiff = tmp_path / "fax.tiff"
    tiff_download.value.save_as(tiff)
    with open(content_file(journal_app, mailbox["fax"]), "rb") as handle:
        assert tiff.read_bytes() == handle.read()

    page.goto(f"{base}/messages/{mailbox['voice']}")
    player = page.locator("audio#player")
    assert player.is_visible()
    duration = page.evaluate(
        """() => new Promise((done) => {
            const a = document.getElementById('player');
            if (a.readyState >= 1) return done(a.duration);
            a.addEventListener('loadedmetadata', () => done(a.duration));
            a.addEventListener('error', () => done(-1));
            a.load();
        })"""
    )
    assert 1.5 < duration < 2.5  # 16384 A-law samples at 8 kHz

    page.goto(f"{base}/messages/{mailbox['sms']}")
    assert page.inner_text("#sms-text") == "<script>alert('x')</script> Grüße"
    page.click("#delete")
    page.wait_for_selector("#delete-form")
    page.click("#confirm-delete")
    page.wait_for_selector("#messages")
    assert page.locator(".notice").inner_text() == "Die Nachricht wurde gelöscht."
    assert page.locator(f"tr[data-id='{mailbox['sms']}']").count() == 0
    assert db.Message.get_or_none(db.Message.id == mailbox["sms"]) is None

    page.click("#logout")
    page.wait_for_selector("#login-form")
    page.goto(f"{base}/messages")
    assert page.url.startswith(f"{base}/login")
    assert page.problems == []


def test_hostile_texts_stay_text_in_the_browser(page, journal_url, journal_app):
    from .conftest import ALICE_SMS, receive

    payloads = [
        "<img src=x onerror=alert(1)>",
        '"><svg onload=alert(2)>',
        "javascript:alert(3)",
        "<iframe src=//evil.example></iframe>",
    ]
    for text in payloads:
        receive(journal_app, "sms", ALICE_SMS, sender="+4930555012", text=text)
    log_in(page, journal_url)
    snippets = page.locator(".snippet").all_inner_texts()
    for text in payloads:
        assert text in snippets
    assert page.locator("#messages img, #messages svg, #messages iframe").count() == 0
    assert page.problems == []


def test_phone_sized_screen_shows_cards_and_page_images(page, journal_url, mailbox):
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, journal_url)
    assert not page.locator("#messages thead").is_visible()
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390
    screenshot(page, "journal-list-phone.png")
    page.goto(f"{journal_url}/messages/{mailbox['fax']}")
    assert not page.locator("#fax-pdf").is_visible()  # phones show page images
    images = page.locator(".pages img")
    assert images.count() == 2
    for number in range(2):
        images.nth(number).scroll_into_view_if_needed()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.pages img')]"
        ".every(i => i.complete && i.naturalWidth === 1000)"
    )
    screenshot(page, "journal-fax-phone.png")
