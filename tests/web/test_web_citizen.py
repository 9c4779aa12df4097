"""The citizen's confirmation page ``/konfirmasi`` (issue 17 item 3) with FastAPI's TestClient:
nothing without reference + plate, the same answer for an unknown reference and a wrong plate,
rate limiting, the signed one-ticket session, CSRF, the confirmation (owner or another driver)
recorded in the audit log, the messages for other states, only the blurred picture, headers."""

from __future__ import annotations

import re
import sys
import types
from datetime import date, timedelta
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient  # noqa: E402

from etle.evidence import EvidenceWriter, record_violation  # noqa: E402
from etle.settlement import SettlementInputError, record_confirmation  # noqa: E402
from etle.store import NoticeIn, TicketStore  # noqa: E402
from etle.web import WebConfig, create_app  # noqa: E402
from etle.web.citizen import ACTOR, FailureLimiter, mask_name, normalise_reference  # noqa: E402

OWNER = {"owner_name": "Fiktif Budi Santoso", "owner_address": "Jl. Contoh No. 1, Kota Jambi"}
BLURRED = b"\xff\xd8\xff\xe0 a blurred copy \xff\xd9"
CITIZEN_ROUTES = {("GET", "/konfirmasi"), ("POST", "/konfirmasi"), ("GET", "/konfirmasi/{ref}"),
                  ("GET", "/konfirmasi/{ref}/detail"), ("GET", "/konfirmasi/{ref}/bukti.jpg"),
                  ("POST", "/konfirmasi/{ref}/jawab")}


def fake_privacy(calls: list[tuple[Path, str]], *, fail: bool = False, original: bool = False) -> types.ModuleType:
    """Stands for ``etle.privacy``: ``public_image(bundle, name)`` writes a recognisable 'blurred'
    copy under ``<bundle>/public/`` (or fails, or wrongly answers the original's path)."""
    mod = types.ModuleType("etle.privacy")

    def public_image(bundle_dir: Path, name: str) -> Path:
        calls.append((Path(bundle_dir), name))
        if fail:
            raise RuntimeError("no face model")
        if original:
            return Path(bundle_dir) / name
        out = Path(bundle_dir) / "public" / name
        out.parent.mkdir(exist_ok=True)
        out.write_bytes(BLURRED)
        return out

    mod.public_image = public_image  # type: ignore[attr-defined]
    return mod


@pytest.fixture
def site(tmp_path: Path, make_evidence_request, monkeypatch):
    """Six tickets: 0-2 notice_sent (owner found, deadline 8 days after today), 3 pending
    review, 4 rejected, 5 approved; the blurred picture from a stand-in ``etle.privacy``."""
    calls: list[tuple[Path, str]] = []
    monkeypatch.setitem(sys.modules, "etle.privacy", fake_privacy(calls))
    root = tmp_path / "evidence"
    store = TicketStore(f"sqlite:///{tmp_path / 'etle.db'}")
    writer = EvidenceWriter(root)
    store.add_user("rev", role="reviewer")
    refs = []
    for track in range(1, 7):
        rec = record_violation(writer, store, make_evidence_request(track, plate=f"BH{track}234AB"))
        refs.append(store.get(rec.ticket_id).reference)
    for ref in refs[:3] + refs[5:]:
        store.transition(ref, "approve", actor="rev")
        store.record_owner_lookup(store.get(ref).id, status="found", owner=OWNER, actor="system:registry",
                                  source="trial")
    store.transition(refs[4], "reject", actor="rev", reason="occluded")
    today = date.today()
    store.send_notices([NoticeIn(store.get(r).id, today, today + timedelta(days=8), "letters.pdf", "ab" * 32,
                                 OWNER["owner_name"], OWNER["owner_address"]) for r in refs[:3]],
                       actor="system:letters")
    app = create_app(WebConfig(db_url=store.url, evidence_root=root, secret=b"k" * 32, secure_cookies=False),
                     store=store)
    yield app, store, refs, calls
    store.close()


def bundle_of(store: TicketStore, t) -> Path:
    path = Path(t.evidence_path)
    return path if path.is_absolute() else Path(store.url.removeprefix("sqlite:///")).parent / "evidence" / path


