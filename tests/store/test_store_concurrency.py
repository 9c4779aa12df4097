"""Two pipelines (two processes) writing to one PostgreSQL database at once lose and duplicate nothing.

Each pipeline records violations of its own camera and of a camera both see (the same source, run
and tracks: the same violations), in a different order, into one evidence folder (so the
per-camera chain lock is shared too).  Afterwards: every violation is a ticket exactly once, the
losers of each race left no bundle behind, and the whole store verifies.
"""

from __future__ import annotations

import multiprocessing as mp
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import func, select

from etle.evidence import EvidenceWriter, record_violation
from etle.evidence.signing import init_keys, load_signer, trusted_keys
from etle.evidence.storage import LocalEvidenceStorage
from etle.evidence.verify import verify_evidence
from etle.store import TicketIn, TicketStore
from etle.store.models import EvidenceFile, ReviewAction, Ticket

OWN, SHARED = 30, 30


def pipeline(k: int, url: str, root: str, keys: str, make_request, start, results) -> None:
    store = TicketStore(url)
    writer = EvidenceWriter(root, signer=load_signer(keys))
    jobs = [("own", t) for t in range(OWN)] + [("shared", t) for t in range(SHARED)]
    jobs = jobs[::2] + jobs[1::2] if k == 0 else list(reversed(jobs))
    created = existing = 0
    start.wait()
    for kind, track in jobs:
        camera = f"cam-{k}" if kind == "own" else "cam-shared"
        rec = record_violation(writer, store, make_request(track, camera=camera, clip=False), {"run_id": "r1"})
        created += rec.created
        existing += not rec.created
    store.close()
    results.put((k, created, existing))


def adder(k: int, url: str, start, results) -> None:
    store = TicketStore(url)
    t0 = datetime(2026, 11, 28, tzinfo=timezone.utc)
    created = 0
    start.wait()
    for i in range(200):
        track = i if k == 0 else 199 - i  # the same 200 violations, met in opposite orders
        _, new = store.add_or_get(TicketIn(camera_id="cam-x", rule="red_light", track_id=track,
                                           occurred_at=t0 + timedelta(seconds=track), run_id="r1"))
        created += new
        store.add(TicketIn(camera_id=f"cam-own-{k}", rule="red_light", track_id=i, occurred_at=t0, run_id="r1"))
    store.close()
    results.put((k, created, 0))


def run_two(target, *args) -> list[tuple[int, int, int]]:
    ctx = mp.get_context("fork")
    start, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=target, args=(k, *args, start, results)) for k in (0, 1)]
    for p in procs:
        p.start()
    out = sorted(results.get(timeout=300) for _ in procs)
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    return out


def counts(url: str) -> tuple[int, int, int, int]:
    with TicketStore(url) as store, store.engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(Ticket)).scalar()
        uids = conn.execute(select(func.count(func.distinct(Ticket.uid)))).scalar()
        keys = conn.execute(select(func.count()).select_from(
            select(Ticket.camera_id, Ticket.source, Ticket.run_id, Ticket.track_id, Ticket.rule).distinct().subquery())).scalar()
        creates = conn.execute(select(func.count()).select_from(ReviewAction).where(ReviewAction.action == "create")).scalar()
        return int(n), int(uids), int(keys), int(creates)


def test_two_pipelines_one_postgres(fresh_postgres_url: str, tmp_path: Path, make_evidence_request) -> None:
    url = fresh_postgres_url
    TicketStore(url).close()  # migrated once before the race (concurrent first opens are tested elsewhere)
    root, keys = tmp_path / "ev", tmp_path / "keys"
    info = init_keys(keys)
    with TicketStore(url) as store:
        store.register_site_key(info.key_id, info.public_key_b64)
    results = run_two(pipeline, url, str(root), str(keys), make_evidence_request)
    expected = 2 * OWN + SHARED
    n, uids, distinct_keys, creates = counts(url)
    created = sum(r[1] for r in results)
    print(f"\nCONCURRENCY (pipelines): 2 processes recorded {2 * (OWN + SHARED)} violations ({SHARED} seen by both); "
          f"created {created} (per pipeline {[r[1] for r in results]}), found existing {sum(r[2] for r in results)}; "
          f"database has {n} tickets, {uids} distinct uids, {distinct_keys} distinct violations, {creates} create entries; "
          f"expected {expected}")
    assert n == uids == distinct_keys == creates == created == expected
    assert sorted(p.parent.parent.parent.name for p in root.glob("*/*/*/manifest.json")).count("cam-shared") == SHARED
    with TicketStore(url) as store, store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(EvidenceFile)).scalar() == expected * 6  # 4 pictures (no clip) + manifest + sig
        report = verify_evidence(LocalEvidenceStorage(root), store=store, keys=trusted_keys(keys))
    assert report.ok, [f.line() for f in report.findings]
    assert (report.bundles, report.tickets) == (expected, expected)


def test_two_writers_racing_on_the_same_keys(fresh_postgres_url: str) -> None:
    url = fresh_postgres_url
    TicketStore(url).close()
    results = run_two(adder, url)
    n, uids, distinct_keys, creates = counts(url)
    created = sum(r[1] for r in results)
    print(f"\nCONCURRENCY (store): 2 processes added the same 200 violations in opposite orders plus 200 own each; "
          f"shared created {created} (per process {[r[1] for r in results]}); database has {n} tickets, "
          f"{uids} distinct uids, {distinct_keys} distinct violations; expected 600")
    assert created == 200 and n == uids == distinct_keys == creates == 600
