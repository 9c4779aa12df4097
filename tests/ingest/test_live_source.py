"""LiveSource: backoff, drop-oldest queue, reconnects, stalls, timing, stats (fast: fake
connections and an in-process HTTP stream of a tiny clip decoded by the real FFmpeg)."""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from datetime import timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from etle.errors import SourceError
from etle.ingest.live import LiveSource, LiveStats, PyAVConnection, backoff_delay, is_live_spec, parse_live_spec
from tests.fixtures.live_helpers import TsHttpServer, make_ts_clip


class Pic:
    def __init__(self, value: int) -> None:
        self.value = value

    def to_ndarray(self, format: str = "bgr24") -> np.ndarray:  # noqa: A002
        return np.full((8, 8, 3), self.value % 256, np.uint8)


class FakeConn:
    """Yields ``n`` pictures (stream time i*dt), then raises ``then`` or blocks until closed."""

    def __init__(self, n: int, *, dt: float = 0.1, start: int = 0, then: Exception | None = None,
                 block: bool = True, pace: float = 0.0) -> None:
        self.n, self.dt, self.start, self.then, self.block, self.pace = n, dt, start, then, block, pace
        self.width, self.height, self.fps = 8, 8, 10.0
        self.should_stop = lambda: False
        self.was_closed = False

    def wait_closed(self) -> None:
        while not self.should_stop():
            time.sleep(0.01)

    def pictures(self):
        for i in range(self.n):
            if self.pace:
                time.sleep(self.pace)
            yield i * self.dt, Pic(self.start + i)
        if self.then is not None:
            raise self.then
        if self.block:
            self.wait_closed()

    def close(self) -> None:
        self.was_closed = True


def scripted(*conns):
    """A connect() that plays the given FakeConns / exceptions in order, then blocks forever."""
    items = list(conns)
    made: list[FakeConn] = []

    def connect(should_stop):
        if not items:
            raise SourceError("no more")
        item = items.pop(0)
        if isinstance(item, Exception):
            raise item
        item.should_stop = should_stop
        made.append(item)
        return item

    connect.made = made  # type: ignore[attr-defined]
    return connect


def fast(**kw):
    base = dict(backoff_initial_s=0.01, backoff_max_s=0.05, first_connect_timeout_s=5.0)
    base.update(kw)
    return base


# ----------------------------------------------------------------------------- pure functions


def test_backoff_is_exponential_capped_and_jittered() -> None:
    rng = random.Random(1)
    plain = [backoff_delay(a, initial_s=0.5, max_s=30, jitter=0.0) for a in range(10)]
    assert plain[:4] == [0.5, 1.0, 2.0, 4.0] and plain[-1] == 30.0
    for a in range(100):
        d = backoff_delay(a, initial_s=0.5, max_s=30, jitter=0.3, rng=rng)
        base = min(30.0, 0.5 * 2 ** a)
        assert 0.7 * base - 1e-9 <= d <= base
    assert len({backoff_delay(3, initial_s=1, max_s=30, jitter=0.5, rng=rng) for _ in range(20)}) > 1


def test_specs() -> None:
    assert parse_live_spec("rtsp://u:p@10.0.0.2/s").kind == "stream"
    assert parse_live_spec("http://cam/x.ts").kind == "stream"
    dev = parse_live_spec("/dev/video0")
    assert (dev.kind, dev.format, dev.url) == ("device", "v4l2", "/dev/video0")
    assert parse_live_spec("v4l2:///dev/video2").url == "/dev/video2"
    assert parse_live_spec("clip.mp4").kind == "file"
    assert is_live_spec("rtsps://x/y") and is_live_spec("/dev/video1") and not is_live_spec("a.mp4")


def test_device_opens_through_v4l2(monkeypatch) -> None:
    import av

    seen = {}

    def fake_open(url, **kw):
        seen.update(url=url, **kw)
        raise av.error.FileNotFoundError(2, "No such file or directory", url)

    monkeypatch.setattr(av, "open", fake_open)
    with pytest.raises(SourceError, match="cannot open"):
        PyAVConnection(parse_live_spec("/dev/video7"), options={"video_size": "640x480"})
    assert seen["url"] == "/dev/video7" and seen["format"] == "v4l2"
    assert seen["options"]["video_size"] == "640x480" and seen["timeout"] is not None