def client(app, host: str = "203.0.113.7") -> TestClient:
    return TestClient(app, base_url="http://testserver", follow_redirects=False, client=(host, 50000))


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html[:500]
    return m.group(1)


def try_open(c: TestClient, reference: str, plate: str):
    page = c.get("/konfirmasi")
    return c.post("/konfirmasi", data={"reference": reference, "plate": plate, "csrf": csrf_of(page.text)})


def open_ticket(c: TestClient, reference: str, plate: str) -> str:
    r = try_open(c, reference, plate)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"/konfirmasi/{normalise_reference(reference)}/detail"
    page = c.get(r.headers["location"])
    assert page.status_code == 200
    return page.text


def test_nothing_is_shown_without_reference_and_plate(site) -> None:
    app, store, refs, calls = site
    c = client(app)
    t = store.get(refs[0])
    unknown = refs[0][:-6] + "ZZZZZZ"
    for ref in (refs[0], unknown):
        page = c.get(f"/konfirmasi/{ref}")
        assert page.status_code == 200 and f'value="{ref}"' in page.text  # the QR link fills the reference
        assert t.plate_text not in page.text and "250.000" not in page.text and "Fiktif" not in page.text
        r = c.get(f"/konfirmasi/{ref}/detail")
        assert (r.status_code, r.headers["location"]) == (303, f"/konfirmasi/{ref}")
        r = c.get(f"/konfirmasi/{ref}/bukti.jpg")
        assert r.status_code == 404 and not r.content.startswith(b"\xff\xd8")
        r = c.post(f"/konfirmasi/{ref}/jawab", data={"driver": "owner"})
        assert (r.status_code, r.headers["location"]) == (303, f"/konfirmasi/{ref}")
    # the link of a known and an unknown reference look the same (nothing is looked up)
    known, other = c.get(f"/konfirmasi/{refs[0]}").text, c.get(f"/konfirmasi/{unknown}").text
    assert known.replace(refs[0], "REF") == other.replace(unknown, "REF")
    # no listing, no other public route; everything else still needs a login
    assert {(m, r.path) for r in app.routes for m in getattr(r, "methods", ()) or ()
            if r.path.startswith("/konfirmasi")} == CITIZEN_ROUTES
    for path in ("/konfirmasi/", "/konfirmasi/list", "/konfirmasi/all/detail", "/konfirmasi/1/detail",
                 f"/konfirmasi/{t.uid}/bukti.jpg", f"/tickets/{refs[0]}", f"/tickets/{refs[0]}/files/overview.jpg",
                 "/api/v1/tickets"):
        r = c.get(path)
        assert r.status_code in (200, 303, 307, 401, 404), path
        assert t.plate_text.encode() not in r.content and not r.content.startswith(b"\xff\xd8"), path
        assert refs[1].encode() not in r.content, path
    assert calls == [] and store.get(refs[0]).status == "notice_sent"


def test_unknown_reference_and_wrong_plate_get_the_same_answer(site) -> None:
    app, store, refs, _ = site
    c = client(app)
    t = store.get(refs[0])
    rejected = store.get(refs[4])
    tries = [
        (refs[0], "BH9999ZZ"),                   # the right reference, a wrong plate
        (refs[0][:-6] + "ZZZZZZ", t.plate_text),  # an unknown reference with a real plate
        (rejected.reference, rejected.plate_text),  # a rejected ticket does not exist for the public
        (refs[1], t.plate_text),                 # another ticket's plate
        (refs[0], ""),                           # no plate
    ]
    answers = []
    for ref, plate in tries:
        r = try_open(c, ref, plate)
        assert r.status_code == 400 and 'id="citizen-error"' in r.text
        assert "etle_konfirmasi=" not in r.headers.get("set-cookie", "")
        answers.append(r.text.replace(ref, "REF"))
    assert len(set(answers)) == 1, "the answers differ: references could be enumerated"
    assert "tidak cocok" in answers[0]
    # an id or a uid is not a reference (the store would take them): the same answer, less the echo
    app.state.citizen_limiter.__init__()
    for ref in (str(t.id), t.uid, "../" + refs[0], "<script>"):
        r = try_open(c, ref, t.plate_text)
        assert r.status_code == 400 and 'name="reference" value=""' in r.text and "<script>" not in r.text
        assert r.text == try_open(c, "", t.plate_text).text
        app.state.citizen_limiter.__init__()


