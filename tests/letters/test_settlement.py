"""After the letter (issue item 4): the owner's confirmation, payment codes, payment files and
blocking after the deadline, from the library, the CLI and the JSON API / review app, each
audited with who did it and why."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from etle.settlement import (
    SettlementInputError,
    block_overdue,
    import_payments,
    import_payments_text,
    record_confirmation,
)
from etle.store import CameraIn, NoticeIn, TicketIn, TicketStore, TransitionError

FINE = 500000
NOTICE_DAY = date(2026, 11, 30)
JAKARTA = ZoneInfo("Asia/Jakarta")
# 23:30 on the deadline day in Jakarta (still in time) and 00:30 on the day after (overdue)
LAST_MINUTE = datetime(2026, 12, 8, 16, 30, tzinfo=timezone.utc)
TOO_LATE = datetime(2026, 12, 8, 17, 30, tzinfo=timezone.utc)
OWNER = {"owner_name": "Fiktif Budi Santoso (CONTOH)", "owner_address": "Jl. Contoh No. 1\nKota Jambi"}


def make_site(db: str, n: int = 4, notice_day: date = NOTICE_DAY) -> tuple[TicketStore, list[str]]:
    """``n`` tickets of camera jbi-01 (Asia/Jakarta) with a fine, approved by 'rev', owner
    found, and a letter in the notice register (deadline 8 days after ``notice_day``)."""
    sent_at = datetime.combine(notice_day, time(9), tzinfo=JAKARTA)
    store = TicketStore(db)
    store.register_camera(CameraIn("jbi-01", "Tugu Juang", "Kota Jambi", timezone="Asia/Jakarta"))
    for name, role in (("rev", "reviewer"), ("sup", "supervisor"), ("adm", "admin")):
        store.add_user(name, role=role)
    refs = []
    for track in range(1, n + 1):
        tid = store.add(TicketIn(camera_id="jbi-01", rule="red_light", track_id=track, article="287(2)", fine=FINE,
                                 occurred_at=datetime(2026, 11, 28, 1, track, tzinfo=timezone.utc),
                                 local_time=f"2026-11-28T08:{track:02d}:00+07:00", plate_text=f"BH{track}234AB"))
        store.transition(tid, "approve", actor="rev", at=sent_at - timedelta(hours=1))
        store.record_owner_lookup(tid, status="found", owner=OWNER, actor="system:registry", source="trial")
        refs.append(store.get(tid).reference)
    store.send_notices([NoticeIn(store.get(r).id, notice_day, notice_day + timedelta(days=8), "letters.pdf", "ab" * 32,
                                 OWNER["owner_name"], OWNER["owner_address"]) for r in refs],
                       actor="system:letters", at=sent_at)
    return store, refs


@pytest.fixture
def site(tmp_path: Path, db_url: str):
    """SQLite and PostgreSQL (see conftest's ``db_url``)."""
    db = db_url
    store, refs = make_site(db)
    yield store, refs, db, tmp_path
    store.close()


def write_csv(path: Path, rows: list[tuple[str, object, str]], header: str = "payment_code,amount,paid_at") -> Path:
    path.write_text(header + "\n" + "".join(f"{c},{a},{p}\n" for c, a, p in rows), encoding="utf-8")
    return path


# -- confirmation -------------------------------------------------------------------------------


def test_confirmation_is_audited_and_issues_a_payment_code(site) -> None:
    store, refs, _, _ = site
    t = record_confirmation(store, refs[0], driver_is_owner=False, named_driver="  Fiktif  Adi (CONTOH) ",
                            via="in_person", actor="rev")
    assert t.status == "confirmed"
    assert re.fullmatch(r"[23456789A-HJ-NP-Z]{12}", t.payment_code)
    assert t.payment_code not in t.reference
    last = store.actions(t.id)[-1]
    assert (last.action, last.from_status, last.to_status, last.actor) == ("confirm", "notice_sent", "confirmed", "rev")
    assert last.reason == "driver named: Fiktif Adi (CONTOH)"
    assert last.data == {"driver_is_owner": False, "named_driver": "Fiktif Adi (CONTOH)", "via": "in_person",
                         "payment_code": t.payment_code}
    # codes differ per ticket; the owner drove
    u = record_confirmation(store, refs[1], driver_is_owner=True, actor="system:confirm-page")
    assert u.payment_code and u.payment_code != t.payment_code
    assert store.actions(u.id)[-1].reason == "the owner was driving"


def test_confirmation_refuses_empty_or_contradictory_answers_and_wrong_status(site) -> None:
    store, refs, _, _ = site
    with pytest.raises(SettlementInputError, match="names the driver"):
        record_confirmation(store, refs[0], driver_is_owner=False, named_driver="  ", actor="rev")
    with pytest.raises(SettlementInputError, match="not both"):
        record_confirmation(store, refs[0], driver_is_owner=True, named_driver="X", actor="rev")
    with pytest.raises(SettlementInputError, match="via"):
        record_confirmation(store, refs[0], driver_is_owner=True, via="fax", actor="rev")
    record_confirmation(store, refs[0], driver_is_owner=True, actor="rev")
    with pytest.raises(TransitionError, match="confirm"):
        record_confirmation(store, refs[0], driver_is_owner=True, actor="rev")
    with pytest.raises(TransitionError, match="unknown user"):
        record_confirmation(store, refs[1], driver_is_owner=True, actor="nobody")
    assert store.get(refs[1]).status == "notice_sent" and store.get(refs[1]).payment_code == ""


# -- payments -----------------------------------------------------------------------------------


def test_payment_import_good_unknown_short_duplicate_and_idempotent(site) -> None:
    store, refs, _, tmp = site
    codes = [record_confirmation(store, r, driver_is_owner=True, actor="rev").payment_code for r in refs[:3]]
    path = write_csv(tmp / "bank.csv", [
        (codes[0].lower(), FINE, "2026-12-03T10:15:00+07:00"),           # good (case ignored)
        ("ZZZZZZZZZZZZ", FINE, "2026-12-03"),                            # unknown code
        (codes[1], FINE - 1, "2026-12-03"),                              # short
        (codes[2], FINE + 1000, "2026-12-04"),                           # good (overpaid is accepted)
        (codes[0], FINE, "2026-12-05"),                                  # the same code twice in the file
        (codes[1], "lima ratus", "2026-12-03"),                          # malformed amount
        (codes[1], FINE, "2026-12-03T10:15:00"),                         # no UTC offset
    ])
    result = import_payments(store, path, "sup")
    assert [(p.line, p.kind) for p in result.refused] == [
        (3, "unknown_code"), (4, "short"), (6, "duplicate_in_file"), (7, "bad_row"), (8, "bad_row")]
    assert "less than the fine 500000" in result.refused[1].reason and result.refused[1].reference == refs[1]
    assert [t.reference for _, t in result.paid] == [refs[0], refs[2]] and not result.ok
    assert [store.get(r).status for r in refs] == ["paid", "confirmed", "paid", "notice_sent"]
    pay = store.actions(refs[0])[-1]
    assert (pay.action, pay.from_status, pay.to_status, pay.actor) == ("pay", "confirmed", "paid", "sup")
    assert pay.data["amount"] == FINE and pay.data["paid_at"] == "2026-12-03T10:15:00+07:00"
    assert pay.data["file"] == "bank.csv" and pay.data["line"] == 2 and pay.data["file_sha256"] == result.sha256
    assert "bank.csv line 2" in pay.reason
    # the same file again: nothing changes, the payments are recognised
    n_actions = len(store.actions_after(0, limit=10000))
    again = import_payments(store, path, "sup")
    assert again.paid == [] and [p.kind for p in again.skipped] == ["already_imported", "already_imported"]
    assert len(store.actions_after(0, limit=10000)) == n_actions
    # a different payment of a paid ticket is a second payment: refused
    second = import_payments_text(store, f"payment_code,amount,paid_at\n{codes[0]},{FINE},2026-12-09\n",
                                  source="later.csv", actor="sup")
    assert [p.kind for p in second.refused] == ["already_paid"]


def test_payment_import_dry_run_blocked_tickets_and_bad_files(site) -> None:
    store, refs, _, tmp = site
    code = record_confirmation(store, refs[0], driver_is_owner=True, actor="rev").payment_code
    result = import_payments_text(store, f"paid_at,amount,payment_code,note\n2026-12-03,{FINE},{code},x\n",
                                  source="b.csv", actor="sup", dry_run=True)
    assert result.ok and len(result.paid) == 1 and store.get(refs[0]).status == "confirmed"
    blocked = block_overdue(store, TOO_LATE, "system:settlement").blocked
    blocked_code = store.get(refs[1]).payment_code
    assert refs[1] in [t.reference for t, _ in blocked] and blocked_code  # blocking issues a code too
    done = import_payments_text(store, f"payment_code,amount,paid_at\n{blocked_code},{FINE},2026-12-10\n",
                                source="c.csv", actor="sup", at=TOO_LATE + timedelta(hours=1))
    assert done.ok and store.get(refs[1]).status == "paid"
    assert store.actions(refs[1])[-1].from_status == "blocked"
    with pytest.raises(SettlementInputError, match="lacks amount"):
        import_payments_text(store, "payment_code,paid_at\nX,2026-12-01\n", source="d.csv", actor="sup")
    with pytest.raises(SettlementInputError, match="empty"):
        import_payments_text(store, "", source="e.csv", actor="sup")
    with pytest.raises(SettlementInputError, match="cannot read"):
        import_payments(store, tmp / "missing.csv", "sup")


def test_payment_file_is_applied_whole_or_not_at_all(site, monkeypatch) -> None:
    store, refs, _, _ = site
    codes = [record_confirmation(store, r, driver_is_owner=True, actor="rev").payment_code for r in refs[:2]]
    text = "payment_code,amount,paid_at\n" + "".join(f"{c},{FINE},2026-12-03\n" for c in codes)
    real = store.by_payment_codes

    def stale(found):  # the second ticket is paid by another writer after the file was checked
        views = real(found)
        store.transition(refs[1], "pay", actor="sup")
        return views

    monkeypatch.setattr(store, "by_payment_codes", stale)
    with pytest.raises(TransitionError):
        import_payments_text(store, text, source="race.csv", actor="sup")
    assert store.get(refs[0]).status == "confirmed"  # nothing of the file was applied


# -- blocking -----------------------------------------------------------------------------------


def test_block_overdue_before_and_after_the_deadline(site) -> None:
    store, refs, _, _ = site
    record_confirmation(store, refs[0], driver_is_owner=True, actor="rev")
    early = block_overdue(store, LAST_MINUTE, "system:settlement")
    assert early.blocked == [] and early.waiting == 3
    assert [store.get(r).status for r in refs] == ["confirmed", "notice_sent", "notice_sent", "notice_sent"]
    dry = block_overdue(store, TOO_LATE, "system:settlement", dry_run=True)
    assert len(dry.blocked) == 3 and store.get(refs[1]).status == "notice_sent"
    steps: list[tuple[int, int]] = []
    late = block_overdue(store, TOO_LATE, "system:settlement", on_ticket=lambda d, t: steps.append((d, t)))
    assert sorted(t.reference for t, _ in late.blocked) == sorted(refs[1:]) and steps[-1] == (3, 3)
    assert [store.get(r).status for r in refs] == ["confirmed", "blocked", "blocked", "blocked"]
    entry = store.actions(refs[1])[-1]
    assert (entry.action, entry.from_status, entry.to_status, entry.actor) == ("block", "notice_sent", "blocked",
                                                                              "system:settlement")
    assert entry.reason == "no confirmation by 2026-12-08" and entry.at == TOO_LATE
    assert entry.data["deadline"] == "2026-12-08" and entry.data["notice_date"] == "2026-11-30"
    assert block_overdue(store, TOO_LATE + timedelta(days=1), "system:settlement").blocked == []  # idempotent
    with pytest.raises(ValueError, match="timezone-aware"):
        block_overdue(store, datetime(2026, 12, 9), "system:settlement")


def test_notice_without_register_row_is_left_alone(tmp_path: Path) -> None:
    store, refs = make_site(f"sqlite:///{tmp_path / 'etle.db'}", n=1)
    tid = store.add(TicketIn(camera_id="jbi-01", rule="red_light", track_id=99, fine=FINE, plate_text="BH1999XY",
                             occurred_at=datetime(2026, 11, 28, 1, 0, tzinfo=timezone.utc)))
    store.transition(tid, "approve", actor="rev")
    store.transition(tid, "send_notice", actor="rev")
    result = block_overdue(store, TOO_LATE, "system:settlement")
    assert [t.id for t in result.no_notice] == [tid] and store.get(tid).status == "notice_sent"
    assert [t.reference for t, _ in result.blocked] == refs
    store.close()


# -- the command line -----------------------------------------------------------------------------


def etle(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "etle.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def test_cli_confirm_payments_and_block(tmp_path: Path) -> None:
    # dates before the present: the command refuses a --now in the future
    today = datetime.now(JAKARTA).date()
    db, tmp = f"sqlite:///{tmp_path / 'etle.db'}", tmp_path
    store, refs = make_site(db, notice_day=today - timedelta(days=12))
    deadline = today - timedelta(days=4)
    last_minute = datetime.combine(deadline, time(23, 30), tzinfo=JAKARTA)
    too_late = last_minute + timedelta(hours=1)
    r = etle("tickets", "confirm", refs[0], "--named-driver", "Fiktif Adi", "--db", db, "--actor", "rev", cwd=tmp)
    assert r.returncode == 0, r.stderr
    code = store.get(refs[0]).payment_code
    assert f"payment code {code}" in r.stdout and "driver: Fiktif Adi" in r.stdout
    r = etle("tickets", "confirm", refs[1], "--db", db, cwd=tmp)  # says nothing
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("error: ")
    r = etle("tickets", "confirm", refs[0], "--driver-is-owner", "--db", db, cwd=tmp)  # already confirmed
    assert r.returncode == 5 and r.stderr.count("\n") == 1 and "cannot 'confirm'" in r.stderr
    r = etle("tickets", "confirm", "ETLE-20261128-NOPE22", "--driver-is-owner", "--db", db, cwd=tmp)
    assert r.returncode == 5 and r.stderr.count("\n") == 1

    path = write_csv(tmp / "bank.csv", [(code, FINE, "2026-12-03"), ("ZZZZZZZZZZZZ", FINE, "2026-12-03")])
    r = etle("payments", "import", str(path), "--dry-run", "--db", db, cwd=tmp)
    assert r.returncode == 1 and "bank.csv:3: ZZZZZZZZZZZZ  refused (unknown_code)" in r.stderr
    assert "1 would be paid" in r.stdout and store.get(refs[0]).status == "confirmed"
    r = etle("payments", "import", str(path), "--db", db, "--actor", "sup", cwd=tmp)
    assert r.returncode == 1 and "1 paid, 0 already imported, 1 refused" in r.stdout
    assert store.get(refs[0]).status == "paid" and store.actions(refs[0])[-1].actor == "sup"
    write_csv(path, [(code, FINE, "2026-12-03")])
    r = etle("payments", "import", str(path), "--db", db, cwd=tmp)
    assert r.returncode == 0 and "0 paid, 1 already imported, 0 refused" in r.stdout
    r = etle("payments", "import", str(tmp / "nope.csv"), "--db", db, cwd=tmp)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    (tmp / "bad.csv").write_text("code,amount\nX,1\n")
    r = etle("payments", "import", str(tmp / "bad.csv"), "--db", db, cwd=tmp)
    assert r.returncode == 2 and "lacks payment_code, paid_at" in r.stderr

    r = etle("tickets", "block-overdue", "--now", last_minute.isoformat(), "--db", db, cwd=tmp)
    assert r.returncode == 0 and "0 blocked, 3 within their deadline" in r.stdout
    r = etle("tickets", "block-overdue", "--now", too_late.isoformat(), "--dry-run", "--db", db, cwd=tmp)
    assert r.returncode == 0 and "3 would block" in r.stdout and store.get(refs[1]).status == "notice_sent"
    r = etle("tickets", "block-overdue", "--now", too_late.isoformat(), "--db", db, cwd=tmp)
    assert r.returncode == 0 and f"{refs[1]}  BH2234AB    blocked: no confirmation by {deadline}" in r.stdout
    assert store.get(refs[1]).status == "blocked"
    for bad in ("yesterday", "2026-12-09T00:00:00", "2999-01-01T00:00:00+00:00"):
        r = etle("tickets", "block-overdue", "--now", bad, "--db", db, cwd=tmp)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, bad
    r = etle("tickets", "block-overdue", "--db", db, cwd=tmp)  # the present: nothing left to block
    assert r.returncode == 0 and "0 blocked" in r.stdout
    store.close()


# -- the JSON API and the review app --------------------------------------------------------------

PASSWORD = "correct horse battery"


@pytest.fixture
def web(tmp_path: Path, monkeypatch):
    pytest.importorskip("fastapi")
    from argon2 import PasswordHasher
    from fastapi.testclient import TestClient

    from etle.web import WebConfig, auth, create_app

    monkeypatch.setattr(auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    today = datetime.now(JAKARTA).date()
    store, refs = make_site(f"sqlite:///{tmp_path / 'etle.db'}", notice_day=today - timedelta(days=12))
    for name in ("rev", "sup", "adm"):
        auth.set_password(store.engine, name, PASSWORD)
    app = create_app(WebConfig(db_url=store.url, secret=b"k" * 32, secure_cookies=False), store=store)

    def login(user: str) -> tuple[TestClient, str]:
        c = TestClient(app, base_url="http://testserver", follow_redirects=False)
        page = c.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        assert c.post("/login", data={"username": user, "password": PASSWORD, "csrf": token}).status_code == 303
        ticket = c.get(f"/tickets/{refs[0]}")
        return c, re.search(r'name="csrf" value="([^"]+)"', ticket.text).group(1)

    def bearer(user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {auth.new_api_token(store.engine, user, 'test')}"}

    yield store, refs, login, bearer, TestClient(app, base_url="http://testserver", follow_redirects=False)
    store.close()


def test_api_confirm_import_and_block_with_roles(web) -> None:
    store, refs, _, bearer, c = web
    rev, sup = bearer("rev"), bearer("sup")
    r = c.post(f"/api/v1/tickets/{refs[0]}/confirm", json={"driver_is_owner": True}, headers=rev)
    assert r.status_code == 200 and r.json()["status"] == "confirmed"
    code = r.json()["payment_code"]
    assert code == store.get(refs[0]).payment_code and store.actions(refs[0])[-1].actor == "rev"
    assert store.actions(refs[0])[-1].data["via"] == "online"
    assert c.post(f"/api/v1/tickets/{refs[0]}/confirm", json={"driver_is_owner": True}, headers=rev).status_code == 409
    assert c.post(f"/api/v1/tickets/{refs[1]}/confirm", json={}, headers=rev).status_code == 400
    assert c.post(f"/api/v1/tickets/{refs[1]}/confirm", json={"driver_is_owner": True}).status_code == 401

    csv_file = {"file": ("bank.csv", f"payment_code,amount,paid_at\n{code},{FINE},2026-12-03\nNOPE,{FINE},2026-12-03\n",
                         "text/csv")}
    assert c.post("/api/v1/payments/import", files=csv_file, headers=rev).status_code == 403  # a reviewer cannot
    assert c.post("/api/v1/tickets/block-overdue", headers=rev).status_code == 403
    assert store.get(refs[0]).status == "confirmed"
    r = c.post("/api/v1/payments/import?dry_run=true", files=csv_file, headers=sup)
    assert r.status_code == 200 and r.json()["dry_run"] and store.get(refs[0]).status == "confirmed"
    r = c.post("/api/v1/payments/import", files=csv_file, headers=sup)
    body = r.json()
    assert r.status_code == 200 and not body["ok"] and [p["reference"] for p in body["paid"]] == [refs[0]]
    assert [(p["line"], p["kind"]) for p in body["refused"]] == [(3, "unknown_code")]
    assert store.get(refs[0]).status == "paid" and store.actions(refs[0])[-1].actor == "sup"
    bad = {"file": ("x.csv", "nothing,here\n", "text/csv")}
    assert c.post("/api/v1/payments/import", files=bad, headers=sup).status_code == 400

    r = c.post("/api/v1/tickets/block-overdue", headers=bearer("adm"))
    assert r.status_code == 200 and sorted(b["reference"] for b in r.json()["blocked"]) == sorted(refs[1:])
    entry = store.actions(refs[1])[-1]
    assert (entry.action, entry.actor, entry.data["deadline"]) == ("block", "adm", r.json()["blocked"][0]["deadline"])


def test_review_app_confirm_form_and_settlement_page(web) -> None:
    store, refs, login, _, _ = web
    c, csrf = login("rev")
    page = c.get(f"/tickets/{refs[0]}").text
    assert 'id="confirm-form"' in page and 'href="/settlement"' not in page
    assert c.post(f"/tickets/{refs[0]}/confirm", data={"driver": "other", "named_driver": "Fiktif Adi"}).status_code == 403
    r = c.post(f"/tickets/{refs[0]}/confirm", data={"driver": "other", "named_driver": "Fiktif Adi", "via": "post",
                                                    "csrf": csrf})
    assert r.status_code == 303
    t = store.get(refs[0])
    assert t.status == "confirmed" and store.actions(t.id)[-1].data["named_driver"] == "Fiktif Adi"
    page = c.get(f"/tickets/{refs[0]}").text
    assert 'id="confirm-form"' not in page and t.payment_code in page
    assert c.get("/settlement").status_code == 403
    files = {"file": ("bank.csv", f"payment_code,amount,paid_at\n{t.payment_code},{FINE},2026-12-03\n", "text/csv")}
    assert c.post("/settlement/payments", data={"csrf": csrf}, files=files).status_code == 403

    s, scsrf = login("sup")
    page = s.get("/settlement")
    assert page.status_code == 200 and 'id="payments-form"' in page.text and 'href="/settlement"' in page.text
    assert s.post("/settlement/payments", data={"csrf": "forged"}, files=files).status_code == 403
    r = s.post("/settlement/payments", data={"csrf": scsrf}, files=files)
    assert r.status_code == 200 and 'id="payments-result"' in r.text and store.get(refs[0]).status == "paid"
    r = s.post("/settlement/block-overdue", data={"csrf": scsrf, "dry_run": "1"})
    assert r.status_code == 200 and store.get(refs[1]).status == "notice_sent" and refs[1] in r.text
    r = s.post("/settlement/block-overdue", data={"csrf": scsrf})
    assert r.status_code == 200 and store.get(refs[1]).status == "blocked"
    assert store.actions(refs[1])[-1].actor == "sup"