def test_rtsp_defaults_to_tcp(monkeypatch) -> None:
    import av

    seen = {}

    def fake_open(url, **kw):
        seen.update(kw)
        raise av.error.ConnectionRefusedError(111, "Connection refused", url)

    monkeypatch.setattr(av, "open", fake_open)
    with pytest.raises(SourceError):
        PyAVConnection(parse_live_spec("rtsp://127.0.0.1:1/x"), open_timeout_s=1, read_timeout_s=2)
    assert seen["options"]["rtsp_transport"] == "tcp" and seen["timeout"] == (1, 2)


def test_missing_file_is_refused() -> None:
    with pytest.raises(SourceError, match="not a stream URL"):
        LiveSource("/nonexistent/clip.mp4")


# --------------------------------------------------------------------------- fake connections


def test_drop_oldest_counts_drops_and_keeps_the_newest() -> None:
    conn = FakeConn(50)
    src = LiveSource("rtsp://cam/a", queue_size=4, connect=scripted(conn), **fast())
    info = src.info
    assert (info.width, info.height, info.kind) == (8, 8, "stream")
    deadline = time.monotonic() + 5
    while src.stats().frames_decoded < 50 and time.monotonic() < deadline:
        time.sleep(0.01)
    st = src.stats()
    assert (st.frames_decoded, st.frames_dropped, st.queue_depth, st.queue_size) == (50, 46, 4, 4)
    frames = []
    it = src.frames()
    for _ in range(4):
        frames.append(next(it))
    assert [int(f.image[0, 0, 0]) for f in frames] == [46, 47, 48, 49]
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert src.stats().frames_delivered == 4 and src.stats().queue_depth == 0
    src.close()
    assert list(it) == [] and src.stats().state == "closed"


def test_reconnects_keep_time_continuous() -> None:
    connect = scripted(FakeConn(5, dt=0.05, pace=0.05, then=SourceError("cut")), SourceError("refused"),
                       FakeConn(5, dt=0.05, pace=0.05, start=100))
    src = LiveSource("http://cam/x", queue_size=100, connect=connect, **fast())
    got = []
    for f in src.frames():
        got.append(f)
        if len(got) == 10:
            break
    st = src.stats()
    src.close()
    assert [int(f.image[0, 0, 0]) for f in got] == [0, 1, 2, 3, 4, 100, 101, 102, 103, 104]
    assert [f.index for f in got] == list(range(10))
    pts = [f.pts for f in got]
    assert all(b > a for a, b in zip(pts, pts[1:])), pts
    # within a connection the spacing is the stream's (0.05 s), not the arrival jitter
    assert np.allclose(np.diff(pts[:5]), 0.05, atol=0.01) and np.allclose(np.diff(pts[5:]), 0.05, atol=0.01)
    assert (st.connects, st.reconnects, st.connect_failures, st.disconnects) == (2, 1, 1, 1)
    assert "cut" in (st.last_error or "") or "refused" in (st.last_error or "")
    ws = got[0].wall_start
    assert ws is not None and ws.tzinfo is not None and ws.utcoffset() == timezone.utc.utcoffset(None)
    assert got[-1].timestamp > got[0].timestamp
    assert all(c.was_closed for c in connect.made)


def test_frame_dates_follow_a_step_of_the_system_clock() -> None:
    """A box whose clock NTP sets 10 minutes forward after the worker started (and later 30 s
    back): frames are dated by the clock as it is then, their pts never jump."""
    wall = {"offset": 0.0}

    def wall_clock() -> float:
        return 1_700_000_000.0 + time.monotonic() + wall["offset"]

    src = LiveSource("rtsp://cam/ntp", queue_size=100, connect=scripted(FakeConn(30, dt=0.05, pace=0.05)),
                     wall_clock=wall_clock, **fast())
    it = src.frames()
    first = [next(it) for _ in range(5)]
    wall["offset"] = 600.0  # NTP steps the clock
    later = [next(it) for _ in range(5)]
    wall["offset"] = 570.0  # and corrects it back by 30 s
    last = [next(it) for _ in range(5)]
    src.close()
    start = first[0].wall_start
    assert all(f.wall_start == start for f in first) and start.timestamp() == pytest.approx(src.info.wall_start.timestamp())
    assert all(f.wall_start == later[0].wall_start for f in later)
    assert (later[0].wall_start - start).total_seconds() == pytest.approx(600.0, abs=0.2)
    assert (last[0].wall_start - start).total_seconds() == pytest.approx(570.0, abs=0.2)
    assert src.clock_steps == 2
    pts = [f.pts for f in first + later + last]
    assert all(b > a for a, b in zip(pts, pts[1:])) and pts[-1] - pts[0] < 2.0  # the rules' time never jumped
    assert later[0].timestamp - first[-1].timestamp > timedelta(seconds=599)  # dated by the clock as it is now