def test_the_right_plate_opens_that_ticket_only(site) -> None:
    app, store, refs, calls = site
    c = client(app)
    t = store.get(refs[0])
    r = try_open(c, refs[0].lower() + " ", "bh 1234-ab")  # spacing, case and dashes do not matter
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "etle_konfirmasi=" in cookie and "HttpOnly" in cookie and "Path=/konfirmasi" in cookie
    assert "samesite=strict" in cookie.lower() and "Max-Age=900" in cookie
    page = c.get(r.headers["location"]).text
    for needle in (t.reference, t.plate_text, "Rp 250.000", "Pasal 291(1)", "Kota Jambi", "WIB",
                   'id="citizen-deadline"', "F***** B*** S******", 'id="answer-form"', 'lang="id"'):
        assert needle in page, needle
    assert OWNER["owner_name"] not in page and "Jl. Contoh" not in page
    # bound to that one ticket: another ticket's pages lead back to its form
    r = c.get(f"/konfirmasi/{refs[1]}/detail")
    assert (r.status_code, r.headers["location"]) == (303, f"/konfirmasi/{refs[1]}")
    assert c.get(f"/konfirmasi/{refs[1]}/bukti.jpg").status_code == 404
    r = c.post(f"/konfirmasi/{refs[1]}/jawab", data={"driver": "owner", "csrf": csrf_of(page)})
    assert r.status_code == 303 and store.get(refs[1]).status == "notice_sent"
    # a forged or altered cookie opens nothing
    body, mac = c.cookies.get("etle_konfirmasi").split(".")
    forged = client(app)
    forged.cookies.set("etle_konfirmasi", body + "." + mac[:-2] + "AA", path="/konfirmasi")
    assert forged.get(f"/konfirmasi/{refs[0]}/detail").status_code == 303
    officer = client(app)  # an officer's session cookie signed with the same secret is not a citizen's
    officer.cookies.set("etle_session", c.cookies.get("etle_konfirmasi"))
    assert officer.get("/queue").status_code == 303
    assert calls and all(name == "overview.jpg" for _, name in calls)


def test_failed_tries_are_limited_per_client_and_per_reference(site) -> None:
    app, store, refs, _ = site
    t = store.get(refs[0])
    c = client(app, "198.51.100.1")
    for n in range(5):  # unknown references: only the client's count grows
        assert try_open(c, f"ETLE-20261128-ZZZZZ{n + 2}", "B1XYZ").status_code == 400
    r = try_open(c, refs[0], t.plate_text)  # now even the right plate waits
    assert r.status_code == 429 and r.headers["retry-after"] == "900" and "15 menit" in r.text
    assert "etle_konfirmasi=" not in r.headers.get("set-cookie", "")
    # another client may still open another ticket ...
    assert try_open(client(app, "198.51.100.2"), refs[1], store.get(refs[1]).plate_text).status_code == 303
    # ... but a reference tried too often is held from every address
    for n in range(5):
        assert try_open(client(app, f"192.0.2.{n}"), refs[2], "B1XYZ").status_code == 400
    assert try_open(client(app, "192.0.2.99"), refs[2], store.get(refs[2]).plate_text).status_code == 429


def test_limiter_window_and_bounded_keys() -> None:
    now = [0.0]
    lim = FailureLimiter(limit=2, window_s=60, max_keys=3, clock=lambda: now[0])
    lim.fail("a", "x")
    lim.fail("a")
    assert lim.blocked("a") and lim.blocked("b", "a") and not lim.blocked("x")
    now[0] = 61.0
    assert not lim.blocked("a")
    for k in "pqrs":
        lim.fail(k)
    assert len(lim._fails) <= 3


