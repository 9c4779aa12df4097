"""TicketStore on a temporary SQLite file: add, dedupe, list/filter, get, counts, errors."""

from __future__ import annotations

import importlib.util
import re
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from etle.errors import StoreError
from etle.store import PENDING_REVIEW, PlateCandidate, TicketIn, TicketStore, TicketView, new_reference
from etle.store.repository import REFERENCE_ALPHABET

T0 = datetime(2026, 11, 28, 3, 0, tzinfo=timezone.utc)


def ticket(track: int = 1, rule: str = "red_light", **kw: object) -> TicketIn:
    values: dict = dict(
        camera_id="jbi-01", camera_name="Simpang Pulai", location="Kota Jambi", rule=rule, track_id=track,
        occurred_at=T0 + timedelta(minutes=track), local_time=(T0 + timedelta(minutes=track)).astimezone(
            timezone(timedelta(hours=7))).isoformat(),
        source="rtsp://cam/1", run_id="run-1", article="287(2)", fine=500_000, vehicle_label="car",
        frame_index=100 + track, plate_text=f"BH{1000 + track}AB", plate_confidence=0.9,
        plate_candidates=({"text": f"BH{1000 + track}AB", "confidence": 0.9, "frame_index": 99},),
        evidence_path=f"jbi-01/20261128/x_t{track}", manifest_sha256="ab" * 32,
    )
    values.update(kw)
    return TicketIn(**values)


@pytest.fixture
def store(tmp_path: Path):
    with TicketStore(f"sqlite:///{tmp_path / 'etle.db'}") as s:
        yield s


def test_add_get_roundtrip(store: TicketStore) -> None:
    t = ticket(5)
    tid = store.add(t)
    view = store.get(tid)
    assert isinstance(view, TicketView)
    assert view.id == tid and view.status == PENDING_REVIEW
    assert re.fullmatch(rf"ETLE-20261128-[{REFERENCE_ALPHABET}]{{6}}", view.reference)
    assert view.occurred_at == t.occurred_at and view.occurred_at.tzinfo is not None
    assert view.created_at.tzinfo is not None
    assert view.plate_candidates == (PlateCandidate("BH1005AB", 0.9, 99),)
    for name in ("camera_id", "rule", "track_id", "source", "run_id", "article", "fine", "plate_text",
                 "evidence_path", "manifest_sha256", "local_time", "frame_index", "vehicle_label"):
        assert getattr(view, name) == getattr(t, name), name
    assert store.get(view.reference) == view
    assert store.get(view.reference.lower()) == view
    assert store.get(str(tid)) == view
    assert store.get(9999) is None and store.get("ETLE-20000101-XXXXXX") is None


def test_add_is_idempotent_on_dedupe_key(store: TicketStore) -> None:
    first = store.add(ticket(1))
    assert store.add(ticket(1, plate_text="OTHER", evidence_path="elsewhere")) == first
    assert store.add_or_get(ticket(1)) == (first, False)
    assert store.find_duplicate(ticket(1)) == first
    # any differing key part makes a new ticket
    others = [ticket(2), ticket(1, rule="no_helmet"), ticket(1, run_id="run-2"), ticket(1, source="b.mp4"),
              ticket(1, camera_id="jbi-02")]
    ids = {store.add(t) for t in others}
    assert len(ids) == 5 and first not in ids
    assert store.count_by_status() == {PENDING_REVIEW: 6}


def test_unique_constraint_holds_in_the_database(store: TicketStore) -> None:
    store.add(ticket(1))
    with pytest.raises(IntegrityError, match="UNIQUE"), store.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO tickets (reference, camera_id, camera_name, location, occurred_at, local_time, rule,"
            " vehicle_label, track_id, source, run_id, frame_index, plate_text, plate_confidence, plate_candidates,"
            " status, evidence_path, manifest_sha256, created_at) SELECT 'ETLE-X', camera_id, camera_name, location,"
            " occurred_at, local_time, rule, vehicle_label, track_id, source, run_id, frame_index, plate_text,"
            " plate_confidence, plate_candidates, status, evidence_path, manifest_sha256, created_at FROM tickets"
        ))


