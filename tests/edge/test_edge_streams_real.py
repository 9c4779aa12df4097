"""Acceptance of issue 7 (live part) on real streams served by FFmpeg (Debian package 'ffmpeg').

* 20 cuts and stalls of a live HTTP stream of the bundled clip (served at twice its rate): the
  camera worker sees every stall as one, reconnects every time, never crashes, keeps its
  memory, descriptors and threads flat, and every ticket it recorded reaches the supervisor
  (and MQTT when the broker runs);
* ``etle edge`` with two cameras and the real models (one run, which both of the last two
  tests check): camera 1's stream is cut and comes back, and the red-light ticket of the clip is
  still recorded, once; camera 2's stream is killed for good; SIGTERM to the whole process group
  stops everything gracefully (exit 0).

All slow: they run in real time.  Skipped without ffmpeg or the models unless
ETLE_REQUIRE_SERVICES=1 / ETLE_REQUIRE_MODELS=1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from etle.edge.site import CameraEntry, HealthConfig, LiveOptions, MqttConfig, RestartPolicy, SiteConfig
from etle.edge.supervisor import Supervisor
from tests.conftest import require_model
from tests.fixtures.live_helpers import FfmpegHttpStream, Running, Subscriber, broker_or_none, free_port, listening

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CLIP = REPO / "sample_videos" / "intel_car_detection_parking.mp4"
# What these tests are about is the stream (cuts, restarts, shutdown), not the int8 model's recall:
# on this project's CI machine the int8 detector no longer sees the sample's red-light car (a
# top-down car the COCO model finds at 0.2-0.6; docs/accuracy.md), so the workers run the float one.
EDGE_DETECTOR = "vehicle-detector"
CAMERA = REPO / "examples" / "cameras" / "intel_car_detection_parking.yaml"


def proc_usage(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return {"rss_kb": rss, "fds": len(os.listdir(f"/proc/{pid}/fd")), "threads": len(os.listdir(f"/proc/{pid}/task"))}


def live_site(tmp_path: Path, cameras: list[CameraEntry], ids: tuple[str, ...], **kw) -> SiteConfig:
    return SiteConfig(
        site="accept", output_dir=tmp_path / "out", db_url=f"sqlite:///{tmp_path / 'etle.db'}",
        cameras=cameras, camera_ids=ids, health=HealthConfig(port=0, stale_after_s=5),
        live=LiveOptions(open_timeout_s=5, read_timeout_s=2, stall_timeout_s=2, backoff_initial_s=0.2, backoff_max_s=1.0),
        restart=RestartPolicy(initial_s=0.5, max_s=2), shutdown_timeout_s=30, **kw,
    )


def test_twenty_cuts_and_stalls_without_crash_leak_or_lost_ticket(tmp_path: Path) -> None:
    # served at twice its frame rate: the worker needs a second or two of stream to open it and
    # give 12 fresh frames after each reconnect; what is checked (reconnects, stalls, leaks, every
    # ticket delivered) does not depend on the rate
    stream = FfmpegHttpStream(CLIP, loop=True, rate=2.0).start()
    broker = broker_or_none()
    topic = f"etle-accept-{time.time_ns()}"
    sub = Subscriber(*broker, f"{topic}/#") if broker else None
    mqtt = MqttConfig(host=broker[0], port=broker[1], topic=topic + "/{camera}") if broker else None
    site = live_site(tmp_path, [CameraEntry(camera=CAMERA, source=stream.url, id="cam")], ("cam",), mqtt=mqtt)
    run = Running(Supervisor(site, factory="tests.fixtures.edge_fakes:fake_pipeline", stats_interval_s=0.25,
                             pipeline_overrides={"ticket_every_s": 1.0}))
    usage: list[dict[str, int]] = []
    cycles = 20
    try:
        for cycle in range(cycles + 1):
            # the stream runs: wait for it to be (re)connected and to give fresh frames
            h = run.wait(lambda h: h["cameras"]["cam"]["connected"] and (h["cameras"]["cam"]["reconnects"] or 0) >= cycle,
                         timeout=30, what=f"reconnect {cycle}")
            seen = h["cameras"]["cam"]["frames_processed"] or 0
            run.wait(lambda h: (h["cameras"]["cam"]["frames_processed"] or 0) >= seen + 12, timeout=15, what=f"frames {cycle}")
            usage.append(proc_usage(run.sup.pid_of("cam")))
            if cycle == cycles:
                break
            if cycle % 4 == 3:  # a stall: the server hangs (SIGSTOP: no exit, the connection stays
                # open, nothing comes) until the worker gives up on it (read timeout), then dies
                stalls = run.health()["cameras"]["cam"]["stalls"] or 0
                stream.proc.send_signal(signal.SIGSTOP)
                run.wait(lambda h: (h["cameras"]["cam"]["stalls"] or 0) > stalls, timeout=15, what=f"stall {cycle} seen")
                stream.cut()
            else:
                stream.cut()
            time.sleep(0.3)
            stream.start()
        h = run.health()
        cam = h["cameras"]["cam"]
        assert cam["restarts"] == 0 and cam["alive"], cam  # never crashed
        assert cam["reconnects"] >= cycles
        assert cam["stalls"] >= len(range(3, cycles, 4))  # every stall was seen as one
    finally:
        result = run.stop()
        stream.stop()
    cam = result.cameras["cam"]
    assert cam["restarts"] == 0 and cam["exit_code"] == 0
    assert cam["worker_tickets"] == cam["tickets"] == result.tickets > 10, cam  # no ticket lost on the way
    first, last = usage[1], usage[-1]  # after the first reconnect: warm
    print(f"\n20 cycles: reconnects={cycles}, tickets={result.tickets}, worker rss {first['rss_kb'] / 1024:.1f} -> "
          f"{last['rss_kb'] / 1024:.1f} MiB, fds {first['fds']} -> {last['fds']}, threads {first['threads']} -> {last['threads']}")
    assert last["fds"] <= first["fds"] + 2 and last["threads"] <= first["threads"] + 2
    assert last["rss_kb"] - first["rss_kb"] < 40 * 1024
    if sub is not None:
        msgs = sub.wait_for(result.tickets, timeout=10)
        sub.close()
        assert sorted(m["event_id"] for m in msgs) == sorted(e["event_id"] for e in result.events)


SPEED = 0.5  # the clip is played at half speed (a camera of half the frame rate with a signal
# plan twice as long), so that the ticket does not depend on a busy 2-core CI box keeping up


def slow_camera(tmp_path: Path) -> Path:
    """The sample camera file with the signal plan stretched to the half-speed playback."""
    text = CAMERA.read_text()
    text = text.replace("{state: green, duration_s: 10}", "{state: green, duration_s: 20}")
    text = text.replace("{state: red, duration_s: 20}", "{state: red, duration_s: 40}")
    # a busy box can pause a worker for more than the default 1 s between two processed frames
    text = text.replace("red_light: {line: stop_line, grace_s: 1.0}", "red_light: {line: stop_line, grace_s: 1.0, max_gap_s: 3.0}")
    assert "max_gap_s: 3.0" in text and "duration_s: 40" in text
    path = tmp_path / "parking-half-speed.yaml"
    path.write_text(text)
    return path


class LiveCamera:
    """The clip as a live camera: a cut loses what happens during the outage (playback resumes
    at the clip position of the wall clock; re-encoded, so the position is exact)."""

    def __init__(self, clip: Path, speed: float = SPEED) -> None:
        self.stream = FfmpegHttpStream(clip)  # for the port, url and the skip without ffmpeg
        self.clip = clip
        self.speed = speed
        self.t0: float | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.stream.url

    def start(self) -> None:
        at = 0.0 if self.t0 is None else (time.monotonic() - self.t0) * self.speed
        cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-readrate", f"{self.speed}", "-ss", f"{at:.2f}",
               "-i", str(self.clip),
               "-an", "-vf", f"setpts=PTS/{self.speed}", "-vsync", "passthrough", "-c:v", "libx264", "-preset", "ultrafast",
               "-tune", "zerolatency", "-crf", "12", "-g", "6", "-f", "mpegts", "-listen", "1", self.url]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not listening(self.stream.port):
            time.sleep(0.05)

    def cut(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None


def _health(port: int) -> dict | None:
    """The /health JSON of ``etle edge`` on this port (503 while degraded, with the same JSON);
    None while it does not answer yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)
    except OSError:
        return None