def test_owner_confirms_with_csrf_and_it_is_audited(site) -> None:
    app, store, refs, _ = site
    c = client(app)
    page = open_ticket(c, refs[0], "BH1234AB")
    r = c.post(f"/konfirmasi/{refs[0]}/jawab", data={"driver": "owner"})
    assert r.status_code == 403 and store.get(refs[0]).status == "notice_sent"
    r = c.post(f"/konfirmasi/{refs[0]}/jawab", data={"driver": "owner", "csrf": "forged"})
    assert r.status_code == 403 and store.get(refs[0]).status == "notice_sent"
    r = c.post(f"/konfirmasi/{refs[0]}/jawab", data={"csrf": csrf_of(page)})
    assert r.status_code == 400 and "Pilih siapa" in r.text
    r = c.post(f"/konfirmasi/{refs[0]}/jawab", data={"driver": "owner", "csrf": csrf_of(page)})
    assert (r.status_code, r.headers["location"]) == (303, f"/konfirmasi/{refs[0]}/detail?msg=confirmed")
    t = store.get(refs[0])
    assert t.status == "confirmed" and t.payment_code
    last = store.actions(t.id)[-1]
    assert (last.action, last.from_status, last.to_status, last.actor) == ("confirm", "notice_sent", "confirmed", ACTOR)
    assert last.data["driver_is_owner"] is True and last.data["via"] == "online"
    token = csrf_of(page)
    page = c.get(r.headers["location"]).text
    assert 'id="citizen-msg"' in page and t.payment_code in page and 'id="answer-form"' not in page
    # answering again: the state, not a second entry
    r = c.post(f"/konfirmasi/{refs[0]}/jawab", data={"driver": "owner", "csrf": token})
    assert r.status_code == 409 and 'data-status="confirmed"' in r.text
    assert [a.action for a in store.actions(t.id)].count("confirm") == 1


def test_another_driver_is_named(site) -> None:
    app, store, refs, _ = site
    c = client(app)
    page = open_ticket(c, refs[1], "BH2234AB")
    token = csrf_of(page)
    r = c.post(f"/konfirmasi/{refs[1]}/jawab", data={"driver": "other", "driver_name": "  ", "csrf": token})
    assert r.status_code == 400 and "nama pengemudi" in r.text.lower()
    r = c.post(f"/konfirmasi/{refs[1]}/jawab", data={"driver": "other", "driver_name": "Fiktif Adi",
                                                    "driver_id": "12-34;DROP", "csrf": token})
    assert r.status_code == 400 and 'value="Fiktif Adi"' in r.text and store.get(refs[1]).status == "notice_sent"
    r = c.post(f"/konfirmasi/{refs[1]}/jawab", data={
        "driver": "other", "driver_name": " Fiktif  Adi <b>", "driver_address": "Jl. Contoh 2\nJambi",
        "driver_id": "1571 0000 0000 0001", "csrf": token})
    assert r.status_code == 303
    last = store.actions(refs[1])[-1]
    assert last.reason == "driver named: Fiktif Adi <b>" and last.actor == ACTOR
    assert last.data["driver_is_owner"] is False and last.data["named_driver"] == "Fiktif Adi <b>"
    assert last.data["driver_address"] == "Jl. Contoh 2 Jambi" and last.data["driver_id_number"] == "1571000000000001"


def test_record_confirmation_driver_details_need_a_name(site) -> None:
    _, store, refs, _ = site
    with pytest.raises(SettlementInputError, match="driver's name"):
        record_confirmation(store, refs[2], driver_is_owner=True, driver_address="Jl. X", actor=ACTOR)
    with pytest.raises(SettlementInputError, match="ID number"):
        record_confirmation(store, refs[2], driver_is_owner=False, named_driver="A", driver_id_number="x" * 21,
                            actor=ACTOR)
    assert store.get(refs[2]).status == "notice_sent"


def test_other_states_get_a_message_and_no_form(site) -> None:
    app, store, refs, _ = site
    record_confirmation(store, refs[0], driver_is_owner=True, actor="rev")
    code = store.get(refs[0]).payment_code
    store.transition(refs[1], "block", actor="rev", reason="no confirmation")
    store.transition(refs[2], "confirm", actor="rev", data={})
    store.transition(refs[2], "pay", actor="rev", data={})
    expect = {refs[0]: ("confirmed", "sudah dikonfirmasi"), refs[1]: ("blocked", "diblokir"),
              refs[2]: ("paid", "sudah dibayar"), refs[3]: ("pending_review", "belum dikirim"),
              refs[5]: ("approved", "belum dikirim")}
    for ref, (status, words) in expect.items():
        c = client(app)
        page = open_ticket(c, ref, store.get(ref).plate_text)
        assert f'data-status="{status}"' in page and words in page and 'id="answer-form"' not in page, ref
        assert ('id="citizen-payment-code"' in page) == (status in ("confirmed", "blocked")), ref
    assert code in open_ticket(client(app), refs[0], "BH1234AB")


