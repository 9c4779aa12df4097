"""Letters for the post (issue item 2): the owner's address block, the deadline in the camera's
time zone and how to confirm on the letter; the no-owner marking; a day's batch of letters only
for tickets with an owner and no registry mismatch; the notice register and the approved ->
notice_sent transition with audit entries; an idempotent re-run; the CLI's one-line errors."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

pytest.importorskip("reportlab")
PdfReader = pytest.importorskip("pypdf").PdfReader

from etle.errors import ConfigError  # noqa: E402
from etle.evidence import EvidenceWriter, record_violation  # noqa: E402
from etle.letters import day_approvals, make_batch, notice_dates, parse_day, ticket_zone  # noqa: E402
from etle.store import CameraIn, NoticeIn, TicketStore, TransitionError  # noqa: E402
from etle.web.app import translator  # noqa: E402
from etle.letters.pdf import render_letters  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
URL = "https://etle.example.go.id"
DAY = date(2026, 11, 28)
APPROVED_AT = datetime(2026, 11, 28, 3, 0, tzinfo=timezone.utc)  # 10:00 in Jakarta
LATE_APPROVAL = datetime(2026, 11, 28, 18, 0, tzinfo=timezone.utc)  # 01:00 on the 29th in Jakarta
NOW = datetime(2026, 11, 29, 20, 0, tzinfo=timezone.utc)  # 03:00 on the 30th in Jakarta
OWNER = {"owner_name": "Fiktif Budi Santoso (CONTOH)", "owner_address": "Jl. Contoh No. 1, RT 01/RW 02\nKota Jambi 36111",
         "make": "Honda", "vehicle_colour": "hitam", "vehicle_type": "motorcycle"}


def pdf_text(data: bytes) -> list[str]:
    return [p.extract_text() for p in PdfReader(io.BytesIO(data)).pages]


@pytest.fixture
def site(tmp_path: Path, make_evidence_request):
    """Seven tickets of camera jbi-01 (Asia/Jakarta), approved by 'rev' unless said:
    t1 owner found; t2 owner found but mismatch; t3 plate not in the registry; t4 not looked up;
    t5 owner found, approved late (the next day in Jakarta); t6 pending; t7 owner found."""
    root = tmp_path / "evidence"
    store = TicketStore(f"sqlite:///{tmp_path / 'etle.db'}")
    store.register_camera(CameraIn("jbi-01", "Tugu Juang", "Kota Jambi", timezone="Asia/Jakarta"))
    store.add_user("rev", role="reviewer")
    writer = EvidenceWriter(root)
    refs: dict[str, str] = {}
    for track in range(1, 8):
        rec = record_violation(writer, store, make_evidence_request(track, plate=f"BH{track}234AB"))
        refs[f"t{track}"] = store.get(rec.ticket_id).reference
    for name in ("t1", "t2", "t3", "t4", "t5", "t7"):
        store.transition(refs[name], "approve", actor="rev", at=LATE_APPROVAL if name == "t5" else APPROVED_AT)
    for name in ("t1", "t5", "t7"):
        store.record_owner_lookup(refs[name], status="found", owner=OWNER, actor="system:registry", source="trial")
    store.record_owner_lookup(refs["t2"], status="found", owner=OWNER, actor="system:registry",
                              mismatch="vehicle_type: registry car, camera motorcycle")
    store.record_owner_lookup(refs["t3"], status="not_found", actor="system:registry")
    yield store, refs, root, tmp_path
    store.close()


def test_notice_dates_follow_the_camera_time_zone() -> None:
    assert notice_dates(NOW, "Asia/Jakarta") == (date(2026, 11, 30), date(2026, 12, 8))
    assert notice_dates(NOW, "UTC", 14) == (date(2026, 11, 29), date(2026, 12, 13))
    # a camera row without its zone: the ticket's own local time says +07:00
    assert notice_dates(NOW, ticket_zone("UTC", "2026-11-28T10:00:00+07:00"))[0] == date(2026, 11, 30)
    assert parse_day("2026-11-28") == DAY
    for bad in ("2026-13-01", "28-11-2026", "2026-11-28T00:00", ""):
        with pytest.raises(ConfigError):
            parse_day(bad)


def test_letter_has_owner_block_deadline_and_how_to_confirm(site) -> None:
    store, refs, _, _ = site
    t = store.get(refs["t1"])
    notice, deadline = notice_dates(NOW, "Asia/Jakarta")
    item = {"ticket": t, "rule_title": "Tidak memakai helm", "photo": None, "confirm_url": f"{URL}/konfirmasi/{t.reference}",
            "issued": APPROVED_AT, "reviewer": "rev", "notice_date": notice, "deadline": deadline}
    text = pdf_text(render_letters([item], tr=translator("id"), lang="id"))[0]
    for needle in ("Kepada Yth.", "Fiktif Budi Santoso (CONTOH)", "Jl. Contoh No. 1, RT 01/RW 02", "Kota Jambi 36111",
                   "Tanggal surat", "2026-11-30", "Batas konfirmasi", "2026-12-08", "Cara konfirmasi",
                   f"{URL}/konfirmasi/{t.reference}", f"kode referensi {t.reference}", "nomor polisi BH1234AB",
                   "paling lambat 2026-12-08"):
        assert needle in text, needle
    assert "TIDAK DAPAT DIKIRIM" not in text
    en = pdf_text(render_letters([item], tr=translator("en"), lang="en"))[0]
    assert "How to confirm" in en and "Confirm by 2026-12-08" in en and "Fiktif Budi Santoso" in en


def test_letter_without_owner_is_marked_not_postable(site) -> None:
    store, refs, _, _ = site
    for name, status in (("t4", "belum dicari"), ("t3", "not_found")):
        t = store.get(refs[name])
        item = {"ticket": t, "rule_title": "x", "photo": None, "confirm_url": f"{URL}/konfirmasi/{t.reference}",
                "issued": APPROVED_AT, "reviewer": "rev"}
        text = pdf_text(render_letters([item], tr=translator("id"), lang="id"))[0]
        assert "ALAMAT PEMILIK TIDAK DIKETAHUI" in text and "TIDAK DAPAT DIKIRIM" in text, text
        assert status in text and "Kepada Yth." not in text
        assert t.reference in text and "Batas konfirmasi" in text  # still a complete letter otherwise


def test_day_is_the_approval_date_in_the_camera_time_zone(site) -> None:
    store, refs, _, _ = site
    assert {a.ticket.reference for a in day_approvals(store, DAY)} == {refs[n] for n in ("t1", "t2", "t3", "t4", "t7")}
    assert [a.ticket.reference for a in day_approvals(store, date(2026, 11, 29))] == [refs["t5"]]
    assert day_approvals(store, date(2026, 11, 27)) == []


def test_batch_only_owned_unflagged_tickets_register_and_transition(site) -> None:
    store, refs, root, tmp_path = site
    ticks: list[tuple[int, int]] = []
    started = datetime.now(timezone.utc)
    res = make_batch(store, DAY, tmp_path / "out.pdf", public_url=URL + "/", evidence_root=root, now=NOW,
                     on_ticket=lambda i, n: ticks.append((i, n)))
    assert res.path == tmp_path / "out.pdf" and ticks == [(1, 2), (2, 2)]
    data = res.path.read_bytes()
    assert res.sha256 == hashlib.sha256(data).hexdigest()
    pages = pdf_text(data)
    assert len(pages) == 2
    assert {refs["t1"], refs["t7"]} == {r for r in (refs["t1"], refs["t7"]) if any(r in p for p in pages)}
    assert all("Fiktif Budi Santoso (CONTOH)" in p and "2026-12-08" in p for p in pages)
    assert not list(tmp_path.glob(".letters-*"))  # no temporary file left
    skipped = {s.reference: s.reason for s in res.skipped}
    assert set(skipped) == {refs["t2"], refs["t3"], refs["t4"]}
    assert skipped[refs["t2"]].startswith("registry mismatch") and "not in the vehicle registry" in skipped[refs["t3"]]
    assert "not looked up" in skipped[refs["t4"]] and res.already_sent == []
    # the register: one row per letter, the addressee as printed
    rows = store.notices()
    assert [r.reference for r in rows] == [n.reference for n in res.notices] and len(rows) == 2
    for r in rows:
        assert (r.notice_date, r.deadline, r.batch_file, r.batch_sha256) == (date(2026, 11, 30), date(2026, 12, 8),
                                                                            "out.pdf", res.sha256)
        assert r.addressee_name == OWNER["owner_name"] and r.addressee_address == OWNER["owner_address"]
        assert r.actor == "system:letters" and r.created_at >= started.replace(microsecond=0)
    assert store.notices(notice_date=date(2026, 11, 30)) == rows and store.notices(notice_date=DAY) == []
    # the lifecycle: notice_sent, audited; the others untouched
    for name in ("t1", "t7"):
        assert store.get(refs[name]).status == "notice_sent"
        last = store.actions(refs[name])[-1]
        assert (last.action, last.from_status, last.to_status, last.actor) == ("send_notice", "approved", "notice_sent",
                                                                               "system:letters")
        assert last.data["batch_sha256"] == res.sha256 and last.data["deadline"] == "2026-12-08"
    assert {store.get(refs[n]).status for n in ("t2", "t3", "t4", "t5")} == {"approved"}
    assert store.get(refs["t6"]).status == "pending_review"


def test_rerun_registers_nothing_twice_and_never_overwrites(site, monkeypatch) -> None:
    store, refs, root, tmp_path = site
    monkeypatch.chdir(tmp_path)
    first = make_batch(store, DAY, public_url=URL, evidence_root=root, now=NOW)
    assert first.path == Path("letters-2026-11-28.pdf") and len(first.notices) == 2
    again = make_batch(store, DAY, public_url=URL, evidence_root=root, now=NOW)
    assert again.path is None and again.notices == []
    assert {s.reference for s in again.already_sent} == {refs["t1"], refs["t7"]}
    assert all("already sent: letters-2026-11-28.pdf" in s.reason for s in again.already_sent)
    assert len(store.notices()) == 2
    sends = [a for a in store.actions(refs["t1"]) if a.action == "send_notice"]
    assert len(sends) == 1
    # the owner of t4 is found later: the next batch has t4 only, in a new file
    store.record_owner_lookup(refs["t4"], status="found", owner=OWNER, actor="system:registry")
    third = make_batch(store, DAY, public_url=URL, evidence_root=root, now=NOW)
    assert third.path == Path("letters-2026-11-28-2.pdf") and [n.reference for n in third.notices] == [refs["t4"]]
    assert first.path.read_bytes() != third.path.read_bytes() and len(store.notices()) == 3
    with pytest.raises(ConfigError, match="never overwritten"):
        make_batch(store, date(2026, 11, 29), first.path, public_url=URL, now=NOW)


def test_send_notices_is_all_or_nothing_and_refuses_flagged_for_system(site) -> None:
    store, refs, _, _ = site
    ok, flagged = store.get(refs["t1"]), store.get(refs["t2"])
    notices = [NoticeIn(t.id, DAY, date(2026, 12, 6), "b.pdf", "0" * 64, "n", "a") for t in (ok, flagged)]
    with pytest.raises(TransitionError, match="flagged by the registry lookup"):
        store.send_notices(notices, actor="system:letters")
    assert store.notices() == [] and store.get(refs["t1"]).status == "approved"
    assert [a.action for a in store.actions(refs["t1"])][-1] == "registry_lookup"


def test_web_letter_uses_the_registered_dates(site, monkeypatch) -> None:
    """The review app's letter of a sent ticket prints the register's notice date and deadline."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from etle.web import WebConfig, auth, create_app

    store, refs, root, tmp_path = site
    make_batch(store, DAY, tmp_path / "b.pdf", public_url=URL, evidence_root=root, now=NOW, confirm_days=10)
    from argon2 import PasswordHasher

    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    auth.set_password(store.engine, "rev", "correct horse battery")
    app = create_app(WebConfig(db_url=store.url, evidence_root=root, secret=b"k" * 32, secure_cookies=False,
                               public_url=URL), store=store)
    c = TestClient(app, base_url="http://testserver", follow_redirects=False)
    import re

    page = c.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    assert c.post("/login", data={"username": "rev", "password": "correct horse battery", "csrf": token}).status_code == 303
    text = pdf_text(c.get(f"/tickets/{refs['t1']}/letter.pdf").content)[0]
    assert "2026-11-30" in text and "2026-12-10" in text and "Fiktif Budi Santoso (CONTOH)" in text
    unsent = pdf_text(c.get(f"/tickets/{refs['t4']}/letter.pdf").content)[0]
    assert "TIDAK DAPAT DIKIRIM" in unsent


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "etle.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120, env={**__import__("os").environ, "ETLE_WEB_PUBLIC_URL": URL})


