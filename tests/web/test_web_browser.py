"""End to end in real headless Chromium (Debian's ``chromium`` driven by Playwright for Python):
tickets made by the real pipeline, log in, filter the queue, open a ticket, see its images and
clip, correct the plate, approve, download the letter and read its text, reject another with a
reason, log out.  Writes docs/screenshots/{login,queue,ticket,letter}.png.  Then the rest of a
ticket's life: owner lookup, the letter with the owner's name, the notice, the citizen's
confirmation page on a phone (docs/screenshots/citizen-*.png), payment import and blocking.

Skipped only where no Chromium is found and ETLE_REQUIRE_SERVICES is unset; with
ETLE_REQUIRE_SERVICES=1 a missing Chromium is installed with apt-get (as root) or the test fails.
"""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "docs" / "screenshots"
SAMPLE = REPO / "sample_videos" / "intel_car_detection_parking.mp4"
SAMPLE_CAMERA = REPO / "examples" / "cameras" / "intel_car_detection_parking.yaml"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
PASSWORD = "officer-pass-2026"


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    required = os.environ.get("ETLE_REQUIRE_SERVICES", "").lower() in ("1", "true", "yes")
    if not found and required and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "chromium"], check=False, timeout=900,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        found = shutil.which("chromium")
    if not found:
        msg = "no chromium found (apt-get install chromium)"
        if required:
            pytest.fail(msg + " and ETLE_REQUIRE_SERVICES=1 makes it mandatory")
        pytest.skip(msg)
    return found