def _wait_health(port: int, proc: subprocess.Popen, cond, timeout: float, what: str) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        h = _health(port)
        if h is not None and cond(h["cameras"]):
            return h
        if proc.poll() is not None or time.monotonic() > deadline:
            why = f"etle edge exited ({proc.returncode})" if proc.returncode is not None else "timed out"
            raise AssertionError(f"{why} waiting for {what}: {json.dumps(h and h['cameras'], indent=1)}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def edge_run(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> SimpleNamespace:
    """One ``etle edge`` run of two cameras, each on a live stream of the clip, with the real
    models (what both tests below check; it runs in real time, so it runs once):

    * camera 1's stream is cut at ~4 s of the clip (green) and comes back 2 s later at ~5 s, like
      a live camera (what the outage showed is lost); its red-light car (~15.8 s) must still be
      ticketed, once, by the same worker (no restart);
    * camera 2's stream is killed for good soon after it played;
    * then SIGTERM to the whole process group (like systemd): every process stops gracefully;
    * where PostgreSQL runs, the site pushes its tickets and evidence to it as the central store.
    """
    require_model("vehicle-detector")
    tmp_path = tmp_path_factory.mktemp("edge-two-cameras")
    cam1, cam2 = LiveCamera(CLIP), LiveCamera(CLIP)
    cam1.start()
    cam2.start()
    camera = slow_camera(tmp_path)
    port = free_port()
    try:  # the central store: a fresh PostgreSQL database (the sync test skips, or fails in CI, without one)
        central_db = request.getfixturevalue("postgres_databases").create()
    except pytest.skip.Exception:
        central_db = None
    central_ev = tmp_path / "central-ev"
    sync = f"sync: {{central_db: '{central_db}', central_evidence: '{central_ev}', interval_s: 2}}\n" if central_db else ""
    site_file = tmp_path / "site.yaml"
    site_file.write_text(
        f"site: two-cams\noutput_dir: {tmp_path / 'out'}\ndb_url: sqlite:///{tmp_path / 'etle.db'}\n"
        f"cameras:\n  - {{camera: {camera}, source: '{cam1.url}', id: cam-1}}\n"
        f"  - {{camera: {camera}, source: '{cam2.url}', id: cam-2}}\n"
        f"pipeline: {{read_plates: false, detector: {EDGE_DETECTOR}}}\n"
        "live: {open_timeout_s: 5, read_timeout_s: 2, stall_timeout_s: 2, backoff_initial_s: 0.2, backoff_max_s: 1}\n"
        f"health: {{host: 127.0.0.1, port: {port}}}\nshutdown_timeout_s: 30\n" + sync
    )
    report = tmp_path / "report.json"
    code = ("import typer; from etle.commands.edge_cmds import register; app = typer.Typer(); "
            "app.callback()(lambda: None); register(app); app()")
    proc = subprocess.Popen([sys.executable, "-c", code, "edge", "--site", str(site_file), "--report", str(report)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_health(port, proc, lambda c: c["cam-1"]["connected"] and c["cam-2"]["connected"], timeout=90,
                     what="both cameras connected (models loaded)")
        cam1.t0 = time.monotonic() - 0.5  # the clip started playing when the worker connected
        time.sleep(8.0)
        cam1.cut()  # at ~4 s of the clip (green): the outage
        time.sleep(2.0)
        cam1.start()  # resumes at ~5 s of the clip, like a live camera
        cam2.cut()  # camera 2's stream is killed for good
        _wait_health(port, proc, lambda c: c["cam-1"]["tickets"] >= 1, timeout=60,
                     what="camera 1's red-light ticket (~15.8 s of the clip)")
        time.sleep(4.0)  # no second ticket
        health = _health(port)
        os.killpg(proc.pid, signal.SIGTERM)  # like systemd: every process of the unit
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        cam1.cut()
        cam2.cut()
    text = out.decode(errors="replace")
    rep = json.loads(report.read_text()) if report.is_file() else {}
    return SimpleNamespace(returncode=proc.returncode, output=text, report=rep, health=health,
                           db_url=f"sqlite:///{tmp_path / 'etle.db'}", central_db=central_db, central_ev=central_ev)


def test_real_models_ticket_survives_a_cut(edge_run: SimpleNamespace) -> None:
    h = edge_run.health["cameras"]["cam-1"]
    assert h["reconnects"] >= 1 and h["restarts"] == 0, (h, edge_run.output[-4000:])
    rep = edge_run.report
    assert rep, edge_run.output[-3000:]
    assert rep["tickets"] == 1 and rep["events"][0]["rule"] == "red_light", rep["events"]
    ev = rep["events"][0]
    assert ev["camera"] == "cam-1" and (Path(ev["evidence"]) / "manifest.json").is_file()
    from etle.store import open_store

    store = open_store(edge_run.db_url)
    assert store.count() == 1
    print(f"\nreal models: 1 ticket after {h['reconnects']} reconnect(s), "
          f"at pts {ev['pts']} s, fps {h['fps']}, dropped {h['frames_dropped']}")


def test_etle_edge_two_cameras_one_killed_then_sigterm(edge_run: SimpleNamespace) -> None:
    text = edge_run.output
    assert edge_run.returncode == 0, text[-3000:]
    cams = edge_run.report["cameras"]
    print(f"\netle edge two cameras: cam-1 tickets {cams['cam-1']['tickets']}, cam-2 tickets {cams['cam-2']['tickets']}, "
          f"cam-2 last error: {cams['cam-2']['last_stats'].get('live', {}).get('last_error')}")
    assert cams["cam-1"]["tickets"] == 1, text[-3000:]
    assert cams["cam-1"]["restarts"] == 0 and cams["cam-2"]["restarts"] == 0, text[-4000:]
    assert cams["cam-2"]["last_stats"]["live"]["connect_failures"] >= 1
    assert cams["cam-1"]["exit_code"] == 0 and cams["cam-2"]["exit_code"] == 0


def test_the_ticket_reaches_the_central_store(edge_run: SimpleNamespace, request: pytest.FixtureRequest) -> None:
    """The site's own store-and-forward: camera 1's ticket, its evidence and audit log are in the
    central PostgreSQL database and evidence folder, whole (etle verify there), marked synced here;
    and the box's report of its cameras is there too."""
    if edge_run.central_db is None:
        request.getfixturevalue("postgres_databases")  # skips with the reason, or fails in CI
    from etle.evidence.storage import LocalEvidenceStorage
    from etle.evidence.verify import verify_evidence
    from etle.store import open_store

    sync = edge_run.health["sync"]
    assert sync["enabled"] and sync["reachable"], (sync, edge_run.output[-3000:])
    with open_store(edge_run.db_url) as local, open_store(edge_run.central_db) as central:
        here = local.list()
        there = central.list()
        assert [t.uid for t in there] == [t.uid for t in here] and len(here) == 1, edge_run.output[-3000:]
        assert here[0].synced_at is not None and there[0].rule == "red_light"
        assert (edge_run.central_ev / there[0].evidence_key / "clip.mp4").is_file()
        assert len(central.actions(there[0].id)) == len(local.actions(here[0].id)) >= 1
        report = verify_evidence(LocalEvidenceStorage(edge_run.central_ev), store=central, require_signatures=False)
        (site,) = central.site_statuses()  # the box's last report, for the review app's /sites
    assert report.ok and report.tickets == 1, [f.line() for f in report.findings]
    assert site.site == "two-cams" and set(site.data["cameras"]) == {"cam-1", "cam-2"}
    assert site.data["cameras"]["cam-1"]["tickets"] == 1 and site.data["pending"] == 0
