"""``etle edge``'s supervisor: isolated camera workers, restarts, health and metrics, events,
graceful stop.  Workers run fake pipelines (tests.edge_fakes) on in-process HTTP streams of a
tiny clip, so this stays cheap; the real-model runs are in test_edge_real.py (slow)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from etle.edge.site import CameraEntry, HealthConfig, LiveOptions, MqttConfig, RestartPolicy, SiteConfig
from etle.edge.supervisor import Supervisor
from tests.live_helpers import TsHttpServer, make_ts_clip, shared_broker, Subscriber

REPO = Path(__file__).resolve().parents[1]
FAKE = "tests.edge_fakes:fake_pipeline"


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_ts_clip(tmp_path_factory.mktemp("edge") / "clip.ts", seconds=2.0, fps=10)


def make_site(tmp_path: Path, urls: dict[str, str], **kw) -> SiteConfig:
    return SiteConfig(
        site="test-site", output_dir=tmp_path / "out",
        cameras=[CameraEntry(camera=Path("unused.yaml"), source=u, id=cid) for cid, u in urls.items()],
        camera_ids=tuple(urls),
        health=HealthConfig(port=0, stale_after_s=3),
        live=LiveOptions(open_timeout_s=3, read_timeout_s=1.5, stall_timeout_s=1.5, backoff_initial_s=0.1, backoff_max_s=0.5),
        restart=RestartPolicy(initial_s=0.2, max_s=1),
        shutdown_timeout_s=10,
        **kw,
    )


class Running:
    """A supervisor run in a thread, with helpers to read /health."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.result = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while sup.health_server is None and time.monotonic() < deadline:
            time.sleep(0.02)

    def _run(self) -> None:
        self.result = self.sup.run()

    def health(self) -> dict:
        url = f"http://127.0.0.1:{self.sup.health_server.port}/health"
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:  # 503 while degraded, with the same JSON
            return json.load(e)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.sup.health_server.port}/metrics", timeout=5) as r:
            return r.read().decode()

    def wait(self, cond, timeout: float = 20.0, what: str = "") -> dict:
        deadline = time.monotonic() + timeout
        while True:
            h = self.health()
            if cond(h):
                return h
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {json.dumps(h['cameras'], indent=1)}")
            time.sleep(0.2)

    def stop(self):
        self.sup.request_stop()
        self.thread.join(30)
        assert not self.thread.is_alive()
        return self.result


