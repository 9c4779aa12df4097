"""``etle batch``: many recorded clips on a Ray cluster (or a local Ray instance).

* :mod:`etle.batch.plan` -- segments of long recordings, which segment keeps an event, ticket identity;
* :mod:`etle.batch.jobs` -- the driver's planning: clips, content hashes, cameras by content;
* :mod:`etle.batch.worker` -- what a worker does with a segment (models held once per worker);
* :mod:`etle.batch.ledger` -- done-markers per segment in the central database;
* :mod:`etle.batch.ray_backend` -- the only module that imports ``ray``.

:func:`run_batch` is the library call behind the command.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from etle.batch.jobs import ClipFailure, ClipJob, plan_batch
from etle.batch.worker import BatchOptions, SegmentResult, SegmentTask

if TYPE_CHECKING:
    from etle.store import TicketStore

log = logging.getLogger(__name__)

__all__ = ["BatchOptions", "BatchReport", "ClipReport", "run_batch", "settle_repeats", "tasks_to_run"]


@dataclass(frozen=True)
class ClipReport:
    """One clip of a batch: what ran now, what was done before, and its failure if any."""

    clip: str
    sha256: str
    segments: int
    segments_done_before: int
    segments_run: int
    frames: int
    video_s: float
    tickets_new: int
    tickets_present: int
    not_owned: int
    #: tickets rejected as repeats of an earlier segment's ticket (:func:`settle_repeats`)
    repeats_rejected: int = 0
    error: str | None = None
    #: the files of a recording planned as one (ClipJob.parts; ``clip`` is the first); empty for one
    parts: tuple[str, ...] = ()


@dataclass(frozen=True)
class BatchReport:
    """The whole batch: per clip, and totals with per-stage costs."""

    clips: tuple[ClipReport, ...]
    wall_s: float
    workers: int
    cluster_cpus: float
    nodes: int
    stage_total_ms: dict[str, float] = field(default_factory=dict)
    #: seconds the workers spent in segments (models loaded), and the CPU seconds they used
    busy_s: float = 0.0
    cpu_s: float = 0.0
    #: seconds spent starting or joining Ray (part of ``wall_s``)
    connect_s: float = 0.0

    @property
    def failed(self) -> tuple[ClipReport, ...]:
        return tuple(c for c in self.clips if c.error)

    @property
    def frames(self) -> int:
        return sum(c.frames for c in self.clips)

    @property
    def video_s(self) -> float:
        return sum(c.video_s for c in self.clips)

    @property
    def tickets_new(self) -> int:
        return sum(c.tickets_new for c in self.clips)


def tasks_to_run(jobs: list[ClipJob], done: set[tuple[str, str]]) -> list[SegmentTask]:
    """Every segment of ``jobs`` without a done-marker, clip by clip."""
    tasks = []
    for job in jobs:
        for seg in job.plan.segments:
            if (job.sha256, seg.key) in done:
                continue
            tasks.append(SegmentTask(clip=job.clip, clip_sha256=job.sha256, wall_start=job.wall_start, plan=job.plan,
                                     segment=seg, camera=job.camera, wall_start_origin=job.wall_start_origin,
                                     parts=job.parts))
    return tasks


#: the actor of the batch's own review actions (the audit log names it)
BATCH_ACTOR = "system:batch"


def settle_repeats(store: "TicketStore", job: ClipJob) -> list[tuple[int, int]]:
    """Reject, as ``duplicate``, the tickets of ``job``'s clip that repeat an earlier ticket of
    another segment (:func:`etle.batch.plan.repeats`: same rule, same read plate or the same
    place at a cut time, from the marks the workers wrote); returns ``(rejected id, kept id)``.

    Only tickets still pending review are rejected (an officer's decision is never undone here);
    the reason names the kept ticket, and an officer can reopen it.  Idempotent: a rejected
    ticket takes no part in a later call.
    """
    from etle.batch.ledger import read_marks
    from etle.batch.plan import Kept, repeats, run_id, vehicles
    from etle.store import lifecycle

    segment_of = {run_id(job.sha256, seg): seg.index for seg in job.plan.segments}
    index_of = {seg.key: seg.index for seg in job.plan.segments}
    views = [t for t in store.list(run_ids=list(segment_of), limit=100000) if t.status != lifecycle.REJECTED]
    by_id = {t.id: t for t in views}
    marked = [m for m in read_marks(store.engine, job.sha256) if m.segment in index_of]
    group = vehicles({(index_of[m.segment], m.track_id): m.boxes for m in marked})
    vehicle_of = {m.ticket_id: group[(index_of[m.segment], m.track_id)] for m in marked if m.ticket_id is not None}
    found = repeats(job.plan, (Kept(ticket_id=t.id, segment=segment_of[t.run_id], rule=t.rule, plate=t.plate_text,
                                    seconds=t.occurred_at.timestamp(), vehicle=vehicle_of.get(t.id)) for t in views))
    settled: list[tuple[int, int]] = []
    for repeat, kept in found:
        t, first = by_id[repeat.ticket_id], by_id[kept.ticket_id]
        if t.status != lifecycle.PENDING_REVIEW:
            log.warning("%s repeats %s (%s, %s) but is already %s: left to the officers",
                        t.reference, first.reference, t.rule, t.plate_text, t.status)
            continue
        reason = (f"duplicate: the same vehicle ({t.plate_text or '?'}) and rule as {first.reference}, "
                  "seen again by a later overlapping segment of the clip")
        store.transition(t.id, "reject", actor=BATCH_ACTOR, reason=reason,
                         data={"reason_code": "duplicate", "kept": first.reference})
        log.info("%s rejected as a repeat of %s (%s, %s)", t.reference, first.reference, t.rule, t.plate_text)
        settled.append((t.id, first.id))
    return settled


def run_batch(
    sources: list[str],
    *,
    db_url: str,
    evidence: str,
    options: BatchOptions = BatchOptions(),
    cluster: str | None = None,
    workers: int = 0,
    camera: Path | None = None,
    camera_dir: Path | None = None,
    start: datetime | None = None,
    max_seconds: float | None = None,
    segment_s: float = 300.0,
    overlap_s: float = 30.0,
    join: bool = True,
    keys_dir: Path | None = None,
    on_plan: Callable[[list[ClipJob], list[SegmentTask], int], None] | None = None,
    on_progress: Callable[[dict[str, int], dict[str, int]], None] | None = None,
) -> BatchReport:
    """Plan, connect and run; a clip that fails is reported in the result, not raised.

    Raises typed errors for what fails the whole batch: a bad ``camera``, an unusable database
    or evidence location, a cluster that cannot be reached.
    """
    from etle.batch import ledger
    from etle.evidence.storage import open_evidence_storage
    from etle.store import open_store

    if "://" not in evidence:
        evidence = str(Path(evidence).resolve())
    if db_url.startswith("sqlite:///") and not db_url.startswith("sqlite:////") and ":memory:" not in db_url:
        db_url = "sqlite:///" + str(Path(db_url.removeprefix("sqlite:///")).resolve())
    jobs, failures = plan_batch(sources, camera=camera, camera_dir=camera_dir, start=start, max_seconds=max_seconds,
                                segment_s=segment_s, overlap_s=overlap_s, tail_s=options.post_s, join=join)
    store = open_store(db_url)  # creates / migrates the schema once, before any worker opens it
    try:
        ledger.ensure_table(store.engine)
        done = ledger.done_segments(store.engine, [j.sha256 for j in jobs])
    finally:
        store.close()
    # the workers sign with the site key in this folder as they see it (absolute: their working
    # folder is not the driver's); a worker without a key there writes unsigned evidence, with a warning
    from etle.evidence.signing import default_keys_dir

    keys = str((keys_dir or default_keys_dir()).resolve())
    storage = open_evidence_storage(evidence)
    if hasattr(storage, "root"):
        Path(storage.root).mkdir(parents=True, exist_ok=True)
    todo = tasks_to_run(jobs, done)
    t0 = time.perf_counter()
    results: list[SegmentResult] = []
    run_failures: list[ClipFailure] = []
    cpus, nodes, n_workers = 0.0, 0, 0
    connect_s = 0.0
    if todo:
        from etle.batch import ray_backend

        t_connect = time.perf_counter()
        cpus, nodes = ray_backend.connect(cluster)
        connect_s = time.perf_counter() - t_connect
        try:
            n_workers = workers if workers > 0 else max(1, int(cpus))
            if on_plan is not None:
                on_plan(jobs, todo, n_workers)
            results, run_failures = ray_backend.run_on_ray(
                todo, db_url=db_url, evidence=evidence, options=options, workers=n_workers, on_progress=on_progress,
                keys_dir=keys,
            )
        finally:
            ray_backend.shutdown()
    elif on_plan is not None:
        on_plan(jobs, todo, 0)
    by_clip: dict[str, list[SegmentResult]] = defaultdict(list)
    for r in results:
        by_clip[r.clip_sha256].append(r)
    # once every segment of a clip is done (now or before), its repeats are settled (a rerun
    # of a finished batch settles again, finding nothing new)
    repeated: dict[str, int] = {}
    finished = [j for j in jobs if len(j.plan.segments) > 1 and all(
        (j.sha256, s.key) in done or any(r.segment == s.key for r in by_clip.get(j.sha256, []))
        for s in j.plan.segments)]
    if finished:
        store = open_store(db_url)
        try:
            for job in finished:
                repeated[job.sha256] = len(settle_repeats(store, job))
        finally:
            store.close()
    wall = time.perf_counter() - t0
    errors = {f.clip: f.message for f in failures + run_failures}
    stage: dict[str, float] = defaultdict(float)
    for r in results:
        for k, v in r.stage_total_ms.items():
            stage[k] += v
    reports = []
    for job in jobs:
        rs = by_clip.get(job.sha256, [])
        before = sum(1 for s in job.plan.segments if (job.sha256, s.key) in done)
        reports.append(ClipReport(
            clip=job.clip, sha256=job.sha256, segments=len(job.plan.segments), segments_done_before=before,
            segments_run=len(rs), frames=sum(r.frames for r in rs), video_s=sum(r.video_s for r in rs),
            tickets_new=sum(r.tickets_new for r in rs), tickets_present=sum(r.tickets_present for r in rs),
            not_owned=sum(r.not_owned for r in rs), repeats_rejected=repeated.get(job.sha256, 0),
            error=errors.get(job.clip), parts=tuple(name for name, _ in job.parts),
        ))
    planned = {j.clip for j in jobs}
    for f in failures:
        if f.clip not in planned:
            reports.append(ClipReport(clip=f.clip, sha256="", segments=0, segments_done_before=0, segments_run=0,
                                      frames=0, video_s=0.0, tickets_new=0, tickets_present=0, not_owned=0, error=f.message))
    return BatchReport(clips=tuple(reports), wall_s=wall, workers=n_workers, cluster_cpus=cpus, nodes=nodes,
                       stage_total_ms=dict(stage), busy_s=sum(r.elapsed_s for r in results),
                       cpu_s=sum(r.cpu_s for r in results), connect_s=connect_s)