def test_a_test_clock_without_a_wall_clock_keeps_the_start_date() -> None:
    ticks = iter(float(i) for i in range(10_000))
    src = LiveSource("rtsp://cam/t", queue_size=100, connect=scripted(FakeConn(5, dt=0.1)), clock=lambda: next(ticks), **fast())
    it = src.frames()
    frames = [next(it) for _ in range(5)]
    src.close()
    assert {f.wall_start for f in frames} == {src.info.wall_start} and src.clock_steps == 0


def test_a_burst_of_buffered_pictures_is_not_timed_in_the_future() -> None:
    src = LiveSource("rtsp://cam/burst", queue_size=100, connect=scripted(FakeConn(20, dt=0.1)), **fast())
    it = src.frames()
    frames = [next(it) for _ in range(20)]
    now = src.now()
    src.close()
    assert all(f.pts <= now for f in frames)
    assert all(b.pts > a.pts for a, b in zip(frames, frames[1:]))


def test_stream_time_is_reanchored_when_it_jumps() -> None:
    class Jumpy(FakeConn):
        def pictures(self):
            yield 0.0, Pic(0)
            yield 0.1, Pic(1)
            yield 1000.0, Pic(2)  # the camera's clock jumped (or the stream looped back)
            yield -50.0, Pic(3)
            self.wait_closed()

    src = LiveSource("rtsp://cam/j", queue_size=10, connect=scripted(Jumpy(0)), max_drift_s=1.0, **fast())
    it = src.frames()
    pts = [next(it).pts for _ in range(4)]
    src.close()
    assert all(b > a for a, b in zip(pts, pts[1:]))
    assert pts[-1] < 5.0  # re-anchored to the clock, not 1000 s ahead


def test_max_seconds_ends_the_source() -> None:
    src = LiveSource("rtsp://cam/m", queue_size=100, connect=scripted(FakeConn(100, dt=0.01, pace=0.01)), max_seconds=0.2, **fast())
    frames = list(src.frames())
    assert 10 <= len(frames) <= 25 and frames[-1].pts <= 0.2


def test_max_fps_skips_frames_and_counts_them() -> None:
    src = LiveSource("rtsp://cam/f", queue_size=100, connect=scripted(FakeConn(40, dt=0.02, pace=0.02)), max_fps=10, **fast())
    it = src.frames()
    frames = [next(it) for _ in range(7)]
    deadline = time.monotonic() + 5
    while src.stats().frames_decoded < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    st = src.stats()
    src.close()
    gaps = np.diff([f.pts for f in frames])
    assert (gaps >= 0.08).all() and abs(gaps.mean() - 0.1) < 0.02 and st.frames_dropped == 0
    assert st.frames_skipped + st.queue_depth + st.frames_delivered == st.frames_decoded == 40
    assert 30 <= st.frames_skipped <= 33


def test_close_unblocks_a_waiting_consumer_and_info() -> None:
    src = LiveSource("rtsp://cam/c", connect=scripted(FakeConn(1)), **fast())
    out: list = []
    t = threading.Thread(target=lambda: out.extend(src.frames()))
    t.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    src.close()
    t.join(3)
    assert not t.is_alive() and time.monotonic() - t0 < 2 and len(out) == 1
    never = LiveSource("rtsp://cam/n", connect=scripted(*[SourceError("down")] * 1000), **fast(first_connect_timeout_s=0.3))
    with pytest.raises(SourceError, match="no connection within"):
        never.info
    never.close()
    assert never.stats().connect_failures >= 2
    closing = LiveSource("rtsp://cam/n2", connect=scripted(*[SourceError("down")] * 1000), **fast(first_connect_timeout_s=None))
    threading.Timer(0.2, closing.close).start()
    with pytest.raises(SourceError, match="closed before"):
        closing.info


