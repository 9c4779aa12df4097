"""The review workflow on real SQLite and PostgreSQL: transitions as data with who and when, users,
plate corrections, the audit log, racing reviewers, export and the sync helpers."""

from __future__ import annotations

import csv
import io
import json
import threading
from datetime import datetime, timedelta, timezone

import pytest

from etle.errors import StoreError
from etle.store import PENDING_REVIEW, TRANSITIONS, TicketIn, TicketStore, TransitionError
from etle.store.export import CSV_COLUMNS, write_export
from etle.store.lifecycle import action_for, next_status

T0 = datetime(2026, 11, 28, 3, 0, tzinfo=timezone.utc)


def ticket(track: int = 1, **kw: object) -> TicketIn:
    values: dict = dict(camera_id="jbi-01", camera_name="Simpang Pulai", location="Kota Jambi", rule="red_light",
                        track_id=track, occurred_at=T0 + timedelta(minutes=track), source="a.mp4", run_id="r1",
                        plate_text="BH1234AB", plate_confidence=0.9,
                        plate_candidates=({"text": "BH1234AB", "confidence": 0.9, "frame_index": 4},
                                          {"text": "BH1Z34AB", "confidence": 0.4, "frame_index": 3}),
                        evidence_files=({"name": "overview.jpg", "sha256": "a" * 64, "bytes": 10, "role": "overview"},))
    values.update(kw)
    return TicketIn(**values)


@pytest.fixture
def store(db_url: str):
    with TicketStore(db_url) as s:
        s.add_user("officer1", display_name="Brigadir Satu")
        s.add_user("officer2")
        yield s


def test_lifecycle_table_is_the_workflow() -> None:
    assert next_status(PENDING_REVIEW, "approve") == "approved"
    assert next_status("approved", "send_notice") == "notice_sent"
    assert next_status("notice_sent", "block") == "blocked"
    assert next_status("blocked", "pay") == "paid"
    assert action_for("confirmed", "paid") == "pay"
    reachable = {PENDING_REVIEW}
    frontier = [PENDING_REVIEW]
    while frontier:
        for target in TRANSITIONS[frontier.pop()].values():
            if target not in reachable:
                reachable.add(target)
                frontier.append(target)
    assert reachable == set(TRANSITIONS)  # every status is reachable
    with pytest.raises(TransitionError, match="allowed: approve, reject"):
        next_status(PENDING_REVIEW, "pay")
    with pytest.raises(TransitionError, match="final status"):
        next_status("paid", "block")


def test_full_lifecycle_records_who_and_when(store: TicketStore) -> None:
    tid = store.add(ticket(1))
    steps = [("approve", "officer1"), ("send_notice", "system:notices"), ("confirm", "system:portal"),
             ("block", "system:scheduler"), ("pay", "system:payments")]
    start = datetime.now(timezone.utc)  # the steps follow the creation, whatever today's date
    for i, (action, actor) in enumerate(steps):
        at = start + timedelta(days=i + 1)
        view = store.transition(tid, action, actor=actor, reason=f"step {i}", at=at)
        assert view.status_changed_at == at
    assert store.get(tid).status == "paid"
    log = store.actions(tid)
    assert [(a.action, a.from_status, a.to_status, a.actor) for a in log] == [
        ("create", None, "pending_review", "system:pipeline"),
        ("approve", "pending_review", "approved", "officer1"),
        ("send_notice", "approved", "notice_sent", "system:notices"),
        ("confirm", "notice_sent", "confirmed", "system:portal"),
        ("block", "confirmed", "blocked", "system:scheduler"),
        ("pay", "blocked", "paid", "system:payments"),
    ]
    assert all(a.at.tzinfo is not None for a in log) and log[1].reason == "step 0"
    assert len({a.uid for a in log}) == 6
    assert store.count_by_status() == {"paid": 1}


def test_refused_transitions_change_nothing(store: TicketStore) -> None:
    tid = store.add(ticket(1))
    with pytest.raises(TransitionError, match="cannot 'pay'"):
        store.transition(tid, "pay", actor="officer1")
    with pytest.raises(TransitionError, match="unknown user"):
        store.transition(tid, "approve", actor="nobody")
    with pytest.raises(TransitionError):
        store.transition(tid, "approve", actor="")
    with pytest.raises(StoreError, match="no ticket"):
        store.transition(999, "approve", actor="officer1")
    assert store.get(tid).status == PENDING_REVIEW and len(store.actions(tid)) == 1
    store.transition(tid, "reject", actor="officer2", reason="emergency vehicle")
    with pytest.raises(TransitionError, match="allowed: reopen"):
        store.transition(tid, "approve", actor="officer1")
    store.transition(tid, "reopen", actor="officer1", reason="plate visible in the clip")
    assert store.get(tid).status == PENDING_REVIEW
    assert [a.action for a in store.actions(tid)][-2:] == ["reject", "reopen"]


