"""The review web app with FastAPI's TestClient: login, CSRF, roles, escaping, evidence paths,
filters, rate limiting, actions, letters and the JSON API (fast; no browser)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("reportlab")

from fastapi.routing import iter_route_contexts  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from etle.evidence import EvidenceWriter, record_violation  # noqa: E402
from etle.ingest.live import LIVE_ORIGIN  # noqa: E402
from etle.ingest.sources import STREAM_ORIGIN  # noqa: E402
from etle.store import TicketStore  # noqa: E402
from etle.web import WebConfig, create_app  # noqa: E402
from etle.web import auth  # noqa: E402

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch):
    """Cheap Argon2 parameters in tests (production keeps argon2-cffi's defaults)."""
    from argon2 import PasswordHasher
    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def site(tmp_path: Path, make_evidence_request):
    root = tmp_path / "evidence"
    store = TicketStore(f"sqlite:///{tmp_path / 'etle.db'}")
    writer = EvidenceWriter(root)
    refs = []
    for track in (1, 2, 3):
        rec = record_violation(writer, store, make_evidence_request(track, plate=f"BH{track}234AB"))
        refs.append(store.get(rec.ticket_id).reference)
    for name, role in (("rev", "reviewer"), ("sup", "supervisor"), ("adm", "admin")):
        store.add_user(name, role=role)
        auth.set_password(store.engine, name, PASSWORD)
    (tmp_path / "secret.txt").write_text("top secret")
    app = create_app(WebConfig(db_url=store.url, evidence_root=root, secret=b"k" * 32, secure_cookies=False,
                               login_limit=5), store=store)
    yield app, store, refs, tmp_path
    store.close()


def client(app) -> TestClient:
    return TestClient(app, base_url="http://testserver", follow_redirects=False)


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html[:500]
    return m.group(1)


def login(app, user: str = "rev", password: str = PASSWORD) -> TestClient:
    c = client(app)
    page = c.get("/login")
    r = c.post("/login", data={"username": user, "password": password, "csrf": csrf_of(page.text)})
    assert r.status_code == 303, r.text
    return c


def test_every_route_refuses_anonymous(site) -> None:
    app, store, refs, _ = site
    c = client(app)
    ref = refs[0]
    gets = ["/", "/queue", f"/tickets/{ref}", f"/tickets/{ref}/files/overview.jpg", f"/tickets/{ref}/files/clip.mp4",
            f"/tickets/{ref}/letter.pdf", "/letters/2026-11-28.pdf", "/audit", "/admin/users", "/lang/en",
            "/api/v1/tickets", f"/api/v1/tickets/{ref}", f"/api/v1/tickets/{ref}/actions", f"/api/v1/tickets/{ref}/related", "/api/v1/counts",
            "/sites", "/api/v1/sites",
            "/api/docs", "/api/openapi.json", "/docs", "/openapi.json", "/redoc", "/settlement"]
    for path in gets:
        r = c.get(path)
        assert r.status_code in (303, 401, 404), path
        if r.status_code == 303:
            assert r.headers["location"].startswith("/login"), path
        assert b"BH1234AB" not in r.content and not r.content.startswith(b"\xff\xd8"), path
    posts = [f"/tickets/{ref}/approve", f"/tickets/{ref}/reject", f"/tickets/{ref}/plate", f"/tickets/{ref}/reopen",
             "/logout", "/admin/users", f"/api/v1/tickets/{ref}/approve", f"/api/v1/tickets/{ref}/reject",
             f"/api/v1/tickets/{ref}/plate", f"/api/v1/tickets/{ref}/reopen",
             f"/tickets/{ref}/confirm", "/settlement/payments", "/settlement/block-overdue",
             f"/api/v1/tickets/{ref}/confirm", "/api/v1/payments/import", "/api/v1/tickets/block-overdue"]
    for path in posts:
        assert c.post(path, data={"reason": "occluded", "plate": "B1A"}).status_code in (401, 403, 422), path
    # every registered route was tried
    tried = {p.split("?")[0] for p in gets + posts}
    for route in iter_route_contexts(app.routes):  # included routers expanded (FastAPI >= 0.137)
        path = getattr(route, "path", "")
        if path in ("/login",) or path.startswith("/konfirmasi"):  # public by design: tests/web/test_web_citizen.py
            continue
        concrete = path.replace("{ref}", ref).replace("{name}", "overview.jpg").replace("{day}", "2026-11-28").replace("{lang}", "en")
        assert concrete in tried, f"route {path} not covered"
    assert store.get(ref).status == "pending_review"


def test_bad_api_token_and_good_token(site) -> None:
    app, store, refs, _ = site
    c = client(app)
    assert c.get("/api/v1/tickets", headers={"Authorization": "Bearer nope"}).status_code == 401
    token = auth.new_api_token(store.engine, "rev", "payment")
    h = {"Authorization": f"Bearer {token}"}
    body = c.get("/api/v1/tickets", headers=h).json()
    assert body["total"] == 3 and body["counts"] == {"pending_review": 3}
    assert c.get("/api/openapi.json", headers=h).json()["paths"]["/api/v1/tickets"]
    one = c.get(f"/api/v1/tickets/{refs[0]}", headers=h).json()
    assert one["verification"] == "verified"
    # the plate character by character: the reads BH1234AB and BH1234A8 split at the last one
    reading = one["plate_reading"]
    assert "".join(col["char"] for col in reading) == one["plate_text"] == "BH1234AB"
    assert [col["unsure"] for col in reading] == [False] * 7 + [True]
    assert reading[-1]["others"] == [["8", 1]] and (reading[-1]["reads"], reading[-1]["of"]) == (1, 2)
    r = c.post(f"/api/v1/tickets/{refs[0]}/plate", headers=h, json={"plate": "bh 9999 zz"})
    assert r.status_code == 200 and r.json()["plate_text"] == "BH9999ZZ"
    assert c.post(f"/api/v1/tickets/{refs[0]}/approve", headers=h).json()["status"] == "approved"
    assert c.post(f"/api/v1/tickets/{refs[0]}/approve", headers=h).status_code == 409
    assert c.post(f"/api/v1/tickets/{refs[1]}/reject", headers=h, json={"reason": "bogus"}).status_code == 400
    assert c.get(f"/api/v1/tickets/{refs[0]}/actions", headers=h).status_code == 403  # reviewer


def test_forms_without_valid_csrf_are_refused(site) -> None:
    app, store, refs, _ = site
    c = login(app)
    ref = refs[0]
    for token in (None, "", "forged-token"):
        data = {"reason": "occluded", "plate": "B1234CD"}
        if token is not None:
            data["csrf"] = token
        for action in ("approve", "reject", "plate"):
            assert c.post(f"/tickets/{ref}/{action}", data=data).status_code == 403, (action, token)
        assert c.post("/logout", data=data).status_code == 403
    assert store.get(ref).status == "pending_review"
    assert [a.action for a in store.actions(ref)] == ["create"]
    # the session API refuses writes without the header token too
    assert c.post(f"/api/v1/tickets/{ref}/approve").status_code == 403
    # the login form needs its own token
    fresh = client(app)
    assert fresh.post("/login", data={"username": "rev", "password": PASSWORD}).status_code in (403, 422)
    assert fresh.post("/login", data={"username": "rev", "password": PASSWORD, "csrf": "x"}).status_code == 403
    # a tampered session cookie is no session
    bad = client(app)
    bad.cookies.set("etle_session", c.cookies.get("etle_session")[:-3] + "abc")
    assert bad.get("/queue").status_code == 303


def test_session_cookie_flags_and_logout(tmp_path: Path, site) -> None:
    app, store, refs, _ = site
    secure = create_app(WebConfig(db_url=store.url, secret=b"s" * 32), store=store)
    c = TestClient(secure, base_url="https://testserver", follow_redirects=False)
    page = c.get("/login")
    r = c.post("/login", data={"username": "rev", "password": PASSWORD, "csrf": csrf_of(page.text)})
    cookie = [h for h in r.headers.get_list("set-cookie") if h.startswith("etle_session=")][0].lower()
    assert "httponly" in cookie and "secure" in cookie and "samesite=strict" in cookie
    q = c.get("/queue")
    assert q.status_code == 200
    r = c.post("/logout", data={"csrf": csrf_of(q.text)})
    assert r.status_code == 303
    assert c.get("/queue").status_code == 303


def test_html_in_plate_and_reason_is_escaped(site) -> None:
    app, store, refs, _ = site
    evil = "<script>alert(1)</script>"
    store.correct_plate(refs[0], "X<b>1", actor="rev")  # store-side normalisation keeps the markup
    c = login(app, "sup")
    page = c.get(f"/tickets/{refs[1]}")
    r = c.post(f"/tickets/{refs[1]}/reject", data={"reason": "other", "other": evil, "csrf": csrf_of(page.text)})
    assert r.status_code == 303
    html = c.get(f"/tickets/{refs[1]}").text
    assert evil not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    audit = c.get("/audit").text
    assert evil not in audit and "&lt;script&gt;" in audit
    html = c.get(f"/tickets/{refs[0]}").text
    assert "X<b>1" not in html and "X&lt;B&gt;1" in html
    queue = c.get("/queue?plate=" + "%3Cb%3E").text
    assert "<B>" not in queue and "&lt;B&gt;" in queue
    # the web form refuses a plate that is not letters and digits
    page = c.get(f"/tickets/{refs[2]}")
    r = c.post(f"/tickets/{refs[2]}/plate", data={"plate": evil, "csrf": csrf_of(page.text)})
    assert r.status_code == 400 and evil not in r.text


ESCAPES = [
    "../secret.txt", "..%2Fsecret.txt", "%2e%2e%2fsecret.txt", "%2E%2E/%2E%2E/secret.txt", "....//secret.txt",
    "%252e%252e%252fsecret.txt", "/etc/passwd", "%2Fetc%2Fpasswd", "..\\secret.txt", "..%5Csecret.txt",
    "manifest.sig", ".hidden", "overview.jpg%00.txt", "..", ".", "..%2F..%2F..%2Fetc%2Fpasswd",
    "%c0%ae%c0%ae%2fsecret.txt", "../../../../../../etc/passwd",
]


def test_evidence_paths_cannot_escape(site) -> None:
    app, store, refs, tmp = site
    c = login(app)
    for name in ESCAPES:
        r = c.get(f"/tickets/{refs[0]}/files/{name}")
        if name in ("..", "."):  # the client resolves dot segments first: a page, never a file
            assert r.status_code == 404 or r.headers["content-type"].startswith("text/html"), name
        else:
            assert r.status_code in (400, 404, 405), (name, r.status_code)
        assert b"top secret" not in r.content and b"root:" not in r.content, name
    # the ticket reference cannot be a path either
    r = c.get("/tickets/..%2F..%2F/files/overview.jpg")
    assert r.status_code == 404


def test_bundle_outside_the_evidence_root_is_not_served(site) -> None:
    app, store, refs, tmp = site
    c = login(app)
    assert c.get(f"/tickets/{refs[0]}/files/overview.jpg").content.startswith(b"\xff\xd8")
    # a ticket whose stored path points outside the root (a tampered row) serves nothing
    from sqlalchemy import update

    from etle.store.models import Ticket
    with store.engine.begin() as conn:
        conn.execute(update(Ticket).where(Ticket.reference == refs[1]).values(evidence_path=str(tmp)))
    assert c.get(f"/tickets/{refs[1]}/files/overview.jpg").status_code == 404
    assert c.get(f"/tickets/{refs[1]}").text.count('data-state="missing"') == 1


def test_sql_metacharacters_in_filters_are_harmless(site) -> None:
    app, store, refs, _ = site
    c = login(app)
    for key, needle in [(k, n) for k in ("plate", "camera", "rule")
                        for n in ("' OR 1=1 --", "%", "_", "\"; DROP TABLE tickets; --", "B%' OR '1'='1", "\\")]:
        r = c.get("/queue", params={key: needle, "status": "all"})
        assert r.status_code == 200
        assert 'id="empty"' in r.text, (key, needle)
    assert c.get("/queue", params={"from": needle}).status_code == 400
    assert c.get("/queue", params={"status": needle}).status_code == 400
    assert store.count() == 3


def test_wrong_passwords_are_rate_limited(site) -> None:
    app, store, refs, _ = site
    c = client(app)
    for i in range(5):
        page = c.get("/login")
        r = c.post("/login", data={"username": "rev", "password": f"wrong{i}", "csrf": csrf_of(page.text)})
        assert r.status_code == 401
    page = c.get("/login")
    r = c.post("/login", data={"username": "rev", "password": PASSWORD, "csrf": csrf_of(page.text)})
    assert r.status_code == 429  # even the right password, until the window passes
    assert "etle_session" not in r.cookies
    # unknown users take the same path (no user enumeration)
    other = client(app)
    page = other.get("/login")
    assert other.post("/login", data={"username": "ghost", "password": "x" * 9,
                                      "csrf": csrf_of(page.text)}).status_code in (401, 429)


def test_passwords_are_argon2_hashed(site) -> None:
    app, store, *_ = site
    from sqlalchemy import select
    from sqlalchemy.orm import Session
    with Session(store.engine) as s:
        row = s.scalars(select(auth.WebCredential).where(auth.WebCredential.username == "rev")).one()
    assert row.password_hash.startswith("$argon2id$") and PASSWORD not in row.password_hash
    with pytest.raises(ValueError):
        auth.hash_password("short")


def test_roles_limit_actions(site) -> None:
    app, store, refs, _ = site
    rev = login(app, "rev")
    assert rev.get("/audit").status_code == 403
    assert rev.get("/admin/users").status_code == 403
    page = rev.get("/queue")
    assert rev.post("/admin/users", data={"username": "x", "password": "y" * 9, "role": "admin",
                                          "csrf": csrf_of(page.text)}).status_code == 403
    sup = login(app, "sup")
    assert sup.get("/audit").status_code == 200 and sup.get("/admin/users").status_code == 403
    adm = login(app, "adm")
    page = adm.get("/admin/users")
    assert page.status_code == 200
    r = adm.post("/admin/users", data={"username": "newbie", "password": "n" * 10, "role": "reviewer",
                                       "csrf": csrf_of(page.text)})
    assert r.status_code == 303 and "newbie" in {u.username for u in store.users()}
    login(app, "newbie", "n" * 10)


def test_queue_filters_counts_and_pagination(site) -> None:
    app, store, refs, _ = site
    c = login(app)
    html = c.get("/queue").text
    assert all(ref in html for ref in refs)
    assert 'data-status="pending_review"' in html
    assert refs[1] in c.get("/queue", params={"plate": "bh2"}).text
    assert refs[0] not in c.get("/queue", params={"plate": "bh2"}).text
    assert refs[0] in c.get("/queue", params={"camera": "jbi-01", "rule": "no_helmet", "from": "2026-11-28",
                                              "to": "2026-11-28"}).text
    assert 'id="empty"' in c.get("/queue", params={"from": "2026-11-29"}).text
    assert 'id="empty"' in c.get("/queue", params={"status": "approved"}).text
    assert c.get("/queue", params={"page": "2"}).status_code == 200


def test_review_actions_are_audited_and_letter_pdf(site) -> None:
    PdfReader = pytest.importorskip("pypdf").PdfReader

    app, store, refs, _ = site
    c = login(app, "rev")
    ref = refs[0]
    page = c.get(f"/tickets/{ref}")
    assert page.status_code == 200
    for img in ("overview.jpg", "closeup.jpg", "plate.jpg", "clip.mp4"):
        assert f"/tickets/{ref}/files/{img}" in page.text
    assert 'data-state="verified"' in page.text and "Setujui" in page.text
    assert c.get(f"/tickets/{ref}/letter.pdf").status_code == 409  # not approved yet
    token = csrf_of(page.text)
    assert c.post(f"/tickets/{ref}/plate", data={"plate": "bh 4321 xy", "csrf": token}).status_code == 303
    assert c.post(f"/tickets/{ref}/approve", data={"csrf": token}).status_code == 303
    assert c.post(f"/tickets/{ref}/reject", data={"reason": "occluded", "csrf": token}).status_code == 409
    t = store.get(ref)
    assert (t.status, t.plate_text) == ("approved", "BH4321XY")
    reads = store.plate_reads(ref)
    assert any(r.text == "BH1234AB" and r.source != "reviewer" for r in reads)  # the original read is kept
    assert [(a.action, a.actor) for a in store.actions(ref)] == [("create", "system:pipeline"), ("correct_plate", "rev"),
                                                                  ("approve", "rev")] or \
        [a.action for a in store.actions(ref)][-2:] == ["correct_plate", "approve"]
    pdf = c.get(f"/tickets/{ref}/letter.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    text = PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text()
    for needle in ("BH4321XY", ref, "Rp 250.000", "SURAT KONFIRMASI", "Tugu Juang", "291(1)", "Kota Jambi"):
        assert needle in text, needle
    day = t.status_changed_at.date().isoformat()
    batch = c.get(f"/letters/{day}.pdf")
    assert len(PdfReader(io.BytesIO(batch.content)).pages) == 1
    # English on request
    c.get("/lang/en")
    assert "Approve" in c.get(f"/tickets/{refs[1]}").text
    en = PdfReader(io.BytesIO(c.get(f"/tickets/{ref}/letter.pdf").content)).pages[0].extract_text()
    assert "CONFIRMATION LETTER" in en
    token = csrf_of(c.get(f"/tickets/{refs[1]}").text)
    r = c.post(f"/tickets/{refs[1]}/reject", data={"reason": "duplicate", "csrf": token})
    assert r.status_code == 303
    last = store.actions(refs[1])[-1]
    assert (last.action, last.actor, last.reason) == ("reject", "rev", "duplicate")


def test_altered_bundle_is_shown_altered(site) -> None:
    app, store, refs, _ = site
    t = store.get(refs[2])
    (Path(t.evidence_path) / "plate.jpg").write_bytes(b"\xff\xd8tampered")
    c = login(app)
    assert 'data-state="altered"' in c.get(f"/tickets/{refs[2]}").text


def test_an_offloaded_bundle_is_shown_held_at_the_central_store(site) -> None:
    """On an edge box that removed a synced ticket's media (etle.evidence.offload) the page says the
    central store holds them; the same absence without the records behind it is 'altered'."""
    from etle.evidence.offload import offload_synced
    from etle.evidence.storage import LocalEvidenceStorage

    app, store, refs, tmp = site
    t0, t1 = store.get(refs[0]), store.get(refs[1])
    store.mark_synced([t0.id])
    root = Path(t0.evidence_path).parents[2]
    assert offload_synced(store, LocalEvidenceStorage(root)).references == (t0.reference,)
    c = login(app)
    page = c.get(f"/tickets/{refs[0]}").text
    assert 'data-state="offloaded"' in page and "pusat" in page  # Indonesian by default
    assert c.get(f"/tickets/{refs[0]}/files/overview.jpg").status_code == 404
    assert 'id="clip-omitted"' not in page  # offloaded, not left out: the central store has the clip
    (Path(t1.evidence_path) / "offloaded.json").write_text((Path(t0.evidence_path) / "offloaded.json").read_text())
    (Path(t1.evidence_path) / "overview.jpg").unlink()  # not synced: its absence is not excused
    assert 'data-state="altered"' in c.get(f"/tickets/{refs[1]}").text


def test_other_tickets_of_the_vehicle_and_possible_duplicates(site, make_evidence_request) -> None:
    """The ticket page lists the vehicle's other tickets (same plate, or same passage) and marks
    the ones that may be the same act; the queue marks tickets that have such a twin."""
    from dataclasses import replace
    from datetime import datetime, timedelta, timezone

    app, store, refs, tmp_path = site
    writer = EvidenceWriter(tmp_path / "evidence")
    at = datetime(2026, 12, 1, 2, 0, tzinfo=timezone.utc)

    def add(track: int, *, camera: str = "jbi-01", dt: float = 0.0, plate: str = "BH7777XY", rule: str | None = None) -> str:
        req = make_evidence_request(track, camera=camera, at=at + timedelta(seconds=dt), plate=plate)
        if rule is not None:
            req = replace(req, violation=replace(req.violation, rule=rule))
        return store.get(record_violation(writer, store, req).ticket_id).reference

    first = add(40)
    other_camera = add(41, camera="jbi-02", dt=60)  # the same plate a minute later at the next camera
    next_day = add(42, dt=86400)  # the same plate the next day: a repeat, not a duplicate
    same_passage = add(40, rule="red_light", plate="")  # another rule on the same track, its plate unread
    stranger = add(43, plate="BH1111ZZ", dt=5)
    c = login(app)
    html = c.get(f"/tickets/{first}").text
    table = html[html.index('id="related"'):]
    table = table[: table.index("</table>")]
    rows = dict(re.findall(r'data-reference="([^"]+)">(.*?)</tr>', table, re.S))
    assert set(rows) == {other_camera, next_day, same_passage}
    assert "kemungkinan ganda" in rows[other_camera] and "lintasan yang sama" in rows[same_passage]
    assert "dup-mark" not in rows[next_day]
    assert [v.reference for v in store.related(same_passage)] == [first]  # no plate: its passage only
    assert 'id="related"' not in c.get(f"/tickets/{stranger}").text
    queue = c.get("/queue", params={"status": "all"}).text
    marked = set(re.findall(r'class="ticket-link">([^<]+)</a> <span class="dup-mark', queue))
    assert marked == {first, other_camera, same_passage}
    api = {r["reference"]: r for r in c.get(f"/api/v1/tickets/{first}/related").json()}
    assert set(api) == set(rows) and api[other_camera]["possible_duplicate"] and not api[other_camera]["same_passage"]
    assert api[same_passage]["same_passage"] and not api[next_day]["possible_duplicate"]


def test_a_ticket_recorded_without_its_clip_says_why(site, make_evidence_request) -> None:
    from dataclasses import replace

    app, store, refs, tmp_path = site
    note = "clip left out: 812 MB free, under 1024 MB"
    req = replace(make_evidence_request(60, clip=False), extra={"clip_omitted": note})
    ref = store.get(record_violation(EvidenceWriter(tmp_path / "evidence"), store, req).ticket_id).reference
    c = login(app)
    html = c.get(f"/tickets/{ref}").text
    assert 'id="clip-omitted"' in html and note in html and 'id="clip"' not in html
    assert 'id="clip-omitted"' not in c.get(f"/tickets/{refs[0]}").text


def test_the_edge_sites_page_shows_silent_and_troubled_boxes(site) -> None:
    """Supervisors see each edge box's last report: silent for 10 minutes, a camera down, a disk
    leaving evidence out and an unsynchronised clock in red; reviewers do not see the page."""
    from datetime import datetime, timedelta, timezone

    app, store, refs, _ = site
    now = datetime.now(timezone.utc)
    cams = {"cam-1": {"ok": True}, "cam-2": {"ok": False, "last_error": "connection refused"}}
    store.report_site_status("jbi-sudirman", {"status": "degraded", "pending": 12, "cameras": cams,
                                              "storage": {"free_gb": 0.8, "state": "no_clips"},
                                              "clock": {"synchronized": False}}, at=now - timedelta(seconds=30))
    store.report_site_status("jbi-thehok", {"status": "ok", "pending": 0, "cameras": {"cam-3": {"ok": True}},
                                            "storage": {"free_gb": 40.5, "state": "ok"},
                                            "clock": {"synchronized": True}}, at=now - timedelta(hours=3))
    assert login(app, "rev").get("/sites").status_code == 403
    assert login(app, "rev").get("/api/v1/sites").status_code == 403
    c = login(app, "sup")
    html = c.get("/sites").text
    rows = dict(re.findall(r'<tr data-site="([^"]+)" class="([^"]*)"', html))
    assert rows == {"jbi-sudirman": "", "jbi-thehok": "silent"}
    sud = html[html.index('data-site="jbi-sudirman"'):]
    sud = sud[: sud.index("</tr>")]
    assert "1 / 2" in sud and "cam-2" in sud and "0.8 GB (no_clips)" in sud and "TIDAK tersinkron" in sud and "12" in sud
    assert "3 h" in html and 'id="nav-sites"' in html
    api = {r["site"]: r for r in c.get("/api/v1/sites").json()}
    assert api["jbi-thehok"]["silent"] and not api["jbi-sudirman"]["silent"]
    assert api["jbi-sudirman"]["cameras_down"] == ["cam-2"] and api["jbi-sudirman"]["clock"] is False
    assert 'id="nav-sites"' not in login(app, "rev").get("/queue").text


def test_cli_users_add_and_list(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from etle.commands.web_cmds import register

    app = typer.Typer()
    register(app)
    db = f"sqlite:///{tmp_path / 'u.db'}"
    runner = CliRunner()
    r = runner.invoke(app, ["users", "add", "budi", "--role", "supervisor", "--db", db, "--password-stdin"],
                      input="s3cret-pass\n")
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["users", "list", "--db", db])
    assert "budi\tsupervisor" in r.output
    with TicketStore(db) as store:
        assert auth.check_password(store.engine, "budi", "s3cret-pass")
        assert not auth.check_password(store.engine, "budi", "wrong")
    r = runner.invoke(app, ["users", "token", "budi", "--db", db])
    assert r.exit_code == 0 and r.output.startswith("etle_")


def test_only_a_supervisor_reopens_a_decided_ticket(site) -> None:
    app, store, refs, _ = site
    rev = login(app, "rev")
    page = rev.get(f"/tickets/{refs[0]}")
    assert rev.post(f"/tickets/{refs[0]}/reject", data={"reason": "occluded", "csrf": csrf_of(page.text)}).status_code == 303
    page = rev.get(f"/tickets/{refs[0]}")
    assert 'id="reopen-form"' not in page.text
    assert rev.post(f"/tickets/{refs[0]}/reopen", data={"reason": "x", "csrf": csrf_of(page.text)}).status_code == 403
    assert store.get(refs[0]).status == "rejected"
    sup = login(app, "sup")
    page = sup.get(f"/tickets/{refs[0]}")
    assert 'id="reopen-form"' in page.text
    r = sup.post(f"/tickets/{refs[0]}/reopen", data={"reason": "plate visible in the clip", "csrf": csrf_of(page.text)})
    assert r.status_code == 303 and store.get(refs[0]).status == "pending_review"
    actions = [a.action for a in store.actions(store.get(refs[0]).id)]
    assert actions[-2:] == ["reject", "reopen"]
    # a pending ticket cannot be reopened
    page = sup.get(f"/tickets/{refs[0]}")
    assert sup.post(f"/tickets/{refs[0]}/reopen", data={"reason": "", "csrf": csrf_of(page.text)}).status_code == 409


def test_violation_details_and_review_only_flags_are_shown(site, make_evidence_request) -> None:
    from dataclasses import replace

    app, store, refs, tmp_path = site
    req = make_evidence_request(7, plate="XX12")
    details = {"review_only": True, "reasons": ["grammar", "<b>odd</b>"], "plate": "XX12"}
    req = replace(req, violation=replace(req.violation, rule="invalid_plate", details=details))
    rec = record_violation(EvidenceWriter(tmp_path / "evidence"), store, req)
    flagged = store.get(rec.ticket_id).reference
    c = login(app)
    html = c.get(f"/tickets/{flagged}").text
    assert 'id="review-only"' in html
    table = html[html.index('id="violation-details"'):]
    table = table[: table.index("</table>")]
    assert "reasons" in table and "grammar, &lt;b&gt;odd&lt;/b&gt;" in table and "XX12" in table
    assert "review_only" not in table  # shown as the banner, not as a row
    plain = c.get(f"/tickets/{refs[0]}").text  # a no_helmet ticket without details
    assert 'id="review-only"' not in plain and 'id="violation-details"' not in plain


@pytest.mark.parametrize("origin, part, key, weak, synced", [
    ("file modification time", None, "origin_mtime", True, None),
    ("container creation_time", None, "origin_creation", True, None),
    ("the file name", "/rec/ch01_20240115073500.mp4", "origin_name", False, None),
    ("the clock in the picture (OSD)", None, "origin_osd", False, None),
    (LIVE_ORIGIN, None, "origin_live", False, True),
    (LIVE_ORIGIN, None, "origin_live_unsynced", True, False),
    (STREAM_ORIGIN, None, "origin_live", False, None),
])
def test_the_ticket_page_says_what_dated_the_ticket(site, make_evidence_request, origin: str, part: str | None,
                                                    key: str, weak: bool, synced: bool | None) -> None:
    """A ticket's time rests on its recording's start: the officer sees where that came from, and
    a caution where it is a file's creation or modification time (an export's or a copy's), or an
    edge box's clock that no time server had set."""
    from dataclasses import replace

    app, store, refs, tmp_path = site
    extra = {"source": "/rec/a.mp4", "wall_start_origin": origin}
    if synced is not None:
        extra["box_clock_synchronized"] = synced
    if part is not None:
        extra |= {"part": part, "part_pts": 12.34, "parts": ["/rec/a.mp4", part]}
    req = replace(make_evidence_request(9), extra=extra)
    rec = record_violation(EvidenceWriter(tmp_path / "evidence"), store, req)
    c = login(app)
    html = c.get(f"/tickets/{store.get(rec.ticket_id).reference}").text
    small = html[html.index('id="time-origin"'):]
    small = small[: small.index("</small>")]
    assert f'data-origin="{key}"' in small
    assert ('class="bad"' in small) == weak and ("cocokkan" in small) == weak
    assert ("ch01_20240115073500.mp4 @ 12.3 s" in small) == (part is not None)
    plain = c.get(f"/tickets/{refs[0]}").text  # evidence without a recorded origin: nothing said
    assert 'id="time-origin"' not in plain


def test_the_ticket_page_shows_the_plate_character_by_character(site) -> None:
    app, store, refs, _ = site
    c = login(app)
    html = c.get(f"/tickets/{refs[0]}").text
    table = re.search(r'<table id="plate-reading"[^>]*>(.*?)</table>', html, re.S)
    assert table, "no plate reading on the ticket page"
    cells = re.findall(r'<td class="([^"]*)"[^>]*>(.*?)</td>', table.group(1), re.S)
    # the reads: BH1234AB (0.8) and BH1234A8 (0.3): every character but the last read alike
    assert [re.search(r'class="plate">([^<]*)<', body).group(1) for _, body in cells] == list("BH1234AB")
    assert [cls for cls, _ in cells] == [""] * 7 + ["unsure"]
    assert "2/2" in cells[0][1] and "1/2" in cells[7][1] and "<small>8 1</small>" in cells[7][1]


def test_plate_reading_of_an_unread_ticket_votes_over_the_reads() -> None:
    from etle.store.views import PlateCandidate
    from etle.web.plate_reading import plate_reading

    class Tk:
        plate_text = ""
        plate_candidates = tuple(PlateCandidate(t, 0.8, i) for i, t in enumerate(["R5154VP", "R5154VP", "R5154WP", "R5154MP", ""]))

    cols = plate_reading(Tk())
    assert cols is not None and "".join(c["char"] for c in cols) == "R5154VP"
    assert [c["unsure"] for c in cols] == [False] * 5 + [True, False]
    assert cols[5]["others"] == [("M", 1), ("W", 1)] and (cols[5]["reads"], cols[5]["of"]) == (2, 4)

    class NoReads:
        plate_text = "B1AB"
        plate_candidates = ()

    assert plate_reading(NoReads()) is None
    assert all(c["certainty"] is None and not c["doubt"] for c in cols)  # reads without probabilities


def test_plate_reading_marks_a_character_the_recogniser_was_unsure_of_though_the_reads_agree() -> None:
    from etle.store.views import PlateCandidate
    from etle.web.plate_reading import plate_reading

    unsure_b = (0.99,) * 6 + (0.04,)

    class Tk:
        plate_text = "L1438EB"
        plate_candidates = tuple(PlateCandidate("L1438EB", 0.85, i, unsure_b) for i in range(3))

    cols = plate_reading(Tk())
    assert cols is not None and [c["unsure"] for c in cols] == [False] * 7  # the reads all agree
    assert [c["doubt"] for c in cols] == [False] * 6 + [True] and cols[6]["certainty"] == pytest.approx(0.04)
    # the candidates keep their probabilities through the store's JSON
    back = PlateCandidate.coerce(Tk.plate_candidates[0].as_dict())
    assert back.char_conf == pytest.approx(unsure_b)
    assert "char_conf" not in PlateCandidate("B1AB", 0.9).as_dict()


def test_a_ticket_showing_unread_cannot_be_approved_until_its_plate_is_corrected(tmp_path: Path, make_evidence_request) -> None:
    root = tmp_path / "evidence"
    store = TicketStore(f"sqlite:///{tmp_path / 'etle.db'}")
    rec = record_violation(EvidenceWriter(root), store, make_evidence_request(7, plate=""))
    ref = store.get(rec.ticket_id).reference
    store.add_user("rev", role="reviewer")
    auth.set_password(store.engine, "rev", PASSWORD)
    app = create_app(WebConfig(db_url=store.url, evidence_root=root, secret=b"k" * 32, secure_cookies=False), store=store)
    c = login(app)
    page = c.get(f"/tickets/{ref}").text
    assert 'id="approve-form"' not in page and 'id="approve-needs-plate"' in page
    r = c.post(f"/tickets/{ref}/approve", data={"csrf": csrf_of(page)})
    assert r.status_code == 409 and "no confirmed plate" in r.text
    assert store.get(ref).status == "pending_review"
    # the officer reads the plate from the evidence and saves it: now it can be approved
    assert c.post(f"/tickets/{ref}/plate", data={"plate": "BH 1234 AB", "csrf": csrf_of(page)}).status_code == 303
    page = c.get(f"/tickets/{ref}").text
    assert 'id="approve-form"' in page
    assert c.post(f"/tickets/{ref}/approve", data={"csrf": csrf_of(page)}).status_code == 303
    assert store.get(ref).status == "approved" and store.get(ref).plate_text == "BH1234AB"
    store.close()


def test_the_ticket_page_marks_a_plate_character_the_recogniser_was_unsure_of(tmp_path: Path, make_evidence_request) -> None:
    """Reads that all agree on a letter the recogniser was unsure of (an O read as B every time):
    the pipeline prints the plate (the vote holds), the probabilities go through the evidence
    commit and the store, and the officer's page marks that character with its percentage."""
    from dataclasses import replace

    from etle.types import PlateRead, PlateResult

    store = TicketStore(f"sqlite:///{tmp_path / 'etle.db'}")
    conf = (0.99,) * 6 + (0.04,)
    reads = tuple(PlateRead("L1438EB", 0.85, frame_index=k, char_conf=conf) for k in range(3))
    req = make_evidence_request(5)
    req = replace(req, plate=PlateResult("L1438EB", 0.85, candidates=reads, best=reads[0]))
    rec = record_violation(EvidenceWriter(tmp_path / "evidence"), store, req)
    tk = store.get(rec.ticket_id)
    assert tk.plate_text == "L1438EB" and tk.plate_candidates[0].char_conf == pytest.approx(conf)
    store.add_user("rev", role="reviewer")
    auth.set_password(store.engine, "rev", PASSWORD)
    app = create_app(WebConfig(db_url=store.url, evidence_root=tmp_path / "evidence", secret=b"k" * 32,
                               secure_cookies=False), store=store)
    sure = store.get(record_violation(EvidenceWriter(tmp_path / "evidence"), store, make_evidence_request(6)).ticket_id)
    c = login(app)
    html = c.get(f"/tickets/{tk.reference}").text
    table = re.search(r'<table id="plate-reading"[^>]*>(.*?)</table>', html, re.S)
    assert table
    cells = re.findall(r'<td class="([^"]*)"[^>]*>(.*?)</td>', table.group(1), re.S)
    assert [cls.strip() for cls, _ in cells] == [""] * 6 + ["doubt"]
    assert '<small class="certainty">4%</small>' in cells[6][1] and '<small class="certainty">99%</small>' in cells[0][1]
    # the queue marks the plate to look at, and only that one
    queue = c.get("/queue").text
    rows = {ref: body for ref, body in re.findall(r'data-href="/tickets/([^"]+)">(.*?)</tr>', queue, re.S)}
    assert set(rows) == {tk.reference, sure.reference}
    assert 'class="doubt-mark"' in rows[tk.reference] and 'class="doubt-mark"' not in rows[sure.reference]
    store.close()