def test_cli_bad_date_is_one_line_exit_2(tmp_path: Path) -> None:
    for args in (["letters", "batch", "--date", "2026-13-01"], ["letters", "register", "--date", "yesterday"]):
        r = _cli(*args, "--db", f"sqlite:///{tmp_path / 'e.db'}", cwd=tmp_path)
        assert r.returncode == 2, r
        assert r.stderr.strip().count("\n") == 0 and r.stderr.startswith("error: --date"), r.stderr


def test_cli_batch_and_register(site) -> None:
    store, refs, root, tmp_path = site
    db = f"sqlite:///{tmp_path / 'etle.db'}"
    r = _cli("letters", "batch", "--date", "2026-11-28", "--db", db, "--evidence", str(root), "-o", "day.pdf",
             "--no-progress", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "2 letter(s) in day.pdf" in r.stdout and "3 skipped" in r.stdout
    assert f"{refs['t2']}  BH2234AB    skipped: registry mismatch" in r.stdout
    assert len(PdfReader(str(tmp_path / "day.pdf")).pages) == 2
    r = _cli("letters", "register", "--db", db, "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert {row["reference"] for row in rows} == {refs["t1"], refs["t7"]}
    assert all(row["batch_file"] == "day.pdf" and row["actor"] == "system:letters" for row in rows)
    r = _cli("letters", "batch", "--date", "2026-11-28", "--db", db, "-o", "day2.pdf", cwd=tmp_path)
    assert r.returncode == 0 and "0 letter(s) in no file" in r.stdout and "2 already sent" in r.stdout
    assert not (tmp_path / "day2.pdf").exists()
    r = _cli("letters", "register", "--db", db, "--date", "2026-01-01", cwd=tmp_path)
    assert r.returncode == 0 and "0 letter(s) in the register" in r.stdout
