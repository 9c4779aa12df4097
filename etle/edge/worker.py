"""One camera of ``etle edge``: a live source through the pipeline, in its own process.

:func:`worker_main` is the entry point of the spawned process.  It builds the camera's
pipeline (``spec.factory``, ``"module:function"``, default :func:`build_real_pipeline`), reads
the camera's :class:`~etle.ingest.live.LiveSource`, and reports to the supervisor over its own
pipe (one per worker: a worker that dies mid-message cannot wedge the others, as it could
through a shared :class:`multiprocessing.Queue`, whose writers share a lock):

* ``{"type": "stats", ...}`` every ``stats_interval_s``: the source's :class:`LiveStats`, frames
  processed, processing fps, latency (capture to processed) and the age of the last processed
  frame;
* ``{"type": "ticket", ...}`` for each new ticket (see :func:`ticket_event`);
* ``{"type": "error", ...}`` when the worker fails, ``{"type": "exit", ...}`` when it ends.

Stopping: the supervisor sets the worker's stop event; SIGTERM/SIGINT to the worker do the same
(systemd signals every process of the unit).  The worker then closes the source and the
pipeline finishes the evidence of violations already seen, so nothing is written half-way.
A worker also stops when its supervisor disappears.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)

DEFAULT_FACTORY = "etle.edge.worker:build_real_pipeline"


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker process needs (picklable: it crosses the spawn boundary)."""

    site: str
    camera_id: str
    camera_path: str
    source: str
    out_dir: str
    db_url: str
    pipeline: dict[str, Any] = field(default_factory=dict)  # PipelineOptions
    live: dict[str, Any] = field(default_factory=dict)  # LiveSource keyword arguments
    options: dict[str, str] = field(default_factory=dict)  # FFmpeg input options
    factory: str = DEFAULT_FACTORY
    log_level: int = logging.INFO
    stats_interval_s: float = 1.0
    max_seconds: float | None = None
    threads: int | None = None
    keys_dir: str | None = None
    storage: dict[str, Any] = field(default_factory=dict)  # StorageConfig: the free-space floors


def load_factory(ref: str) -> Callable[[WorkerSpec], Any]:
    module, _, name = ref.partition(":")
    if not module or not name:
        raise ValueError(f"factory must be 'module:function', got {ref!r}")
    return getattr(importlib.import_module(module), name)


def build_real_pipeline(spec: WorkerSpec) -> Any:
    """The real pipeline of ``etle run`` for the camera file of ``spec``."""
    from etle.runner import build_pipeline

    from etle.config.run import RunOptions
    from etle.config.settings import settings
    from etle.edge.site import PipelineOptions

    stages = PipelineOptions.model_validate(spec.pipeline)
    options = RunOptions.of(stages, out_dir=Path(spec.out_dir), db_url=spec.db_url, **space_options(spec.storage))
    env = settings()
    if spec.keys_dir:
        env = env.model_copy(update={"keys_dir": Path(spec.keys_dir)})
    pipeline, _ = build_pipeline(Path(spec.camera_path), options, env)
    return pipeline


def space_options(storage: dict[str, Any]) -> dict[str, Any]:
    """The :class:`RunOptions` free-space floors of a site's ``storage`` section (see
    :class:`etle.edge.site.StorageConfig`): a live camera's violation is skipped, not fatal."""
    from etle.evidence.offload import GB

    return {"clip_min_free_bytes": int(float(storage.get("clips_below_gb") or 0) * GB),
            "evidence_min_free_bytes": int(float(storage.get("reserve_gb") or 0) * GB),
            "low_disk": "skip"}