def test_only_the_blurred_picture_is_served(site, monkeypatch) -> None:
    app, store, refs, calls = site
    t = store.get(refs[0])
    bundle = bundle_of(store, t)
    c = client(app)
    page = open_ticket(c, refs[0], "BH1234AB")
    assert f'src="/konfirmasi/{refs[0]}/bukti.jpg"' in page
    r = c.get(f"/konfirmasi/{refs[0]}/bukti.jpg")
    assert r.status_code == 200 and r.content == BLURRED and r.headers["content-type"] == "image/jpeg"
    assert "no-store" in r.headers["cache-control"]
    assert (bundle / "overview.jpg").read_bytes() != BLURRED
    # no other bundle file is reachable from the public pages
    for name in ("overview.jpg", "closeup.jpg", "clip.mp4", "manifest.json", "public/overview.jpg"):
        assert c.get(f"/konfirmasi/{refs[0]}/{name}").status_code in (404, 405), name
    # the blurring fails, or answers the original: no picture at all
    for broken in (fake_privacy([], fail=True), fake_privacy([], original=True)):
        monkeypatch.setitem(sys.modules, "etle.privacy", broken)
        page = c.get(f"/konfirmasi/{refs[0]}/detail").text
        assert 'id="citizen-no-photo"' in page and "bukti.jpg" not in page
        r = c.get(f"/konfirmasi/{refs[0]}/bukti.jpg")
        assert r.status_code == 404 and not r.content.startswith(b"\xff\xd8")


@pytest.mark.slow
def test_real_privacy_module_gives_a_copy_if_present(site, monkeypatch) -> None:
    """With the real ``etle.privacy`` (its detectors take a while on a CPU): a blurred copy, never the original."""
    app, store, refs, _ = site
    monkeypatch.delitem(sys.modules, "etle.privacy")
    try:
        import etle.privacy as privacy
    except ImportError:
        pytest.skip("etle.privacy is not there yet")
    if not hasattr(privacy, "public_image"):
        pytest.skip("etle.privacy has no public_image yet")
    c = client(app)
    page = open_ticket(c, refs[0], "BH1234AB")
    bundle = bundle_of(store, store.get(refs[0]))
    original = (bundle / "overview.jpg").read_bytes()
    r = c.get(f"/konfirmasi/{refs[0]}/bukti.jpg")
    if 'id="citizen-photo"' in page:
        assert r.status_code == 200 and r.content != original
    else:
        assert r.status_code == 404


def test_language_headers_and_phone_layout(site) -> None:
    app, store, refs, _ = site
    c = client(app)
    page = c.get(f"/konfirmasi/{refs[0]}")
    assert 'lang="id"' in page.text and "Nomor polisi" in page.text
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page.text
    assert '<label for="plate">' in page.text and '<label for="reference">' in page.text
    for header, value in (("content-security-policy", "default-src 'none'"), ("x-frame-options", "DENY"),
                          ("x-content-type-options", "nosniff"), ("cache-control", "no-store"),
                          ("referrer-policy", "no-referrer")):
        assert value in page.headers[header], header
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "<script" not in page.text
    en = c.get(f"/konfirmasi/{refs[0]}?lang=en")
    assert 'lang="en"' in en.text and "Plate number" in en.text and "etle_lang=en" in en.headers["set-cookie"]
    page = open_ticket(c, refs[0], "BH1234AB")  # the choice is kept
    assert "Maximum fine" in page and "Who was driving" in page
    # escaping: what is typed comes back escaped
    r = try_open(c, 'ETLE-1"><img src=x>', "B1")
    assert "<img src=x>" not in r.text


def test_helpers() -> None:
    assert mask_name("  Fiktif Budi ") == "F***** B***" and mask_name("") == ""
    assert normalise_reference(" etle-20261128-7kq4mz\n") == "ETLE-20261128-7KQ4MZ"