def test_stats_snapshot_is_frozen_and_frames_read_only() -> None:
    src = LiveSource("rtsp://cam/s", connect=scripted(FakeConn(3)), **fast())
    it = src.frames()
    f = next(it)
    st = src.stats()
    it.close()  # closing the generator closes the source
    assert src.closed
    assert isinstance(st, LiveStats) and st.connected and st.width == 8
    with pytest.raises(dataclasses.FrozenInstanceError):
        st.frames_dropped = 0  # type: ignore[misc]
    assert set(st.as_dict()) >= {"frames_dropped", "queue_depth", "reconnects", "last_frame_age_s", "input_fps"}
    with pytest.raises(ValueError):
        f.image[0, 0, 0] = 1


def test_a_consumer_bug_does_not_hang() -> None:
    def broken(should_stop):
        raise RuntimeError("bug in connect")

    src = LiveSource("rtsp://cam/b", connect=broken, **fast(first_connect_timeout_s=0.3))
    with pytest.raises(SourceError):
        src.info
    assert "bug in connect" in (src.stats().last_error or "")
    src.close()


# ----------------------------------------------------------------------------- real FFmpeg


#: FFmpeg options that open the tiny low-bitrate test stream without 2 s of probing
QUICK_PROBE = {"probesize": "4096", "analyzeduration": "200000"}


@pytest.fixture(scope="module")
def ts_clip(tmp_path_factory) -> Path:
    return make_ts_clip(tmp_path_factory.mktemp("live") / "clip.ts", seconds=2.0, fps=10)


def test_http_stream_cut_stall_and_restore(ts_clip: Path) -> None:
    srv = TsHttpServer(ts_clip, seconds=2.0).start()
    src = LiveSource(srv.url, name="cam", queue_size=4, open_timeout_s=3.0, read_timeout_s=1.0, stall_timeout_s=1.0,
                     backoff_initial_s=0.1, backoff_max_s=0.4, first_connect_timeout_s=10, options=QUICK_PROBE)
    frames: list = []
    consumer = threading.Thread(target=lambda: frames.extend(f for f in src.frames()), daemon=True)
    consumer.start()

    def wait(cond, what: str) -> None:
        deadline = time.monotonic() + 15
        while not cond(src.stats()):
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {src.stats()}"
            time.sleep(0.05)

    try:
        wait(lambda st: st.frames_delivered >= 5, "first frames")
        srv.cut()  # the server goes away: connection refused
        wait(lambda st: st.disconnects >= 1 and st.connect_failures >= 1, "the cut to be seen")
        srv.restore()
        wait(lambda st: st.reconnects >= 1 and st.connected, "reconnect after the cut")
        n = src.stats().frames_delivered
        wait(lambda st: st.frames_delivered >= n + 3, "frames after the cut")
        srv.stall()  # connected, but nothing arrives
        wait(lambda st: st.stalls >= 1, "the stall to be detected")
        srv.resume()
        wait(lambda st: st.reconnects >= 2 and st.connected, "reconnect after the stall")
        n = src.stats().frames_delivered
        wait(lambda st: st.frames_delivered >= n + 3, "frames after the stall")
    finally:
        src.close()
        srv.stop()
        consumer.join(5)
    st = src.stats()
    assert st.reconnects >= 2 and st.stalls >= 1 and st.disconnects >= 2, st
    assert st.state == "closed" and not consumer.is_alive()
    assert all(f.image.shape == (64, 96, 3) for f in frames)
    assert all(b.pts > a.pts for a, b in zip(frames, frames[1:]))


def test_local_file_loops_in_real_time(ts_clip: Path) -> None:
    src = LiveSource(str(ts_clip), name="loop", queue_size=50, backoff_initial_s=0.01, first_connect_timeout_s=5)
    assert src.realtime
    t0 = time.monotonic()
    frames = []
    for f in src.frames():
        frames.append(f)
        if len(frames) == 24:
            break
    elapsed = time.monotonic() - t0
    st = src.stats()
    src.close()
    assert st.reconnects >= 1 and st.frames_dropped == 0
    assert elapsed >= 1.5  # paced at 10 fps, not decoded flat out
    pts = [f.pts for f in frames]
    assert all(b > a for a, b in zip(pts, pts[1:]))