def test_cameras_are_isolated_restarted_and_reconnected(tmp_path: Path, clip: Path) -> None:
    """cam-a's worker crashes once (restarted), then its stream is cut (cam-b carries on) and
    restored (cam-a reconnects); every ticket reaches the supervisor; the stop is graceful."""
    a = TsHttpServer(clip, seconds=2.0).start()
    b = TsHttpServer(clip, seconds=2.0).start()
    marker = tmp_path / "crashed"
    site = make_site(tmp_path, {"cam-a": a.url, "cam-b": b.url})
    sup = Supervisor(site, factory=FAKE, stats_interval_s=0.3, pipeline_overrides={
        "ticket_every_s": 0.5, "crash_after_frames": 5, "crash_once_marker": str(marker), "crash_camera": "cam-a"})
    run = Running(sup)
    try:
        h = run.wait(lambda h: h["cameras"]["cam-a"]["restarts"] == 1
                     and all(c["connected"] and (c["frames_processed"] or 0) > 3 for c in h["cameras"].values()),
                     what="cam-a restarted and both cameras running")
        assert h["status"] == "ok" and marker.exists() and h["cameras"]["cam-b"]["restarts"] == 0
        a.cut()  # camera A's stream dies
        h = run.wait(lambda h: not h["cameras"]["cam-a"]["connected"], what="cam-a down")
        b_before = h["cameras"]["cam-b"]["frames_processed"]
        h = run.wait(lambda h: h["cameras"]["cam-b"]["frames_processed"] >= b_before + 10, what="cam-b carrying on")
        assert h["status"] == "degraded" and h["cameras"]["cam-b"]["ok"] and h["cameras"]["cam-a"]["alive"]
        a.restore()
        h = run.wait(lambda h: h["cameras"]["cam-a"]["connected"] and h["cameras"]["cam-a"]["reconnects"] >= 1,
                     what="cam-a reconnected")
        metrics = run.metrics()
        assert 'etle_edge_reconnects_total{camera="cam-a"} 1.0' in metrics
        assert 'etle_edge_worker_restarts_total{camera="cam-a"} 1.0' in metrics
        assert 'etle_edge_frames_processed_total{camera="cam-b"}' in metrics
        assert 'etle_edge_worker_up{camera="cam-a"} 1.0' in metrics
        for name in ("etle_edge_fps", "etle_edge_frames_dropped_total", "etle_edge_latency_seconds", "etle_edge_queue_depth",
                     "etle_edge_tickets_total", "etle_edge_last_frame_age_seconds"):
            assert name in metrics
        assert h["cameras"]["cam-a"]["restarts"] == 1  # the stream outage was not a worker crash
    finally:
        result = run.stop()
        a.stop()
        b.stop()
    # graceful stop: every ticket the (last) workers recorded reached the supervisor
    for cid in ("cam-a", "cam-b"):
        ids = [e["ticket_id"] for e in result.events if e["camera"] == cid]
        assert ids and ids[-len(set(ids)):] == sorted(ids[-len(set(ids)):])
        assert result.cameras[cid]["exit_code"] == 0
    b_ids = [e["ticket_id"] for e in result.events if e["camera"] == "cam-b"]
    assert b_ids == list(range(1, len(b_ids) + 1)) and result.cameras["cam-b"]["worker_tickets"] == len(b_ids)
    assert result.tickets == len(result.events)


def test_a_worker_that_cannot_start_is_retried_with_backoff(tmp_path: Path, clip: Path) -> None:
    site = make_site(tmp_path, {"broken": "http://127.0.0.1:9/x"})
    run = Running(Supervisor(site, factory="tests.edge_fakes:failing_factory", stats_interval_s=0.3))
    try:
        h = run.wait(lambda h: h["cameras"]["broken"]["restarts"] >= 2, what="retries")
        assert "model file missing" in (h["cameras"]["broken"]["last_error"] or "")
        assert h["status"] == "degraded"
    finally:
        run.stop()


def test_events_reach_mqtt(tmp_path: Path, clip: Path) -> None:
    host, port = shared_broker()
    srv = TsHttpServer(clip, seconds=2.0).start()
    topic = f"etle-test-{time.time_ns()}"
    sub = Subscriber(host, port, f"{topic}/#")
    site = make_site(tmp_path, {"cam-m": srv.url}, mqtt=MqttConfig(host=host, port=port, topic=topic + "/{site}/{camera}"))
    run = Running(Supervisor(site, factory=FAKE, pipeline_overrides={"ticket_every_s": 0.5}, stats_interval_s=0.3))
    try:
        run.wait(lambda h: h["cameras"]["cam-m"]["tickets"] >= 2, what="tickets")
    finally:
        result = run.stop()
        srv.stop()
    msgs = sub.wait_for(result.tickets, timeout=5)
    sub.close()
    assert len(msgs) == result.tickets and msgs[0]["topic"] == f"{topic}/test-site/cam-m"
    assert {m["event_id"] for m in msgs} == {e["event_id"] for e in result.events}
    assert result.publishers["mqtt"]["pending"] == 0


def test_cli_check_lists_the_cameras() -> None:
    from etle.commands.edge_cmds import register

    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    res = CliRunner().invoke(app, ["edge", "--site", str(REPO / "examples" / "site.yaml"), "--check"])
    assert res.exit_code == 0, res.output
    assert "sample-parking" in res.output and "mqtt" in res.output
