"""``etle edge``'s supervisor: isolated camera workers, restarts, health and metrics, events,
graceful stop.  Workers run fake pipelines (tests.fixtures.edge_fakes) on in-process HTTP streams of a
tiny clip, so this stays cheap; the real-model runs are in test_edge_real.py (slow)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from etle.edge.site import CameraEntry, HealthConfig, LiveOptions, MqttConfig, RestartPolicy, SiteConfig
from etle.edge.supervisor import Supervisor
from tests.fixtures.live_helpers import Running, Subscriber, TsHttpServer, broker_or_none, make_ts_clip

REPO = Path(__file__).resolve().parents[2]
FAKE = "tests.fixtures.edge_fakes:fake_pipeline"


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_ts_clip(tmp_path_factory.mktemp("edge") / "clip.ts", seconds=2.0, fps=10)


def make_site(tmp_path: Path, urls: dict[str, str], **kw) -> SiteConfig:
    return SiteConfig(
        site="test-site", output_dir=tmp_path / "out",
        cameras=[CameraEntry(camera=Path("unused.yaml"), source=u, id=cid, options={"probesize": "4096", "analyzeduration": "200000"})
                 for cid, u in urls.items()],
        camera_ids=tuple(urls),
        health=HealthConfig(port=0, stale_after_s=3),
        live=LiveOptions(open_timeout_s=3, read_timeout_s=1.5, stall_timeout_s=1.5, backoff_initial_s=0.1, backoff_max_s=0.5),
        restart=RestartPolicy(initial_s=0.2, max_s=1),
        shutdown_timeout_s=10,
        **kw,
    )


def metric(text: str, name: str) -> float:
    """The value of one sample in a Prometheus text exposition."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


def test_cameras_are_isolated_restarted_and_reconnected(tmp_path: Path, clip: Path) -> None:
    """cam-a's worker crashes once (restarted), then its stream is cut (cam-b carries on) and
    restored (cam-a reconnects); a third camera cannot start at all (retried with backoff, the
    others unaffected); every ticket reaches the supervisor and MQTT; the stop is graceful."""
    broker = broker_or_none()
    topic = f"etle-test-{time.time_ns()}"
    sub = Subscriber(*broker, f"{topic}/#") if broker else None
    a = TsHttpServer(clip, seconds=2.0).start()
    b = TsHttpServer(clip, seconds=2.0).start()
    marker = tmp_path / "crashed"
    site = make_site(tmp_path, {"cam-a": a.url, "cam-b": b.url, "broken": "http://127.0.0.1:9/x"},
                     mqtt=MqttConfig(host=broker[0], port=broker[1], topic=topic + "/{site}/{camera}") if broker else None)
    sup = Supervisor(site, factory=FAKE, stats_interval_s=0.3, pipeline_overrides={
        "ticket_every_s": 0.5, "crash_after_frames": 5, "crash_once_marker": str(marker), "crash_camera": "cam-a",
        "fail_camera": "broken"})
    run = Running(sup)
    try:
        running = ("cam-a", "cam-b")
        h = run.wait(lambda h: h["cameras"]["cam-a"]["restarts"] == 1
                     and all(h["cameras"][c]["connected"] and (h["cameras"][c]["frames_processed"] or 0) > 3 for c in running),
                     what="cam-a restarted and both cameras running")
        assert marker.exists() and h["cameras"]["cam-b"]["restarts"] == 0
        assert h["status"] == "degraded" and h["cameras"]["cam-a"]["ok"] and h["cameras"]["cam-b"]["ok"]
        assert h["cameras"]["broken"]["restarts"] >= 1 and "model file missing" in (h["cameras"]["broken"]["last_error"] or "")
        a.cut()  # camera A's stream dies
        h = run.wait(lambda h: not h["cameras"]["cam-a"]["connected"], what="cam-a down")
        b_before = h["cameras"]["cam-b"]["frames_processed"]
        h = run.wait(lambda h: h["cameras"]["cam-b"]["frames_processed"] >= b_before + 10, what="cam-b carrying on")
        assert h["cameras"]["cam-b"]["ok"] and h["cameras"]["cam-a"]["alive"] and not h["cameras"]["cam-a"]["ok"]
        a.restore()
        h = run.wait(lambda h: h["cameras"]["cam-a"]["connected"] and h["cameras"]["cam-a"]["reconnects"] >= 1,
                     what="cam-a reconnected")
        metrics = run.metrics()
        assert metric(metrics, 'etle_edge_reconnects_total{camera="cam-a"}') >= 1
        assert metric(metrics, 'etle_edge_worker_restarts_total{camera="cam-a"}') == 1
        assert metric(metrics, 'etle_edge_frames_processed_total{camera="cam-b"}') > 10
        assert metric(metrics, 'etle_edge_worker_up{camera="cam-a"}') == 1
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
    assert result.tickets == len(result.events) and result.cameras["broken"]["restarts"] >= 2
    if sub is None:
        return
    msgs = sub.wait_for(result.tickets, timeout=5)
    sub.close()
    assert len(msgs) == result.tickets and {m["topic"] for m in msgs} == {f"{topic}/test-site/cam-a", f"{topic}/test-site/cam-b"}
    assert {m["event_id"] for m in msgs} == {e["event_id"] for e in result.events}
    assert result.publishers["mqtt"]["pending"] == 0


def test_watchdog_kills_a_stuck_worker(tmp_path: Path) -> None:

    class Proc:
        killed = 0

        def is_alive(self) -> bool:
            return True

        def kill(self) -> None:
            self.killed += 1

    site = make_site(tmp_path, {"cam": "http://127.0.0.1:9/x"}).model_copy(
        update={"restart": RestartPolicy(initial_s=0.2, max_s=1, watchdog_s=5)})
    sup = Supervisor(site, factory=FAKE)
    w = sup._workers["cam"]
    w.process, w.started_at = Proc(), time.monotonic()
    live = {"connected": True, "queue_depth": 8}
    w.last_stats, w.last_stats_at = {"live": live, "processed_age_s": 1.0}, time.monotonic()
    sup._watchdog(w)
    assert w.process.killed == 0  # busy but fine
    w.last_stats = {"live": live, "processed_age_s": 6.0}
    sup._watchdog(w)
    assert w.process.killed == 1  # frames wait, nothing processed for 6 s
    w.last_stats = {"live": {"connected": False, "queue_depth": 0}, "processed_age_s": 60.0}
    w.last_stats_at = time.monotonic()
    sup._watchdog(w)
    assert w.process.killed == 1  # the stream is down: nothing to process, not stuck
    w.last_stats_at = time.monotonic() - 6.0
    sup._watchdog(w)
    assert w.process.killed == 2  # no report at all for 6 s


def test_cli_check_lists_the_cameras() -> None:
    from etle.commands.edge_cmds import register

    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    res = CliRunner().invoke(app, ["edge", "--site", str(REPO / "examples" / "site.yaml"), "--check"])
    assert res.exit_code == 0, res.output
    assert "sample-parking" in res.output and "mqtt" in res.output
    assert "offload synced media below 2 GB free (to 4 GB)" in res.output and "no evidence below 0.25 GB" in res.output