def _wait_js(page, expression: str, timeout_s: float = 30.0) -> None:
    """Poll ``expression`` with page.evaluate (the page's CSP forbids the eval that
    ``wait_for_function`` uses for string predicates)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def pipeline_site(tmp_path_factory, make_evidence_request):
    """A store with a ticket made by the real pipeline from the bundled sample clip (red light),
    and a second ticket for the reject case: another real ticket where the run made two, else a
    small evidence bundle written by the same evidence writer.

    The whole clip is run (no ``max_seconds``): stopping PyAV's threaded decoder early can hang
    when the container closes (seen on this machine; reported to the ingest owner)."""
    from etle.evidence import EvidenceWriter, record_violation
    from etle.config.run import RunOptions
    from etle.runner import run_sources
    from etle.store import TicketStore

    root = tmp_path_factory.mktemp("web-e2e")
    out = root / "evidence"
    db = f"sqlite:///{root / 'etle.db'}"
    run_sources(str(SAMPLE), SAMPLE_CAMERA, RunOptions(out_dir=out, db_url=db), progress=False)
    with TicketStore(db) as store:
        sample = [t for t in store.list(limit=100) if t.camera_id == "sample-parking"]
        assert sample, "the real pipeline made no ticket from the sample clip"
        if store.count() < 2:
            record_violation(EvidenceWriter(out), store, make_evidence_request(7, camera="jbi-01", plate="BH7777XY"))
        others = [t for t in store.list(limit=100) if t.id != sample[0].id]
        return {"db": db, "evidence": out, "ticket": sample[0], "other": others[0]}


@pytest.fixture(scope="session")
def server(pipeline_site):
    import uvicorn

    from etle.store import TicketStore
    from etle.web import WebConfig, create_app
    from etle.web import auth

    store = TicketStore(pipeline_site["db"])
    store.add_user("budi", display_name="Bripka Budi", role="reviewer")
    auth.set_password(store.engine, "budi", PASSWORD)
    app = create_app(WebConfig(db_url=pipeline_site["db"], evidence_root=pipeline_site["evidence"],
                               secure_cookies=False), store=store)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}", store
    srv.should_exit = True
    thread.join(10)
    store.close()


def test_review_in_headless_chromium(server, pipeline_site, tmp_path: Path) -> None:
    chromium = _chromium()
    try:
        from playwright import sync_api
    except ImportError:
        if os.environ.get("ETLE_REQUIRE_SERVICES", "").lower() in ("1", "true", "yes"):
            pytest.fail("playwright is not installed (pip install -e '.[dev]') and ETLE_REQUIRE_SERVICES=1")
        pytest.skip("playwright is not installed")
    from pypdf import PdfReader

    base, store = server
    ticket, other = pipeline_site["ticket"], pipeline_site["other"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(30_000)

        # not logged in: every page leads to the login form
        page.goto(f"{base}/tickets/{ticket.reference}")
        assert "/login" in page.url
        page.fill("#username", "budi")
        page.fill("#password", "wrong-password")
        page.click("#login-submit")
        assert page.locator("#login-error").is_visible()
        page.screenshot(path=str(SHOTS / "login.png"))
        page.fill("#username", "budi")
        page.fill("#password", PASSWORD)
        page.click("#login-submit")
        page.wait_for_url(f"{base}/tickets/{ticket.reference}")

        # the queue: pending first, counts, filters
        page.goto(f"{base}/queue")
        assert page.locator("#queue .ticket-link").count() >= 2
        assert page.locator('#status-tabs a[data-status="pending_review"] .count').inner_text() == str(
            store.count_by_status()["pending_review"])
        page.select_option("#f-camera", ticket.camera_id)
        page.select_option("#f-rule", ticket.rule)
        day = ticket.occurred_at.date().isoformat()
        page.fill("#f-from", day)
        page.fill("#f-to", day)
        page.click("#f-submit")
        page.wait_for_load_state()
        links = page.locator("#queue .ticket-link")
        assert links.all_inner_texts() == [ticket.reference]
        page.screenshot(path=str(SHOTS / "queue.png"), full_page=True)
        page.keyboard.press("Enter")  # keyboard: open the selected ticket
        page.wait_for_url(f"{base}/tickets/{ticket.reference}")

        # the ticket page: images, clip, plate candidates, verification
        for sel in ("#img-overview", "#img-closeup", "#img-plate"):
            _wait_js(page, f"() => document.querySelector('{sel}').complete && "
                           f"document.querySelector('{sel}').naturalWidth > 0")
        _wait_js(page, "() => document.querySelector('#clip').readyState >= 2")
        duration = page.eval_on_selector("#clip", "v => v.duration")
        assert duration > 0
        assert page.eval_on_selector("#clip", "v => v.videoWidth") > 0  # a decoded picture (H.264)
        page.eval_on_selector("#clip", "v => { v.muted = true; return v.play(); }")
        _wait_js(page, "() => document.querySelector('#clip').currentTime > 0")
        assert page.locator("#verification").get_attribute("data-state") == "verified"
        assert page.locator("#candidates tr").count() >= 1
        page.screenshot(path=str(SHOTS / "ticket.png"), full_page=True)

        # correct the plate (the original read is kept), approve with the keyboard
        original = ticket.plate_text
        page.fill("#plate-input", "b 1234 xyz")
        page.click("#plate-save")
        page.wait_for_load_state()
        assert page.locator("#plate-text").inner_text() == "B1234XYZ"
        if original:
            assert page.locator("#original-read").inner_text() == original
        page.locator("body").press("a")
        page.wait_for_selector("#letter-link")
        assert page.locator("#status").inner_text() == "Disetujui"

        # the confirmation letter
        with page.expect_download() as dl:
            page.click("#letter-link")
        pdf_path = tmp_path / "letter.pdf"
        dl.value.save_as(pdf_path)
        text = PdfReader(io.BytesIO(pdf_path.read_bytes())).pages[0].extract_text()
        fine = "Rp " + f"{ticket.fine:,}".replace(",", ".")
        for needle in ("SURAT KONFIRMASI", "B1234XYZ", ticket.reference, f"Pasal {ticket.article}", fine,
                       "Batas konfirmasi", "budi", ticket.location or ticket.camera_id):
            assert needle in text, (needle, text)
        if shutil.which("pdftoppm"):
            subprocess.run(["pdftoppm", "-png", "-r", "70", "-singlefile", str(pdf_path), str(SHOTS / "letter")],
                           check=True, timeout=60)

        # reject another ticket with a reason
        page.goto(f"{base}/tickets/{other.reference}")
        page.select_option("#reject-reason", "occluded")
        page.click("#reject")
        page.wait_for_load_state()
        assert page.locator("#status").inner_text() == "Ditolak"

        # log out: pages are refused again
        page.click("#logout")
        page.wait_for_url(f"{base}/login")
        page.goto(f"{base}/queue")
        assert "/login" in page.url
        browser.close()

    assert store.get(ticket.reference).status == "approved"
    assert store.get(ticket.reference).plate_text == "B1234XYZ"
    acts = [(a.action, a.actor) for a in store.actions(ticket.reference)]
    assert ("correct_plate", "budi") in acts and acts[-1] == ("approve", "budi")
    last = store.actions(other.reference)[-1]
    assert (last.action, last.actor, last.reason) == ("reject", "budi", "occluded")


def _qr_links(pdf_path: Path, out: Path) -> list[str]:
    """The links in the QR codes of a letters PDF (pages drawn by pdftoppm, read by OpenCV);
    empty where either is missing."""
    if not shutil.which("pdftoppm"):
        return []
    try:
        import cv2
    except ImportError:
        return []
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["pdftoppm", "-png", "-r", "150", str(pdf_path), str(out / "page")], check=True, timeout=120)
    # OpenCV's ArUco-based QR detector first: the classic one missed the code on some pages at
    # 150 dpi (a letter whose photo and text left it undecoded, 2026-12-06) that both read at 100
    detectors = [cls() for cls in (getattr(cv2, "QRCodeDetectorAruco", None), cv2.QRCodeDetector) if cls is not None]
    found = []
    for png in sorted(out.glob("page*.png")):
        image = cv2.imread(str(png))
        text = next((t for t in (d.detectAndDecode(image)[0] for d in detectors) if t), "")
        if text:
            found.append(text)
    return found


def _login(page, base: str, user: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(f"{base}/queue")


def _fits_a_phone(page) -> None:
    """No sideways scrolling, and every control is at least 44 px high (a finger's target)."""
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
    small = page.evaluate("""() => [...document.querySelectorAll('main input:not([type=hidden]):not([type=radio]), main button, main label.choice, header a')]
        .map(e => [e.id || e.textContent.trim(), e.getBoundingClientRect().height]).filter(([, h]) => h < 44)""")
    assert not small, small


def test_citizen_confirms_on_a_phone(server, pipeline_site, make_evidence_request, tmp_path: Path) -> None:
    """After review, in the browser: an officer approves two tickets, their owners are looked up,
    the letter carries the owner's name and goes out (the notice register), the owner opens the
    letter's QR link on a phone, types the plate and confirms; a supervisor imports the payment
    and blocks the other ticket, whose deadline has passed, and its citizen page says so.
    Writes docs/screenshots/citizen-{form,ticket,confirmed}.png (a phone's screen)."""
    chromium = _chromium()
    try:
        from playwright import sync_api
    except ImportError:
        if os.environ.get("ETLE_REQUIRE_SERVICES", "").lower() in ("1", "true", "yes"):
            pytest.fail("playwright is not installed (pip install -e '.[dev]') and ETLE_REQUIRE_SERVICES=1")
        pytest.skip("playwright is not installed")
    from datetime import datetime, timedelta, timezone

    from pypdf import PdfReader

    from etle.evidence import EvidenceWriter, record_violation
    from etle.letters import make_batch, zone_of
    from etle.registry import CsvRegistry, lookup_ticket
    from etle.web import auth

    base, store = server
    writer = EvidenceWriter(pipeline_site["evidence"])
    paid_ref, late_ref = (store.get(record_violation(writer, store, make_evidence_request(
        track, camera="jbi-01", plate=plate, source="rtsp://cam/citizen")).ticket_id).reference
        for track, plate in ((41, "BH4141AB"), (42, "BH4242CD")))
    store.add_user("sari", display_name="Iptu Sari", role="supervisor")
    auth.set_password(store.engine, "sari", PASSWORD)
    registry_csv = tmp_path / "registry.csv"
    registry_csv.write_text(
        "plate,vehicle_type,colour,status,owner_name,owner_address\n"
        "BH4141AB,motorcycle,white,active,Fiktif Rahmat Hidayat,\"Jl. Contoh No. 7, Kota Jambi\"\n"
        "BH4242CD,motorcycle,white,active,Fiktif Dewi Lestari,\"Jl. Contoh No. 9, Kota Jambi\"\n", encoding="utf-8")
    registry = CsvRegistry(registry_csv)
    now = datetime.now(timezone.utc)
    # the day the letters are dated on, in the zone the batch uses for these tickets (their camera
    # row is not in this store, so the offset of their own local time): not this machine's UTC date
    day = now.astimezone(zone_of(store, store.get(late_ref))).date()
    fine = "Rp " + f"{store.get(paid_ref).fine:,}".replace(",", ".")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        desk = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page = desk.new_page()
        page.set_default_timeout(120_000)
        _login(page, base, "budi")

        def approve(ref: str) -> None:
            page.goto(f"{base}/tickets/{ref}")
            page.click("#approve")
            page.wait_for_selector("#letter-link")
            assert page.locator("#status").inner_text() == "Disetujui"
            result, mismatch = lookup_ticket(store, registry, ref)  # `etle tickets lookup-owners`
            assert result.status == "found" and mismatch is None, (result, mismatch)

        # the late ticket: approved, owner found, its letter dated 12 days ago (deadline passed)
        approve(late_ref)
        late = make_batch(store, day, tmp_path / "letters-late.pdf", public_url=base,
                          evidence_root=pipeline_site["evidence"], now=now - timedelta(days=12))
        assert [n.reference for n in late.notices] == [late_ref], late

        # the paid ticket: approved, owner found; the review app's letter names the owner
        approve(paid_ref)
        page.goto(f"{base}/tickets/{paid_ref}")
        with page.expect_download() as dl:
            page.click("#letter-link")
        letter = tmp_path / "letter.pdf"
        dl.value.save_as(letter)
        text = PdfReader(str(letter)).pages[0].extract_text()
        for needle in ("Fiktif Rahmat Hidayat", "Jl. Contoh No. 7", paid_ref, "BH4141AB", fine):
            assert needle in text, (needle, text)
        # the day's letters for the post (`etle letters batch`): notice_sent, in the register
        batch = make_batch(store, day, tmp_path / "letters.pdf", public_url=base,
                           evidence_root=pipeline_site["evidence"], now=now)
        assert [n.reference for n in batch.notices] == [paid_ref], batch
        assert store.get(paid_ref).status == "notice_sent"
        batch_text = PdfReader(str(batch.path)).pages[0].extract_text()
        assert "Fiktif Rahmat Hidayat" in batch_text
        link = f"{base}/konfirmasi/{paid_ref}"
        qr = _qr_links(batch.path, tmp_path / "pages")
        if shutil.which("pdftoppm") and importlib.util.find_spec("cv2"):
            assert qr == [link], qr  # the QR code printed on the letter is the link
        else:
            assert link in batch_text.replace("\n", "")

        # the owner, on a phone: the QR link, the plate, the ticket, the answer
        phone = browser.new_context(**{**p.devices["Pixel 5"], "device_scale_factor": 2})
        cit = phone.new_page()
        cit.set_default_timeout(120_000)
        cit.goto(qr[0] if qr else link)
        assert cit.locator("html").get_attribute("lang") == "id"
        assert cit.locator("#reference").input_value() == paid_ref
        _fits_a_phone(cit)
        cit.fill("#plate", "BH 9999 ZZ")
        cit.click("#lookup-submit")
        cit.wait_for_selector("#citizen-error")
        assert "tidak cocok" in cit.locator("#citizen-error").inner_text()
        cit.fill("#plate", "bh 4141 ab")
        cit.screenshot(path=str(SHOTS / "citizen-form.png"))
        cit.click("#lookup-submit")
        cit.wait_for_url(f"{base}/konfirmasi/{paid_ref}/detail")
        assert cit.locator("#citizen-plate").inner_text() == "BH4141AB"
        assert cit.locator("#citizen-fine").inner_text() == fine
        assert cit.locator("#citizen-owner").inner_text() == "F***** R***** H******"
        assert "Fiktif" not in cit.content() and "Jl. Contoh" not in cit.content()
        if cit.locator("#citizen-photo").count():  # the blurred copy, when etle.privacy could make it
            _wait_js(cit, "() => document.querySelector('#citizen-photo').complete && "
                          "document.querySelector('#citizen-photo').naturalWidth > 0")
        else:
            assert cit.locator("#citizen-no-photo").is_visible()
        _fits_a_phone(cit)
        cit.screenshot(path=str(SHOTS / "citizen-ticket.png"), full_page=True)
        cit.check("#driver-owner")
        cit.click("#answer-submit")
        cit.wait_for_selector("#citizen-msg")
        code = cit.locator("#citizen-payment-code").inner_text()
        assert code == store.get(paid_ref).payment_code and store.get(paid_ref).status == "confirmed"
        cit.screenshot(path=str(SHOTS / "citizen-confirmed.png"))  # the top: the message and the code

        # the supervisor imports the bank's payments and blocks what is overdue
        page.click("#logout")
        page.wait_for_url(f"{base}/login")
        _login(page, base, "sari")
        page.goto(f"{base}/settlement")
        payments = tmp_path / "bank.csv"
        payments.write_text(f"payment_code,amount,paid_at\n{code},{store.get(paid_ref).fine},{day.isoformat()}\n",
                            encoding="utf-8")
        page.set_input_files("#payments-form input[type=file]", str(payments))
        page.click("#import")
        page.wait_for_selector("#payments-result")
        assert paid_ref in page.locator("#payment-rows").inner_text()
        page.click("#block")
        page.wait_for_selector("#block-result")
        assert late_ref in page.locator("#block-result").inner_text()

        # the blocked ticket's citizen page says so, with the code to pay
        cit.goto(f"{base}/konfirmasi/{late_ref}")
        cit.fill("#plate", "BH4242CD")
        cit.click("#lookup-submit")
        cit.wait_for_url(f"{base}/konfirmasi/{late_ref}/detail")
        assert cit.locator("#citizen-state").get_attribute("data-status") == "blocked"
        assert cit.locator("#answer-form").count() == 0 and cit.locator("#citizen-payment-code").inner_text()
        # the session opens that one ticket: the paid one's page asks for its plate again
        cit.goto(f"{base}/konfirmasi/{paid_ref}/detail")
        assert cit.url == f"{base}/konfirmasi/{paid_ref}" and cit.locator("#plate").is_visible()
        browser.close()

    assert store.get(paid_ref).status == "paid" and store.get(late_ref).status == "blocked"
    acts = {a.action: a for a in store.actions(paid_ref)}
    assert acts["confirm"].actor == "system:konfirmasi" and acts["confirm"].data["via"] == "online"
    assert acts["confirm"].data["driver_is_owner"] is True and acts["pay"].actor == "sari"
    assert acts["send_notice"].data["batch_file"] == "letters.pdf"
    assert store.actions(late_ref)[-1].action == "block" and store.actions(late_ref)[-1].actor == "sari"