def test_list_filters(store: TicketStore) -> None:
    for track in range(1, 6):
        store.add(ticket(track))
    store.add(ticket(6, rule="no_helmet", camera_id="jbi-02", plate_text="B1RI"))
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE tickets SET status='confirmed' WHERE track_id=2"))

    everything = store.list()
    assert [t.track_id for t in everything] == [6, 5, 4, 3, 2, 1]  # newest first
    assert [t.track_id for t in store.list(status=PENDING_REVIEW)] == [6, 5, 4, 3, 1]
    assert [t.track_id for t in store.list(rule="no_helmet")] == [6]
    assert [t.track_id for t in store.list(camera="jbi-01")] == [5, 4, 3, 2, 1]
    assert [t.track_id for t in store.list(since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=4))] == [3, 2]
    wib = timezone(timedelta(hours=7))
    assert [t.track_id for t in store.list(since=(T0 + timedelta(minutes=5)).astimezone(wib))] == [6, 5]
    assert [t.track_id for t in store.list(plate="bh 1003")] == [3]
    assert [t.track_id for t in store.list(plate="1RI")] == [6]
    assert store.list(plate="%") == []  # wildcards are literal
    assert [t.track_id for t in store.list(limit=2, offset=1)] == [5, 4]
    assert store.list(rule="red_light", camera="jbi-02") == []
    assert store.count_by_status() == {PENDING_REVIEW: 5, "confirmed": 1}
    with pytest.raises(ValueError):
        store.list(since=datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        store.list(limit=-1)


def test_sqlite_wal_and_foreign_keys(store: TicketStore) -> None:
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_times_stored_as_utc(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    wib = timezone(timedelta(hours=7))
    with TicketStore(f"sqlite:///{db}") as store:
        store.add(ticket(1, occurred_at=datetime(2026, 11, 28, 10, 0, tzinfo=wib)))
    with sqlite3.connect(db) as conn:
        raw = conn.execute("SELECT occurred_at FROM tickets").fetchone()[0]
    assert raw.startswith("2026-11-28 03:00:00")
    with TicketStore(f"sqlite:///{db}", create=False) as store:  # reopen: data persists
        assert store.list()[0].occurred_at == datetime(2026, 11, 28, 3, 0, tzinfo=timezone.utc)


def test_ticket_validation() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ticket(1, occurred_at=datetime(2026, 11, 28))
    with pytest.raises(ValueError):
        ticket(1, camera_id="")
    assert ticket(1).dedupe_key == ("jbi-01", "rtsp://cam/1", "run-1", 1, "red_light")
    assert ticket(1, local_time="garbage").reference_day == T0.date()
    late = ticket(1, occurred_at=datetime(2026, 11, 28, 20, 0, tzinfo=timezone.utc),
                  local_time="2026-11-29T03:00:00+07:00")
    assert late.reference_day.isoformat() == "2026-11-29"


def test_reference_codes() -> None:
    codes = {new_reference(T0.date()) for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        assert re.fullmatch(r"ETLE-20261128-[2-9A-HJ-NP-Z]{6}", code)
        assert not set(code[-6:]) & set("01OI")


def test_reference_collision_is_retried(store: TicketStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from etle.store import tickets  # the module of TicketStore.add_or_get

    codes = iter(["ETLE-20261128-AAAAAA", "ETLE-20261128-AAAAAA", "ETLE-20261128-BBBBBB"])
    monkeypatch.setattr(tickets, "new_reference", lambda day: next(codes))
    a, b = store.add(ticket(1)), store.add(ticket(2))
    va, vb = store.get(a), store.get(b)
    assert va is not None and vb is not None
    assert (va.reference, vb.reference) == ("ETLE-20261128-AAAAAA", "ETLE-20261128-BBBBBB")


def test_unreachable_database_is_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open ticket database") as info:
        TicketStore(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'etle.db'}")
    assert "\n" not in str(info.value)


@pytest.mark.skipif(importlib.util.find_spec("psycopg") is None, reason="psycopg not installed")
def test_unreachable_postgres_is_store_error() -> None:
    with pytest.raises(StoreError, match="cannot open ticket database") as info:
        TicketStore("postgresql+psycopg://etle:secret@127.0.0.1:1/x")
    assert "secret" not in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("url", ["notadb://x", "not a url", "postgresql+nosuchdriver://h/x"])
def test_invalid_url_is_store_error(url: str) -> None:
    with pytest.raises(StoreError):
        TicketStore(url)


def test_database_error_after_open_is_store_error(tmp_path: Path) -> None:
    store = TicketStore(f"sqlite:///{tmp_path / 'x.db'}")
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE tickets"))
    with pytest.raises(StoreError, match="cannot list tickets"):
        store.list()
    with pytest.raises(StoreError):
        store.add(ticket(1))
    store.close()
