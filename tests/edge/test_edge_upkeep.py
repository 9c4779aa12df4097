"""``etle edge``'s upkeep: store-and-forward to the central store and the disk (etle.edge.upkeep,
etle.evidence.space).  Camera workers run a fake detector whose violations go through ``etle run``'s
real evidence sink, so tickets, bundles, sync and offloading are real; free-space floors far above
any disk stand for a disk that is low, so the workers' own disk readings decide, unmocked."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from etle.edge.site import (
    CameraEntry,
    HealthConfig,
    LiveOptions,
    RestartPolicy,
    SiteConfig,
    SiteConfigError,
    StorageConfig,
    SyncConfig,
    load_site,
)
from etle.clock.system import system_clock_synchronized
from etle.edge.supervisor import Supervisor
from etle.edge.upkeep import sync_target
from etle.errors import StoreError
from etle.evidence.space import SpacePolicy, out_of_space
from etle.evidence.storage import LocalEvidenceStorage
from etle.evidence.verify import verify_evidence
from etle.store import TicketStore
from tests.fixtures.live_helpers import Running, TsHttpServer, make_ts_clip

RECORDING = "tests.fixtures.edge_fakes:recording_pipeline"
HUGE = 1e6  # GB: a floor above any disk, so every disk is "low"


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_ts_clip(tmp_path_factory.mktemp("upkeep") / "clip.ts", seconds=2.0, fps=10)


def make_site(tmp_path: Path, url: str, **kw) -> SiteConfig:
    return SiteConfig(
        site="upkeep", output_dir=tmp_path / "out", db_url=f"sqlite:///{tmp_path / 'edge.db'}",
        cameras=[CameraEntry(camera=Path("unused.yaml"), source=url, id="cam",
                             options={"probesize": "4096", "analyzeduration": "200000"})],
        camera_ids=("cam",), health=HealthConfig(port=0, stale_after_s=3),
        live=LiveOptions(open_timeout_s=3, read_timeout_s=1.5, stall_timeout_s=1.5, backoff_initial_s=0.1, backoff_max_s=0.5),
        restart=RestartPolicy(initial_s=0.2, max_s=1), shutdown_timeout_s=10, **kw,
    )


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


def edge_status(tmp_path: Path, port: int):
    """``etle edge --site FILE --status`` against the health port of a running supervisor."""
    import typer
    from typer.testing import CliRunner

    from etle.commands.edge_cmds import register

    camera = Path(__file__).resolve().parents[2] / "examples" / "cameras" / "intel_car_detection_parking.yaml"
    site_file = tmp_path / "status-site.yaml"
    site_file.write_text(f"cameras:\n  - {{camera: {camera}, source: 'rtsp://10.0.0.2/s'}}\n"
                         f"health: {{host: 0.0.0.0, port: {port}}}\n")
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    return CliRunner().invoke(app, ["edge", "--site", str(site_file), "--status"])


def tickets(db: Path) -> list:
    with TicketStore(f"sqlite:///{db}", create=False) as store:
        return sorted(store.list(), key=lambda t: t.id)


def verify(evidence: Path, db: Path):
    with TicketStore(f"sqlite:///{db}", create=False) as store:
        return verify_evidence(LocalEvidenceStorage(evidence), store=store, require_signatures=False)


def test_tickets_reach_the_central_store_and_synced_media_make_room(tmp_path: Path, clip: Path) -> None:
    """Every ticket goes to the central store while the site runs; with the disk "low", the media of
    synced tickets are removed here (never an unsynced one's); both stores verify."""
    server = TsHttpServer(clip, seconds=2.0).start()
    central_db, central_ev = tmp_path / "central.db", tmp_path / "central-ev"
    site = make_site(tmp_path, server.url,
                     sync=SyncConfig(central_db=f"sqlite:///{central_db}", central_evidence=str(central_ev), interval_s=0.3),
                     storage=StorageConfig(offload_below_gb=HUGE, offload_to_gb=HUGE, clips_below_gb=0, reserve_gb=0,
                                           check_interval_s=0.3))
    run = Running(Supervisor(site, factory=RECORDING, stats_interval_s=0.3, pipeline_overrides={"ticket_every_s": 0.5}))
    try:
        h = run.wait(lambda h: (h["sync"]["tickets_pushed"] or 0) >= 2 and h["storage"]["offloaded_tickets"] >= 2,
                     what="tickets synced and offloaded")
        assert h["sync"]["enabled"] and h["sync"]["reachable"] and h["sync"]["last_success_age_s"] is not None
        assert h["storage"]["state"] == "low" and h["storage"]["free_gb"] > 0
        assert h["clock"] == {"synchronized": system_clock_synchronized()}
        metrics = run.metrics()
        assert metric(metrics, "etle_edge_sync_tickets_pushed_total") >= 2
        assert metric(metrics, "etle_edge_sync_reachable") == 1
        assert metric(metrics, "etle_edge_offloaded_tickets_total") >= 2
        assert metric(metrics, "etle_edge_offloaded_bytes_total") > 0
        assert metric(metrics, "etle_edge_disk_free_bytes") > 0
        res = edge_status(tmp_path, run.sup.health_server.port)
        assert res.exit_code == 0, res.output  # ok: the low disk is being handled
        assert "disk:" in res.output and "(low)" in res.output and "reachable" in res.output and "pending" in res.output
        assert "cam" in res.output and ("clock: NOT" in res.output) == (system_clock_synchronized() is False)
    finally:
        result = run.stop()
        server.stop()
    res = edge_status(tmp_path, run.sup.health_server.port)  # stopped: one line, no traceback
    assert res.exit_code != 0 and "no etle edge answers" in str(res.exception) and "\n" not in str(res.exception)
    local = tickets(tmp_path / "edge.db")
    assert len(local) == result.tickets >= 2
    assert all(t.synced_at is not None for t in local)  # the last ones pushed on the way out
    offloaded = [t for t in local if t.offloaded_at is not None]
    assert len(offloaded) >= 2
    for t in offloaded:
        here = {p.name for p in (site.output_dir / t.evidence_key).iterdir()}
        assert "clip.mp4" not in here and {"manifest.json", "offloaded.json"} <= here
        assert (central_ev / t.evidence_key / "clip.mp4").is_file()  # the central copy is whole
    report = verify(site.output_dir, tmp_path / "edge.db")
    assert report.ok and report.offloaded_files >= 2 * 4, [f.line() for f in report.findings]
    with TicketStore(f"sqlite:///{central_db}", create=False) as store:  # the box's last report
        (report_row,) = store.site_statuses()
    assert report_row.site == "upkeep" and report_row.data["cameras"]["cam"]["tickets"] >= 1
    assert report_row.data["pending"] == 0 and report_row.data["storage"]["state"] == "low"
    assert report_row.data["clock"] == {"synchronized": system_clock_synchronized()}
    central = verify(central_ev, central_db)
    assert central.ok and central.offloaded_files == 0 and central.tickets == len(local), [f.line() for f in central.findings]


def test_a_low_disk_leaves_clips_out_then_records_nothing_and_the_worker_lives_on(tmp_path: Path, clip: Path) -> None:
    server = TsHttpServer(clip, seconds=2.0).start()
    low = make_site(tmp_path / "low", server.url,
                    storage=StorageConfig(offload_below_gb=HUGE, offload_to_gb=HUGE, clips_below_gb=HUGE, reserve_gb=0,
                                          check_interval_s=0.3))
    run = Running(Supervisor(low, factory=RECORDING, stats_interval_s=0.3, pipeline_overrides={"ticket_every_s": 0.5}))
    try:
        h = run.wait(lambda h: h["cameras"]["cam"]["tickets"] >= 2, what="tickets without clips")
        assert h["status"] == "degraded" and h["storage"]["state"] == "no_clips" and h["cameras"]["cam"]["ok"]
        assert h["sync"] == {"enabled": False} and h["storage"]["offloaded_tickets"] == 0  # nowhere to offload to
        run.wait(lambda h: "etle_edge_clips_omitted_total{camera=\"cam\"}" in run.metrics()
                 and metric(run.metrics(), 'etle_edge_clips_omitted_total{camera="cam"}') >= 2, what="clips counted")
    finally:
        result = run.stop()
    assert result.events and all(e["clip"] is False for e in result.events)
    for t in tickets(tmp_path / "low" / "edge.db"):
        folder = Path(t.evidence_path)
        manifest = json.loads((folder / "manifest.json").read_text())
        assert "clip.mp4" not in manifest["files"] and not (folder / "clip.mp4").exists()
        assert "clip left out" in manifest["extra"]["clip_omitted"] and (folder / "overview.jpg").is_file()
        assert manifest["extra"].get("box_clock_synchronized") == system_clock_synchronized()  # the kernel's word
    assert verify(low.output_dir, tmp_path / "low" / "edge.db").ok

    full = make_site(tmp_path / "full", server.url,
                     storage=StorageConfig(offload_below_gb=HUGE, offload_to_gb=HUGE, clips_below_gb=HUGE, reserve_gb=HUGE,
                                           check_interval_s=0.3))
    published: list[dict] = []

    class Collect:  # an event sink (MQTT, webhook) that keeps what it is given
        name = "collect"

        def publish(self, event: dict) -> None:
            published.append(event)

        def stats(self) -> dict:
            return {"published": len(published), "pending": 0}

        def close(self, flush_timeout_s: float = 5.0) -> None:
            pass

    run = Running(Supervisor(full, factory=RECORDING, stats_interval_s=0.3, pipeline_overrides={"ticket_every_s": 0.5},
                             publishers=[Collect()]))
    try:
        run.wait(lambda h: 'etle_edge_violations_not_recorded_total{camera="cam"}' in run.metrics()
                 and metric(run.metrics(), 'etle_edge_violations_not_recorded_total{camera="cam"}') >= 3,
                 what="violations counted as not recorded")
        h = run.health()
        assert h["status"] == "degraded" and h["storage"]["state"] == "full"
        assert h["cameras"]["cam"]["restarts"] == 0 and h["cameras"]["cam"]["ok"]  # no crash-and-restart loop
        res = edge_status(tmp_path / "full", run.sup.health_server.port)
        assert res.exit_code == 1 and "(full)" in res.output and "no central store" in res.output
    finally:
        result = run.stop()
        server.stop()
    assert result.tickets == 0 and tickets(tmp_path / "full" / "edge.db") == []
    lost = [e for e in published if e["event"] == "violations_not_recorded"]
    assert lost and all(e["camera"] == "cam" and e["count"] >= 1 for e in lost)
    assert sum(e["count"] for e in lost) == lost[-1]["total"] == result.cameras["cam"]["last_stats"]["evidence"]["not_recorded"]
    assert not list(full.output_dir.rglob("manifest.json"))


def test_floors_of_one_run(tmp_path: Path, monkeypatch) -> None:
    """``etle run`` (stop) ends with one line below its floor; a write that meets a full disk in an
    edge worker (skip) is told from other failures."""
    monkeypatch.setattr("etle.evidence.space.disk_free", lambda root: 300 * 1024 ** 2)
    assert SpacePolicy().decide(tmp_path).record  # no floors: not even measured
    assert SpacePolicy().decide(tmp_path).free_bytes is None
    clipless = SpacePolicy(clip_min_free=400 * 1024 ** 2).decide(tmp_path)
    assert clipless.record and not clipless.clip and "300 MB free, under 400 MB" in clipless.note
    skip = SpacePolicy(evidence_min_free=500 * 1024 ** 2, on_full="skip").decide(tmp_path)
    assert not skip.record and skip.free_bytes == 300 * 1024 ** 2
    with pytest.raises(StoreError) as err:
        SpacePolicy(evidence_min_free=500 * 1024 ** 2).decide(tmp_path)
    assert "300 MB free" in str(err.value) and "under the 500 MB kept free" in str(err.value) and "\n" not in str(err.value)
    try:
        raise StoreError("cannot write evidence bundle x") from OSError(errno.ENOSPC, "No space left on device")
    except StoreError as exc:
        assert out_of_space(exc)
    assert out_of_space(StoreError("cannot add the ticket: (sqlite3.OperationalError) database or disk is full"))
    assert not out_of_space(StoreError("cannot write evidence bundle x: Permission denied"))


def test_site_file_sync_and_storage(tmp_path: Path, monkeypatch) -> None:
    cams = tmp_path / "cams"
    cams.mkdir()
    (cams / "c.yaml").write_text((Path(__file__).resolve().parents[2] / "examples" / "cameras" / "intel_car_detection_parking.yaml").read_text())

    def site(text: str, env: dict | None = None) -> SiteConfig:
        path = tmp_path / "site.yaml"
        path.write_text("cameras:\n  - {camera: cams/c.yaml, source: 'rtsp://10.0.0.2/s'}\n" + text)
        return load_site(path, env=env or {})

    s = site("sync: {central_db: '${CDB}', central_evidence: 's3://central/ev', interval_s: 60}\n"
             "storage: {offload_below_gb: 5, offload_to_gb: 8}\n", {"CDB": "postgresql://etle@central/etle"})
    assert (s.sync.central_db, s.sync.interval_s) == ("postgresql://etle@central/etle", 60)
    assert (s.storage.offload_below_gb, s.storage.clips_below_gb, s.storage.reserve_gb) == (5, 1.0, 0.25)
    target = sync_target(s)
    assert (target.db_url, target.evidence) == ("postgresql://etle@central/etle", "s3://central/ev")
    monkeypatch.setenv("ETLE_CENTRAL_DB", "sqlite:///central.db")
    monkeypatch.setenv("ETLE_CENTRAL_EVIDENCE", "central-ev")
    assert sync_target(site("")).evidence == "central-ev"  # no section: the environment's
    assert sync_target(site("sync: {enabled: false}\n")) is None
    monkeypatch.delenv("ETLE_CENTRAL_DB")
    monkeypatch.delenv("ETLE_CENTRAL_EVIDENCE")
    assert sync_target(site("")) is None
    for text, needle in (
        ("sync: {central_db: 'sqlite:///c.db'}\n", "give both central_db and central_evidence"),
        ("sync: {central_db: 'central.example/etle', central_evidence: x}\n", "central_db is not a database URL"),
        ("storage: {offload_below_gb: 4, offload_to_gb: 2}\n", "offload_to_gb must be at least offload_below_gb"),
        ("storage: {clips_below_gb: 1, reserve_gb: 2}\n", "reserve_gb must not be above clips_below_gb"),
        ("storage: {reserve_gb: -1}\n", "storage.reserve_gb"),
        ("sync: {central_db: '${NOPE}', central_evidence: x}\n", "NOPE is not set"),
    ):
        with pytest.raises(SiteConfigError, match=needle):
            site(text)


def test_the_kernels_clock_state(monkeypatch) -> None:
    """adjtimex's return value: TIME_ERROR (5) is a clock no time daemon holds synchronised."""
    import etle.clock.system as system

    class Libc:
        def __init__(self, state: int) -> None:
            self.state = state

        def adjtimex(self, buf) -> int:
            assert bytes(buf.raw[:4]) == b"\0\0\0\0"  # modes = 0: only reads
            return self.state

    for state, expected in ((0, True), (1, True), (4, True), (5, False), (-1, None)):
        monkeypatch.setattr(system, "_libc", Libc(state))
        assert system.system_clock_synchronized() is expected
    monkeypatch.setattr(system.sys, "platform", "darwin")
    assert system.system_clock_synchronized() is None