def ticket_event(site: str, camera_id: str, violation: Any, ticket_id: int, evidence_path: Path | str) -> dict[str, Any]:
    """The event published for a new ticket (plate, article and fine from the bundle's manifest)."""
    event: dict[str, Any] = {
        "event": "violation",
        "event_id": f"{site}:{camera_id}:{ticket_id}",
        "site": site,
        "camera": camera_id,
        "ticket_id": int(ticket_id),
        "rule": violation.rule,
        "track_id": int(violation.track_id),
        "vehicle": violation.label,
        "time_utc": violation.timestamp.isoformat(timespec="milliseconds"),
        "pts": round(float(violation.pts), 3),
        "frame_index": int(violation.frame_index),
        "evidence": str(evidence_path),
    }
    try:
        manifest = json.loads((Path(evidence_path) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return event
    plate = manifest.get("plate") or {}
    viol = manifest.get("violation") or {}
    event.update({
        "plate": plate.get("text") or None,
        "plate_confidence": plate.get("confidence"),
        "article": viol.get("article"),
        "fine_idr": viol.get("fine"),
        "time_local": (manifest.get("time") or {}).get("local"),
        "clip": "clip.mp4" in (manifest.get("files") or {}),
    })
    return event


class Channel:
    """Messages to the supervisor through a pipe, sent by a thread so the pipeline never blocks
    on it.  :meth:`close` flushes (tickets are never dropped; stats are, when the pipe is slow)."""

    def __init__(self, conn: Any, *, on_broken: Callable[[], None] | None = None) -> None:
        self._conn = conn
        self._q: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._on_broken = on_broken
        self.broken = False
        self._thread = threading.Thread(target=self._run, name="edge-channel", daemon=True)
        self._thread.start()

    def send(self, msg: dict[str, Any]) -> None:
        if msg.get("type") == "stats" and self._q.qsize() > 100:
            return  # supervisor not reading: stats are expendable
        self._q.put(msg)

    def _run(self) -> None:
        while True:
            msg = self._q.get()
            if msg is None:
                return
            if self.broken:
                continue
            try:
                self._conn.send(msg)
            except (OSError, EOFError, ValueError):
                self.broken = True
                if self._on_broken is not None:
                    self._on_broken()

    def close(self, timeout_s: float = 10.0) -> None:
        self._q.put(None)
        self._thread.join(timeout_s)
        try:
            self._conn.close()
        except OSError:
            pass


class _Meter:
    """Frames processed and capture-to-processed latency, per reporting interval."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = 0
        self._n = 0
        self._lat_sum = 0.0
        self._lat_max = 0.0
        self._t = time.monotonic()
        self.last_processed_at: float | None = None

    def add(self, latency_s: float) -> None:
        with self._lock:
            self.total += 1
            self._n += 1
            self._lat_sum += latency_s
            self._lat_max = max(self._lat_max, latency_s)
            self.last_processed_at = time.monotonic()

    def take(self) -> dict[str, Any]:
        with self._lock:
            now = time.monotonic()
            dt = max(now - self._t, 1e-6)
            out = {
                "processed": self.total,
                "fps": self._n / dt,
                "latency_s": (self._lat_sum / self._n) if self._n else None,
                "latency_max_s": self._lat_max if self._n else None,
                "processed_age_s": (now - self.last_processed_at) if self.last_processed_at is not None else None,
            }
            self._n, self._lat_sum, self._lat_max, self._t = 0, 0.0, 0.0, now
            return out


def _setup_logging(level: int, camera_id: str) -> None:
    logging.basicConfig(
        level=level, stream=sys.stderr, force=True,
        format=f"%(asctime)s %(levelname)s [{camera_id}] %(name)s: %(message)s",
    )


def worker_main(spec: WorkerSpec, conn: Any, stop_event: Any) -> None:
    """Entry point of a camera worker process (see the module docstring)."""
    _setup_logging(spec.log_level, spec.camera_id)
    if spec.threads:
        os.environ["ETLE_THREADS"] = str(spec.threads)
    flag = {"signal": False}

    def on_signal(signum: int, _frame: Any) -> None:  # only a flag: locks are not signal-safe
        flag["signal"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stop = threading.Event()
    channel = Channel(conn, on_broken=stop.set)
    base = {"camera": spec.camera_id, "pid": os.getpid()}
    channel.send({**base, "type": "hello", "time": time.time()})
    parent = os.getppid()
    source_box: dict[str, Any] = {}
    meter = _Meter()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if flag["signal"] or stop_event.is_set() or os.getppid() != parent:
                if not stop.is_set():
                    log.info("stopping: finishing pending evidence")
                stop.set()
                src = source_box.get("source")
                if src is not None:
                    src.close(timeout_s=0)
            if stop.is_set() and source_box.get("source") is not None:
                source_box["source"].close(timeout_s=0)
                return
            done.wait(0.2)

    def report() -> None:
        while not done.wait(spec.stats_interval_s):
            channel.send(_stats_message(base, source_box.get("source"), meter))

    threading.Thread(target=watch, name="edge-watch", daemon=True).start()
    threading.Thread(target=report, name="edge-report", daemon=True).start()
    code = 0
    try:
        from etle.ingest.live import LiveSource

        pipeline = load_factory(spec.factory)(spec)
        if stop.is_set():
            return
        source = LiveSource(spec.source, name=spec.camera_id, options=spec.options, max_seconds=spec.max_seconds, **spec.live)
        source_box["source"] = source
        if stop.is_set():
            source.close(timeout_s=0)

        def progress(frame: Any) -> None:
            meter.add(max(source.now() - frame.pts, 0.0))

        def on_record(violation: Any, ticket_id: int, evidence_path: Path) -> None:
            channel.send({**base, "type": "ticket", "event": ticket_event(spec.site, spec.camera_id, violation, ticket_id, evidence_path)})

        summary = pipeline.run_source(source, progress, stop=stop, on_record=on_record)
        source.close()
        channel.send(_stats_message(base, source, meter))
        channel.send({**base, "type": "exit", "frames": summary.frames, "tickets": summary.tickets,
                      "stopped": stop.is_set()})
        if not stop.is_set() and spec.max_seconds is None:
            code = 3  # a live source only ends when asked to: restart the worker
            log.warning("the source ended unexpectedly")
    except BaseException as exc:  # report, then die non-zero: the supervisor restarts the worker
        if stop.is_set() and isinstance(exc, Exception):  # e.g. stopped before the camera ever answered
            log.info("stopped (%s)", exc)
        else:
            code = 1
            log.exception("camera worker failed")
            channel.send({**base, "type": "error", "message": f"{type(exc).__name__}: {exc}"[:500]})
    finally:
        done.set()
        src = source_box.get("source")
        if src is not None:
            src.close(timeout_s=1.0)
        channel.close()
    if code:
        sys.exit(code)


def _stats_message(base: dict[str, Any], source: Any, meter: _Meter) -> dict[str, Any]:
    from etle.evidence.space import COUNTS

    live = source.stats().as_dict() if source is not None else None
    return {**base, "type": "stats", "time": time.time(), "live": live, **meter.take(), "evidence": dict(COUNTS)}
