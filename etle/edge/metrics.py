"""Prometheus metrics of ``etle edge`` and its HTTP endpoint (``/health`` and ``/metrics``).

Workers report cumulative counters (frames, drops, reconnects, ...) that restart at zero when a
worker is restarted; :class:`EdgeMetrics` turns them into Prometheus counters that only grow,
per camera.  Metrics live in their own :class:`prometheus_client.CollectorRegistry`.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

log = logging.getLogger(__name__)

__all__ = ["EdgeMetrics", "HealthServer"]

#: LiveStats counters -> Prometheus counter names (without the etle_edge_ prefix and _total)
_LIVE_COUNTERS = {
    "frames_decoded": ("frames_decoded", "Pictures decoded from the camera stream"),
    "frames_dropped": ("frames_dropped", "Frames dropped from the queue because processing fell behind"),
    "frames_skipped": ("frames_skipped", "Frames left out on purpose to keep under live.max_fps"),
    "reconnects": ("reconnects", "Successful reconnections to the camera stream"),
    "connect_failures": ("connect_failures", "Failed attempts to connect to the camera stream"),
    "disconnects": ("disconnects", "Connections to the camera lost (end of stream, error or stall)"),
    "stalls": ("stalls", "Stream stalls and read timeouts"),
}


class EdgeMetrics:
    def __init__(self, site: str) -> None:
        self.site = site
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        lab = ["camera"]
        self.frames = Counter("etle_edge_frames_processed", "Frames processed by the pipeline", lab, registry=r)
        self.live_counters = {
            key: Counter(f"etle_edge_{name}", doc, lab, registry=r) for key, (name, doc) in _LIVE_COUNTERS.items()
        }
        self.fps = Gauge("etle_edge_fps", "Frames processed per second", lab, registry=r)
        self.input_fps = Gauge("etle_edge_input_fps", "Pictures decoded per second from the stream", lab, registry=r)
        self.latency = Gauge("etle_edge_latency_seconds", "Mean capture-to-processed latency over the last report", lab, registry=r)
        self.latency_max = Gauge("etle_edge_latency_max_seconds", "Largest capture-to-processed latency over the last report", lab, registry=r)
        self.queue_depth = Gauge("etle_edge_queue_depth", "Frames waiting in the camera's queue", lab, registry=r)
        self.queue_size = Gauge("etle_edge_queue_size", "Capacity of the camera's frame queue", lab, registry=r)
        self.last_frame_age = Gauge("etle_edge_last_frame_age_seconds", "Seconds since the last picture from the camera", lab, registry=r)
        self.connected = Gauge("etle_edge_stream_connected", "1 when the camera stream is connected", lab, registry=r)
        self.worker_up = Gauge("etle_edge_worker_up", "1 when the camera's worker process runs", lab, registry=r)
        self.restarts = Counter("etle_edge_worker_restarts", "Camera worker processes restarted after a crash", lab, registry=r)
        self.tickets = Counter("etle_edge_tickets", "Tickets recorded", ["camera", "rule"], registry=r)
        self.events_pending = Gauge("etle_edge_events_pending", "Violation events not yet delivered", ["sink"], registry=r)
        self.events_published = Gauge("etle_edge_events_published", "Violation events delivered since start", ["sink"], registry=r)
        self.events_dropped = Gauge("etle_edge_events_dropped", "Violation events dropped (retry buffer full)", ["sink"], registry=r)
        self.clips_omitted = Counter("etle_edge_clips_omitted", "Evidence written without its clip: the disk was low", lab, registry=r)
        self.not_recorded = Counter("etle_edge_violations_not_recorded", "Violations not recorded: the disk was full", lab, registry=r)
        self.disk_free = Gauge("etle_edge_disk_free_bytes", "Free bytes on the disk holding the evidence", registry=r)
        self.offloaded_tickets = Counter("etle_edge_offloaded_tickets", "Synced tickets whose media were removed here to free space", registry=r)
        self.offloaded_bytes = Counter("etle_edge_offloaded_bytes", "Bytes of synced tickets' media removed here to free space", registry=r)
        self.sync_pending = Gauge("etle_edge_sync_pending", "Tickets not yet at the central store", registry=r)
        self.sync_reachable = Gauge("etle_edge_sync_reachable", "1 when the last store-and-forward round reached the central store", registry=r)
        self.sync_last_success = Gauge("etle_edge_sync_last_success_timestamp_seconds", "Unix time of the last store-and-forward round that pushed everything", registry=r)
        self.sync_tickets = Counter("etle_edge_sync_tickets_pushed", "Tickets pushed to the central store", registry=r)
        self.clock_synchronized = Gauge("etle_edge_clock_synchronized", "1 when the kernel holds this box's clock synchronised (NTP/PTP)", registry=r)
        self._last: dict[tuple[str, str], tuple[int, float]] = {}
        self._lock = threading.Lock()

    def _advance(self, counter: Counter, camera: str, key: str, pid: int, value: float | None) -> None:
        """Grow ``counter`` by the change of a worker's cumulative ``value`` (reset on a new pid)."""
        if value is None:
            return
        last_pid, last = self._last.get((camera, key), (pid, 0.0))
        delta = value - last if last_pid == pid and value >= last else value
        self._last[(camera, key)] = (pid, float(value))
        if delta > 0:
            counter.labels(camera).inc(delta)

    def observe_stats(self, msg: dict[str, Any]) -> None:
        cam, pid = msg["camera"], int(msg.get("pid", 0))
        with self._lock:
            self._advance(self.frames, cam, "processed", pid, msg.get("processed"))
            self.fps.labels(cam).set(float(msg.get("fps") or 0.0))
            if msg.get("latency_s") is not None:
                self.latency.labels(cam).set(float(msg["latency_s"]))
                self.latency_max.labels(cam).set(float(msg.get("latency_max_s") or 0.0))
            evidence = msg.get("evidence") or {}
            self._advance(self.clips_omitted, cam, "clips_omitted", pid, evidence.get("clips_omitted"))
            self._advance(self.not_recorded, cam, "not_recorded", pid, evidence.get("not_recorded"))
            live = msg.get("live")
            if live:
                for key in _LIVE_COUNTERS:
                    self._advance(self.live_counters[key], cam, key, pid, live.get(key))
                self.input_fps.labels(cam).set(float(live.get("input_fps") or 0.0))
                self.queue_depth.labels(cam).set(int(live.get("queue_depth") or 0))
                self.queue_size.labels(cam).set(int(live.get("queue_size") or 0))
                self.connected.labels(cam).set(1 if live.get("connected") else 0)
                if live.get("last_frame_age_s") is not None:
                    self.last_frame_age.labels(cam).set(float(live["last_frame_age_s"]))

    def worker_state(self, camera: str, up: bool) -> None:
        self.worker_up.labels(camera).set(1 if up else 0)
        if not up:
            self.connected.labels(camera).set(0)

    def restarted(self, camera: str) -> None:
        self.restarts.labels(camera).inc()

    def ticket(self, camera: str, rule: str) -> None:
        self.tickets.labels(camera, rule).inc()

    def sinks(self, stats: dict[str, dict[str, Any]]) -> None:
        for sink, s in stats.items():
            self.events_pending.labels(sink).set(s.get("pending", 0))
            self.events_published.labels(sink).set(s.get("published", 0))
            self.events_dropped.labels(sink).set(s.get("dropped", 0))

    def disk(self, free_bytes: int) -> None:
        self.disk_free.set(free_bytes)

    def offloaded(self, tickets: int, nbytes: int) -> None:
        if tickets:
            self.offloaded_tickets.inc(tickets)
            self.offloaded_bytes.inc(nbytes)

    def sync(self, report: Any, last_success: float | None) -> None:
        """One store-and-forward round (:class:`etle.sync.SyncReport`)."""
        if report.pending >= 0:
            self.sync_pending.set(report.pending)
        self.sync_reachable.set(1 if report.reachable else 0)
        if last_success is not None:
            self.sync_last_success.set(last_success)
        if report.tickets_pushed:
            self.sync_tickets.inc(report.tickets_pushed)

    def clock(self, synchronized: bool | None) -> None:
        if synchronized is not None:
            self.clock_synchronized.set(1 if synchronized else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class HealthServer:
    """``GET /health`` (JSON from ``health()``; 200 when healthy, 503 otherwise) and ``GET /metrics``."""

    def __init__(self, host: str, port: int, *, health: Callable[[], dict[str, Any]], metrics: EdgeMetrics) -> None:
        get_health, get_metrics = health, metrics

        class Handler(BaseHTTPRequestHandler):
            server_version = "etle-edge"

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path = self.path.split("?", 1)[0].rstrip("/") or "/"
                try:
                    if path == "/health":
                        body = get_health()
                        data = json.dumps(body, default=str, indent=1).encode()
                        self._reply(200 if body.get("status") == "ok" else 503, "application/json", data)
                    elif path == "/metrics":
                        self._reply(200, CONTENT_TYPE_LATEST, get_metrics.render())
                    elif path == "/":
                        self._reply(200, "text/plain", b"etle edge: /health /metrics\n")
                    else:
                        self._reply(404, "text/plain", b"not found\n")
                except Exception:  # noqa: BLE001 - never let a probe kill the server thread
                    log.exception("health endpoint failed")
                    self._reply(500, "text/plain", b"internal error\n")

            def _reply(self, code: int, ctype: str, data: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug("health: " + fmt, *args)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="edge-health", daemon=True)

    def start(self) -> "HealthServer":
        self._thread.start()
        log.info("health and metrics on http://%s:%d/health and /metrics", self.host, self.port)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