def test_plate_correction_is_audited(store: TicketStore) -> None:
    tid = store.add(ticket(1))
    reads = store.plate_reads(tid)
    assert [(r.text, r.chosen) for r in reads] == [("BH1234AB", True), ("BH1Z34AB", False)]
    view = store.correct_plate(tid, "bh 1284-ab", actor="officer1", reason="8 read as 3")
    assert view.plate_text == "BH1284AB"
    assert store.plate_reads(tid)[-1].source == "reviewer" and store.plate_reads(tid)[-1].actor == "officer1"
    last = store.actions(tid)[-1]
    assert (last.action, last.data["previous"], last.data["plate_text"]) == ("correct_plate", "BH1234AB", "BH1284AB")
    store.transition(tid, "approve", actor="officer1")
    with pytest.raises(TransitionError, match="during review"):
        store.correct_plate(tid, "B1RI", actor="officer1")


def test_users(store: TicketStore) -> None:
    assert [u.username for u in store.users()] == ["officer1", "officer2"]
    with pytest.raises(StoreError, match="already exists"):
        store.add_user("officer1")
    with pytest.raises(StoreError, match="invalid username"):
        store.add_user("system:x")


def test_ticket_identity_and_children(store: TicketStore) -> None:
    tid = store.add(ticket(1))
    view = store.get(tid)
    assert len(view.uid) == 32 and store.get(view.uid) == view
    assert [f.name for f in view.evidence_files] == ["overview.jpg"]
    # the same uid is never stored twice, even with another dedupe key
    again = ticket(2, uid=view.uid)
    assert store.add_or_get(again) == (tid, False)


def test_racing_reviewers_one_wins(db_url: str) -> None:
    with TicketStore(db_url) as store:
        store.add_user("a")
        store.add_user("b")
        ids = [store.add(ticket(i)) for i in range(10)]
        outcomes: list[str] = []
        lock = threading.Lock()

        def review(actor: str, action: str) -> None:
            for tid in ids:
                try:
                    store.transition(tid, action, actor=actor)
                    result = "ok"
                except TransitionError:
                    result = "refused"
                with lock:
                    outcomes.append(result)

        threads = [threading.Thread(target=review, args=("a", "approve")), threading.Thread(target=review, args=("b", "reject"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert outcomes.count("ok") == 10 and outcomes.count("refused") == 10
        for tid in ids:
            acts = store.actions(tid)
            assert len(acts) == 2 and acts[1].to_status == store.get(tid).status


def test_export_csv_and_json(store: TicketStore) -> None:
    a = store.add(ticket(1))
    store.add(ticket(2, camera_id="jbi-02"))
    store.transition(a, "approve", actor="officer1")
    buf = io.StringIO()
    assert write_export(store.records(), buf, "csv") == 2
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert (rows[0]["status"], rows[0]["last_action"], rows[0]["last_actor"]) == ("approved", "approve", "officer1")
    assert json.loads(rows[1]["plate_candidates"])[0]["text"] == "BH1234AB"
    buf = io.StringIO()
    assert write_export(store.records(camera="jbi-01"), buf, "json") == 1
    data = json.loads(buf.getvalue())
    assert data[0]["reference"] == store.get(a).reference
    assert [x["action"] for x in data[0]["actions"]] == ["create", "approve"]
    assert data[0]["plate_reads"][0]["text"] == "BH1234AB"
    buf = io.StringIO()
    assert write_export(store.records(status="paid"), buf, "json") == 0 and json.loads(buf.getvalue()) == []
    # read in batches (plate reads, audit logs and cameras of a batch in one query each): each
    # record is the one read alone
    c = store.add(ticket(3))
    store.transition(c, "reject", actor="officer1", reason="emergency vehicle")
    alone = [store.record(i) for i in sorted(t.id for t in store.list())]
    assert list(store.records(batch=2)) == list(store.records()) == alone
    assert [len(r.actions) for r in alone] == [2, 1, 2] and all(r.plate_reads and r.camera for r in alone)
    with pytest.raises(ValueError):
        write_export([], io.StringIO(), "xml")  # type: ignore[arg-type]


def test_records_stream_in_batches(store: TicketStore) -> None:
    for i in range(7):
        store.add(ticket(i))
    assert [r.ticket.track_id for r in store.records(batch=3)] == list(range(7))


def test_sync_helpers(store: TicketStore) -> None:
    a, b = store.add(ticket(1)), store.add(ticket(2))
    assert [t.id for t in store.unsynced()] == [a, b]
    store.mark_synced([a])
    assert [t.id for t in store.unsynced()] == [b] and store.get(a).synced_at is not None
    assert store.sync_mark("x") == 0
    store.set_sync_mark("x", 5)
    store.set_sync_mark("x", 7)
    assert store.sync_mark("x") == 7
    assert [x.action for x in store.actions_after(0)] == ["create", "create"]
