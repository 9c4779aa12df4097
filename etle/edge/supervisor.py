"""``etle edge``: every camera of a site in its own process, kept running.

The :class:`Supervisor` starts one worker process per camera (``multiprocessing`` *spawn*: a
fresh interpreter, nothing inherited but the :class:`~etle.edge.worker.WorkerSpec`), so one
camera's crash, hang or bad stream never touches another.  It

* reads each worker's pipe (stats, tickets, errors) and feeds the Prometheus metrics, the
  ``/health`` state and the event publishers (MQTT, webhook);
* restarts a worker that died (non-zero exit, signal, crash) after a capped exponential backoff
  that resets once a worker has run ``restart.stable_s``; a worker whose stream is connected
  but that processed nothing for ``restart.watchdog_s`` is killed and restarted;
* runs the site's upkeep (:mod:`etle.edge.upkeep`): store-and-forward to the central store and
  the disk watch that offloads synced evidence when space runs low;
* on :meth:`request_stop` (SIGTERM/SIGINT in the CLI) sets every worker's stop event, waits up
  to ``shutdown_timeout_s`` while they finish pending evidence (still reading their tickets),
  kills what is left, then flushes the publishers (undelivered events are spooled to disk).
"""

from __future__ import annotations

import collections
import logging
import multiprocessing as mp
import os
import random
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_conns
from pathlib import Path
from typing import Any, Callable

from etle.edge.metrics import EdgeMetrics, HealthServer
from etle.errors import EtleError
from etle.edge.publish import MqttPublisher, Publisher, WebhookPublisher
from etle.edge.site import SiteConfig
from etle.edge.upkeep import Upkeep, sync_target
from etle.edge.worker import DEFAULT_FACTORY, WorkerSpec, worker_main
from etle.ingest.live import backoff_delay

log = logging.getLogger(__name__)

__all__ = ["Supervisor", "EdgeReport", "worker_specs"]


@dataclass
class _Worker:
    spec: WorkerSpec
    process: Any = None
    conn: Any = None
    stop_event: Any = None
    started_at: float = 0.0
    pid: int | None = None
    restarts: int = 0
    attempt: int = 0
    next_start: float | None = 0.0  # monotonic time of the next start; None: not to be started
    done: bool = False
    exit_code: int | None = None
    last_stats: dict[str, Any] = field(default_factory=dict)
    last_stats_at: float | None = None
    tickets: int = 0  # ticket events received from this camera's workers
    worker_tickets: int = 0  # tickets the workers said they recorded (summed over restarts)
    last_error: str | None = None
    not_recorded: int = 0  # violations the workers could not record (disk full), summed over restarts
    _lost_seen: tuple[int, int] = (0, 0)  # (pid, the worker's own count) at its last report

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()


@dataclass(frozen=True)
class EdgeReport:
    """What an ``etle edge`` run did, per camera."""

    cameras: dict[str, dict[str, Any]]
    tickets: int
    events: list[dict[str, Any]]  # the latest 10000
    elapsed_s: float
    publishers: dict[str, dict[str, Any]]


def _default_threads(n_cameras: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(n_cameras, 1))


def worker_specs(site: SiteConfig, *, factory: str = DEFAULT_FACTORY, max_seconds: float | None = None,
                 log_level: int = logging.INFO, stats_interval_s: float = 1.0,
                 pipeline_overrides: dict[str, Any] | None = None) -> list[WorkerSpec]:
    cams = site.enabled_cameras
    pipeline = {**site.pipeline.model_dump(), **(pipeline_overrides or {})}
    threads = pipeline.pop("threads", None) or _default_threads(len(cams))
    return [
        WorkerSpec(
            site=site.site, camera_id=cid, camera_path=str(site.camera_path(entry)), source=entry.source,
            out_dir=str(site.output_dir), db_url=site.db_url, pipeline=pipeline, live=site.live.model_dump(),
            options=dict(entry.options), factory=factory, log_level=log_level, stats_interval_s=stats_interval_s,
            max_seconds=max_seconds, threads=threads, keys_dir=str(site.keys_dir) if site.keys_dir else None,
            storage=site.storage.model_dump(),
        )
        for cid, entry in cams
    ]


