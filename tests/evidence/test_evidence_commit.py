"""record_violation: bundle and ticket exist together or not at all."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from etle.errors import StoreError
from etle.evidence import (
    CameraMeta,
    EvidenceRequest,
    EvidenceWriter,
    record_violation,
    ticket_from_request,
    verify_bundle,
)
from etle.store import TicketIn, TicketStore
from etle.types import Box, Frame, PlateRead, PlateResult, TrackedObject, Violation

START = datetime(2026, 11, 28, 1, 0, tzinfo=timezone.utc)


def make_request(track: int = 7) -> EvidenceRequest:
    frames = [
        Frame(source="/videos/a.mp4", index=i, pts=i / 10, image=np.zeros((64, 96, 3), np.uint8), wall_start=START)
        for i in range(5)
    ]
    obj = TrackedObject(track_id=track, box=Box(10, 10, 40, 40), label="motorcycle", confidence=0.9)
    key = frames[2]
    violation = Violation(rule="no_helmet", track_id=track, label="motorcycle", frame_index=2, pts=key.pts,
                          timestamp=key.timestamp, box=obj.box)
    plate = PlateResult("BH1234AB", 0.8, candidates=(PlateRead("BH1234AB", 0.8, frame_index=2),))
    return EvidenceRequest(
        violation=violation, camera=CameraMeta(id="jbi-01", name="Tugu Juang", timezone="Asia/Jakarta"),
        key_frame=key, key_objects=(obj,), clip=tuple((f, (obj,)) for f in frames), plate=plate,
        article="291(1)", fine=250_000,
    )


@pytest.fixture
def parts(tmp_path: Path):
    writer = EvidenceWriter(tmp_path / "evidence")
    with TicketStore(f"sqlite:///{tmp_path / 'etle.db'}") as store:
        yield writer, store


def bundles(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*/*") if p.is_dir())


def test_records_bundle_and_ticket(parts) -> None:
    writer, store = parts
    result = record_violation(writer, store, make_request(), {"run_id": "run-1"})
    assert result.created and result.bundle is not None
    view = store.get(result.ticket_id)
    assert view is not None
    assert view.evidence_path == str(result.bundle.path.resolve())
    assert view.manifest_sha256 == result.bundle.manifest_sha256
    assert (view.rule, view.track_id, view.run_id, view.source) == ("no_helmet", 7, "run-1", "/videos/a.mp4")
    assert view.local_time == "2026-11-28T08:00:00.200+07:00"
    assert (view.article, view.fine, view.plate_text, view.camera_name) == ("291(1)", 250_000, "BH1234AB", "Tugu Juang")
    assert verify_bundle(writer.root / view.evidence_path, manifest_sha256=view.manifest_sha256) == []


def test_duplicate_writes_nothing(parts) -> None:
    writer, store = parts
    first = record_violation(writer, store, make_request(), {"run_id": "run-1"})
    again = record_violation(writer, store, make_request(), {"run_id": "run-1"})
    assert (again.ticket_id, again.created, again.bundle) == (first.ticket_id, False, None)
    assert len(bundles(writer.root)) == 1
    other_run = record_violation(writer, store, make_request(), {"run_id": "run-2"})
    assert other_run.created and len(bundles(writer.root)) == 2


def test_insert_failure_removes_bundle(parts, monkeypatch: pytest.MonkeyPatch) -> None:
    writer, store = parts

    def broken(ticket: TicketIn):
        raise RuntimeError("disk I/O error\nsecond line")

    monkeypatch.setattr(store, "add_or_get", broken)
    with pytest.raises(StoreError, match="disk I/O error") as info:
        record_violation(writer, store, make_request())
    assert "\n" not in str(info.value)
    assert bundles(writer.root) == []
    assert not any(p.name.startswith(".partial") for p in writer.root.rglob("*"))
    assert store.list() == []


def test_store_error_passes_through_and_removes_bundle(parts, monkeypatch: pytest.MonkeyPatch) -> None:
    writer, store = parts

    def broken(ticket: TicketIn):
        raise StoreError("database is locked")

    monkeypatch.setattr(store, "add_or_get", broken)
    with pytest.raises(StoreError, match="^database is locked$"):
        record_violation(writer, store, make_request())
    assert bundles(writer.root) == []


def test_lost_race_removes_new_bundle(parts, monkeypatch: pytest.MonkeyPatch) -> None:
    writer, store = parts
    monkeypatch.setattr(store, "find_duplicate", lambda ticket: None)
    monkeypatch.setattr(store, "add_or_get", lambda ticket: (41, False))
    result = record_violation(writer, store, make_request())
    assert (result.ticket_id, result.created, result.bundle) == (41, False, None)
    assert bundles(writer.root) == []


def test_unknown_ticket_field_fails_before_writing(parts) -> None:
    writer, store = parts
    with pytest.raises(TypeError):
        record_violation(writer, store, make_request(), {"no_such_field": 1})
    assert not writer.root.exists() or bundles(writer.root) == []


def test_ticket_from_request_without_bundle() -> None:
    ticket = ticket_from_request(make_request(3), None, {"run_id": "r"})
    assert (ticket.track_id, ticket.run_id, ticket.evidence_path) == (3, "r", "")
    assert ticket.occurred_at == datetime(2026, 11, 28, 1, 0, 0, 200000, tzinfo=timezone.utc)
    assert [c.text for c in ticket.plate_candidates] == ["BH1234AB"]