class Supervisor:
    """Runs the workers of ``site`` until :meth:`request_stop` (or ``max_seconds``, or until every
    worker ended on its own, e.g. with a ``max_seconds`` of their source clock)."""

    def __init__(
        self,
        site: SiteConfig,
        *,
        factory: str = DEFAULT_FACTORY,
        max_seconds: float | None = None,
        source_max_seconds: float | None = None,
        log_level: int = logging.INFO,
        stats_interval_s: float = 1.0,
        publishers: list[Publisher] | None = None,
        pipeline_overrides: dict[str, Any] | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.site = site
        self.max_seconds = max_seconds
        self.metrics = EdgeMetrics(site.site)
        self.on_event = on_event
        self._ctx = mp.get_context("spawn")
        self._workers = {
            s.camera_id: _Worker(spec=s)
            for s in worker_specs(site, factory=factory, max_seconds=source_max_seconds, log_level=log_level,
                                  stats_interval_s=stats_interval_s, pipeline_overrides=pipeline_overrides)
        }
        self._publishers = publishers
        self._stop_requested = False
        self._force = False
        self._lock = threading.Lock()
        self._events: collections.deque[dict[str, Any]] = collections.deque(maxlen=10000)  # the latest, for the report
        self._ticket_count = 0
        self._started = time.monotonic()
        self._rng = random.Random()
        self.health_server: HealthServer | None = None
        self.upkeep: Upkeep | None = None
        self._stopped = threading.Event()

    # ------------------------------------------------------------------ control

    def request_stop(self) -> None:
        """Ask for a graceful stop (safe from a signal handler: it only sets flags).  A second
        request stops without waiting for pending evidence."""
        if self._stop_requested:
            self._force = True
        self._stop_requested = True

    @property
    def stopping(self) -> bool:
        return self._stop_requested

    def pid_of(self, camera_id: str) -> int | None:
        w = self._workers[camera_id]
        return w.pid if w.alive else None

    # ------------------------------------------------------------------- health

    def health(self) -> dict[str, Any]:
        now = time.monotonic()
        stale = self.site.health.stale_after_s
        cams: dict[str, Any] = {}
        ok_all = True
        with self._lock:
            for cid, w in self._workers.items():
                s = w.last_stats
                live = s.get("live") or {}
                age = live.get("last_frame_age_s")
                if age is not None and w.last_stats_at is not None:
                    age = float(age) + (now - w.last_stats_at)
                alive = w.alive
                ok = alive and bool(live.get("connected")) and age is not None and age <= stale
                ok_all = ok_all and (ok or w.done)
                cams[cid] = {
                    "ok": ok,
                    "alive": alive,
                    "pid": w.pid if alive else None,
                    "state": live.get("state") or ("starting" if alive else ("done" if w.done else "down")),
                    "connected": bool(live.get("connected")),
                    "fps": round(float(s.get("fps") or 0.0), 2),
                    "input_fps": round(float(live.get("input_fps") or 0.0), 2),
                    "last_frame_age_s": round(age, 2) if age is not None else None,
                    "latency_s": s.get("latency_s"),
                    "queue_depth": live.get("queue_depth"),
                    "frames_processed": s.get("processed"),
                    "frames_dropped": live.get("frames_dropped"),
                    "reconnects": live.get("reconnects"),
                    "stalls": live.get("stalls"),
                    "restarts": w.restarts,
                    "tickets": w.tickets,
                    "not_recorded": w.not_recorded,
                    "last_error": live.get("last_error") or w.last_error,
                }
        upkeep = self.upkeep
        ok_all = ok_all and not (upkeep is not None and upkeep.degraded)
        return {
            "status": "ok" if ok_all and not self._stop_requested else ("stopping" if self._stop_requested else "degraded"),
            "site": self.site.site,
            "uptime_s": round(now - self._started, 1),
            "cameras": cams,
            "events": {p.name: p.stats() for p in (self._publishers or [])},
            **(upkeep.state() if upkeep is not None else {}),
        }

    def report(self) -> dict[str, Any]:
        """The site's health in brief, as the central store keeps it (``site_status``) and its
        review app shows it (``/sites``)."""
        from etle import __version__

        h = self.health()
        keep = ("ok", "state", "fps", "last_frame_age_s", "tickets", "restarts", "last_error")
        storage = h.get("storage") or {}
        return {
            "status": h["status"], "uptime_s": h["uptime_s"], "version": __version__,
            "cameras": {cid: {k: c.get(k) for k in keep} for cid, c in h["cameras"].items()},
            "storage": {k: storage.get(k) for k in ("free_gb", "state", "offloaded_tickets")},
            "clock": h.get("clock") or {},
            "events_pending": sum(int(e.get("pending") or 0) for e in (h.get("events") or {}).values()),
        }

    # ---------------------------------------------------------------------- run

    def _make_publishers(self) -> list[Publisher]:
        site = self.site
        spool_dir = Path(site.output_dir) / ".edge"
        pubs: list[Publisher] = []
        if site.mqtt is not None:
            m = site.mqtt
            pubs.append(MqttPublisher(
                m.host, m.port, topic=m.topic, qos=m.qos, client_id=m.client_id, username=m.username,
                password=m.password, keepalive_s=m.keepalive_s, tls=m.tls, max_pending=m.max_pending,
                spool=spool_dir / "mqtt-spool.jsonl",
            ))
        if site.webhook is not None:
            h = site.webhook
            pubs.append(WebhookPublisher(h.url, timeout_s=h.timeout_s, headers=dict(h.headers), max_pending=h.max_pending,
                                         spool=spool_dir / "webhook-spool.jsonl"))
        return pubs

    def _start_worker(self, w: _Worker) -> None:
        reader, writer = self._ctx.Pipe(duplex=False)
        stop_event = self._ctx.Event()
        proc = self._ctx.Process(target=worker_main, args=(w.spec, writer, stop_event),
                                 name=f"etle-edge:{w.spec.camera_id}", daemon=False)
        proc.start()
        writer.close()  # the worker holds the only writer: its death shows as EOF here
        w.process, w.conn, w.stop_event = proc, reader, stop_event
        w.pid = proc.pid
        w.started_at = time.monotonic()
        w.next_start = None
        w.exit_code = None
        w.last_stats = {}
        w.last_stats_at = None
        self.metrics.worker_state(w.spec.camera_id, True)
        log.info("camera %s: worker started (pid %d)", w.spec.camera_id, proc.pid)

    def _handle(self, w: _Worker, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        cam = w.spec.camera_id
        if kind == "stats":
            with self._lock:
                w.last_stats = msg
                w.last_stats_at = time.monotonic()
            self.metrics.observe_stats(msg)
            self._count_lost(w, msg)
        elif kind == "ticket":
            event = msg["event"]
            with self._lock:
                w.tickets += 1
                self._ticket_count += 1
                self._events.append(event)
            self.metrics.ticket(cam, str(event.get("rule")))
            log.info("camera %s: ticket %s (%s%s)", cam, event.get("ticket_id"), event.get("rule"),
                     f", plate {event['plate']}" if event.get("plate") else "")
            for p in self._publishers or []:
                try:
                    p.publish(event)
                except Exception:  # noqa: BLE001 - a sink must never stop the supervisor
                    log.exception("%s: publishing failed", p.name)
            if self.on_event is not None:
                self.on_event(event)
        elif kind == "error":
            w.last_error = msg.get("message")
            log.error("camera %s: worker failed: %s", cam, w.last_error)
        elif kind == "exit":
            with self._lock:
                w.worker_tickets += int(msg.get("tickets") or 0)
            log.info("camera %s: worker ended (%s frames, %s tickets)", cam, msg.get("frames"), msg.get("tickets"))

    def _count_lost(self, w: _Worker, msg: dict[str, Any]) -> None:
        """Violations a worker could not record since its last report (its disk below
        ``storage.reserve_gb``): said, counted, and published like a ticket, so the operations
        centre knows the camera saw violations that are lost."""
        pid, lost = int(msg.get("pid") or 0), int((msg.get("evidence") or {}).get("not_recorded") or 0)
        last_pid, last = w._lost_seen
        delta = lost - last if pid == last_pid and lost >= last else lost
        w._lost_seen = (pid, lost)
        if delta <= 0:
            return
        cam = w.spec.camera_id
        with self._lock:
            w.not_recorded += delta
        event = {
            "event": "violations_not_recorded", "event_id": f"{self.site.site}:{cam}:not-recorded:{time.time_ns()}",
            "site": self.site.site, "camera": cam, "count": delta, "total": w.not_recorded,
            "reason": "the evidence disk is full (below storage.reserve_gb)",
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        log.error("camera %s: %d violation(s) NOT RECORDED: %s", cam, delta, event["reason"])
        for p in self._publishers or []:
            try:
                p.publish(event)
            except Exception:  # noqa: BLE001 - a sink must never stop the supervisor
                log.exception("%s: publishing failed", p.name)

    def _drain(self, w: _Worker, timeout: float = 0.0) -> None:
        if w.conn is None:
            return
        try:
            while w.conn.poll(timeout):
                self._handle(w, w.conn.recv())
                timeout = 0.0
        except (EOFError, OSError):
            w.conn.close()
            w.conn = None

    def _reap(self, w: _Worker) -> None:
        """A worker process has ended: read what it left, then decide on a restart."""
        self._drain(w)
        w.process.join(1.0)
        code = w.process.exitcode
        w.exit_code = code
        w.process = None
        if w.conn is not None:
            w.conn.close()
            w.conn = None
        cam = w.spec.camera_id
        self.metrics.worker_state(cam, False)
        if self._stop_requested:
            w.done = True
            return
        if code == 0:
            log.info("camera %s: worker finished", cam)
            w.done = True
            return
        ran = time.monotonic() - w.started_at
        if ran >= self.site.restart.stable_s:
            w.attempt = 0
        delay = backoff_delay(w.attempt, initial_s=self.site.restart.initial_s, max_s=self.site.restart.max_s,
                              jitter=0.2, rng=self._rng)
        w.attempt += 1
        w.restarts += 1
        w.next_start = time.monotonic() + delay
        self.metrics.restarted(cam)
        log.warning("camera %s: worker died (exit code %s) after %.0f s; restarting in %.1f s", cam, code, ran, delay)

    def _watchdog(self, w: _Worker) -> None:
        """Kill (to restart) a worker that is alive but stuck: its pipeline processed nothing for
        ``watchdog_s`` while frames wait, or it has sent no report at all for that long."""
        limit = self.site.restart.watchdog_s
        s = w.last_stats
        live = s.get("live") or {}
        age = s.get("processed_age_s")
        silent = time.monotonic() - w.last_stats_at if w.last_stats_at is not None else 0.0
        if live.get("connected") and (live.get("queue_depth") or 0) > 0 and age is not None and age > limit:
            log.error("camera %s: no frame processed for %.0f s while the stream runs: killing the worker", w.spec.camera_id, age)
        elif silent > limit:
            log.error("camera %s: no report from the worker for %.0f s: killing it", w.spec.camera_id, silent)
        else:
            return
        w.process.kill()
        w.last_stats_at = time.monotonic()  # one kill; the reap restarts it

    def run(self, *, health: bool | None = None) -> EdgeReport:
        """Run until stopped; returns what happened.  ``health`` overrides ``site.health.enabled``."""
        site = self.site
        Path(site.output_dir).mkdir(parents=True, exist_ok=True)
        if self._publishers is None:
            self._publishers = self._make_publishers()
        if self.upkeep is None:
            try:
                self.upkeep = Upkeep(site, self.metrics, target=sync_target(site), report=self.report).start()
            except EtleError:
                for p in self._publishers:
                    p.close(flush_timeout_s=0)
                raise
        if health if health is not None else site.health.enabled:
            try:
                self.health_server = HealthServer(site.health.host, site.health.port, health=self.health,
                                                  metrics=self.metrics).start()
            except OSError as exc:
                for p in self._publishers:
                    p.close(flush_timeout_s=0)
                self.upkeep.stop(flush_timeout_s=0)
                raise EtleError(f"cannot serve /health and /metrics on {site.health.host}:{site.health.port}: "
                                f"{exc.strerror or exc} (set health.port in the site file)") from None
        self._started = time.monotonic()
        last_sink_update = 0.0
        try:
            while True:
                now = time.monotonic()
                if self.max_seconds is not None and now - self._started >= self.max_seconds and not self._stop_requested:
                    log.info("run time of %.0f s reached: stopping", self.max_seconds)
                    self.request_stop()
                if self._stop_requested:
                    break
                for w in self._workers.values():
                    if w.process is None and not w.done and w.next_start is not None and now >= w.next_start:
                        self._start_worker(w)
                conns = {w.conn: w for w in self._workers.values() if w.conn is not None}
                for c in wait_conns(list(conns), timeout=0.25) if conns else ():
                    self._drain(conns[c])
                if not conns:
                    time.sleep(0.25)
                for w in self._workers.values():
                    if w.process is not None and not w.process.is_alive():
                        self._reap(w)
                    elif w.process is not None:
                        self._watchdog(w)
                if all(w.done for w in self._workers.values()):
                    break
                if now - last_sink_update > 1.0:
                    self.metrics.sinks({p.name: p.stats() for p in self._publishers})
                    last_sink_update = now
        finally:
            self._shutdown()
        with self._lock:
            cams = {cid: {"restarts": w.restarts, "tickets": w.tickets, "worker_tickets": w.worker_tickets,
                          "exit_code": w.exit_code,
                          "last_stats": w.last_stats, "last_error": w.last_error}
                    for cid, w in self._workers.items()}
            events = list(self._events)
        return EdgeReport(cameras=cams, tickets=self._ticket_count, events=events, elapsed_s=time.monotonic() - self._started,
                          publishers={p.name: p.stats() for p in self._publishers or []})

    def _shutdown(self) -> None:
        self._stop_requested = True
        running = [w for w in self._workers.values() if w.process is not None]
        if running:
            log.info("stopping %d camera worker(s); pending evidence is finished first", len(running))
        for w in running:
            w.stop_event.set()
        deadline = time.monotonic() + (0.0 if self._force else self.site.shutdown_timeout_s)
        while any(w.process is not None and w.process.is_alive() for w in running):
            if time.monotonic() >= deadline or self._force:
                break
            conns = {w.conn: w for w in running if w.conn is not None}
            for c in wait_conns(list(conns), timeout=0.2) if conns else ():
                self._drain(conns[c])
            if not conns:
                time.sleep(0.2)
        for w in running:
            if w.process is not None and w.process.is_alive():
                log.error("camera %s: worker did not stop in time: killing it", w.spec.camera_id)
                w.process.kill()
                w.process.join(5.0)
            if w.process is not None:
                self._reap(w)
        for p in self._publishers or []:
            try:
                p.close(flush_timeout_s=5.0)
            except Exception:  # noqa: BLE001
                log.exception("%s: closing failed", p.name)
        if self.upkeep is not None:  # after the workers: their last tickets go too
            self.upkeep.stop(flush_timeout_s=self.site.shutdown_timeout_s)
        if self.health_server is not None:
            self.health_server.stop()
        self._stopped.set()
