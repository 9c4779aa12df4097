"""Footage without timestamps: a recorder's raw H.264 / HEVC export (elementary streams).

Such a file holds frames but no PTS; etle times them by the frame rate its stream header
declares, or by ``--frame-rate``.  Before, every such file was refused as holding no frames,
and a stream without timestamps yielded nothing.
"""

from __future__ import annotations

import http.server
import socketserver
import threading
from pathlib import Path

import numpy as np
import pytest

from etle.batch.source import SegmentSource
from etle.errors import SourceError
from etle.ingest.sources import VideoFileSource, expand_sources, open_source, timing_note

from fixtures.raw_video import raw_stream as _raw_stream, remux_raw as _remux_raw

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_videos" / "intel_car_detection_parking.mp4"


def test_raw_h264_is_timed_by_its_header(tmp_path: Path) -> None:
    src = VideoFileSource(_raw_stream(tmp_path / "dvr.h264", n=20))
    assert src.info.timing == "stream header"
    assert src.info.fps == pytest.approx(12.5)
    assert src.info.frame_count == 20
    assert src.info.duration_s == pytest.approx(20 / 12.5)
    frames = list(src.frames())
    assert [f.index for f in frames] == list(range(20))
    assert [f.pts for f in frames] == pytest.approx([i / 12.5 for i in range(20)])
    grey = [float(f.image.mean()) for f in frames]
    assert all(b > a for a, b in zip(grey, grey[1:])), "frames out of order"


def test_frame_rate_given_times_a_raw_stream(tmp_path: Path) -> None:
    path = _raw_stream(tmp_path / "dvr.264", n=10)
    src = open_source(str(path), frame_rate=25.0)
    assert src.info.timing == "given"
    assert src.info.fps == 25.0
    assert src.info.duration_s == pytest.approx(10 / 25)
    assert [f.pts for f in src.frames()] == pytest.approx([i / 25 for i in range(10)])


def test_max_seconds_on_a_raw_stream(tmp_path: Path) -> None:
    src = open_source(str(_raw_stream(tmp_path / "dvr.h264", n=20)), max_seconds=0.5)
    assert [f.index for f in src.frames()] == list(range(7))  # 0 .. 0.48 s at 12.5 fps


def test_frame_rate_is_ignored_where_the_file_has_timestamps() -> None:
    src = VideoFileSource(SAMPLE, frame_rate=30.0, max_seconds=1.0)
    assert src.info.timing == "container"
    assert src.info.fps == pytest.approx(12.5)
    frames = list(src.frames())
    assert frames[1].pts - frames[0].pts == pytest.approx(0.08, abs=1e-6)


def test_the_run_is_told_how_frames_are_timed(tmp_path: Path) -> None:
    path = _raw_stream(tmp_path / "dvr.h264", n=5)
    header = timing_note(VideoFileSource(path).info)
    assert header is not None and "frames timed at 12.5 fps, the rate its header declares" in header
    given = timing_note(VideoFileSource(path, frame_rate=25.0).info, 25.0)
    assert given is not None and "frames timed at 25 fps (--frame-rate)" in given
    timed = VideoFileSource(SAMPLE, max_seconds=1.0).info
    assert timing_note(timed) is None
    ignored = timing_note(timed, 25.0)
    assert ignored is not None and "--frame-rate ignored" in ignored


def test_frame_rate_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="frame rate must be above 0"):
        VideoFileSource(_raw_stream(tmp_path / "dvr.h264", n=3), frame_rate=0.0)


def test_raw_hevc_and_its_suffixes_in_a_folder(tmp_path: Path) -> None:
    _raw_stream(tmp_path / "b.hevc", n=8, codec="libx265")
    _raw_stream(tmp_path / "a.h264", n=4)
    (tmp_path / "notes.txt").write_text("not a video")
    specs = expand_sources(str(tmp_path))
    assert [Path(s).name for s in specs] == ["a.h264", "b.hevc"]
    hevc = VideoFileSource(specs[1])
    assert hevc.info.timing == "stream header"
    assert hevc.info.fps == pytest.approx(12.5)
    assert [f.pts for f in hevc.frames()] == pytest.approx([i / 12.5 for i in range(8)])


def test_the_sample_as_a_raw_export_has_the_mp4s_frames_and_times(tmp_path: Path) -> None:
    raw = VideoFileSource(_remux_raw(SAMPLE, tmp_path / "sample.h264"), max_seconds=3.0)
    mp4 = VideoFileSource(SAMPLE, max_seconds=3.0)
    got, want = list(raw.frames()), list(mp4.frames())
    assert raw.info.timing == "stream header" and raw.info.fps == pytest.approx(mp4.info.fps)
    assert [f.index for f in got] == [f.index for f in want]
    assert [f.pts for f in got] == pytest.approx([f.pts for f in want], abs=1e-6)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(got, want))


def test_a_later_batch_segment_of_a_raw_stream_gets_its_window(tmp_path: Path) -> None:
    path = _raw_stream(tmp_path / "dvr.h264", n=30)
    whole = {f.index: f for f in VideoFileSource(path).frames()}
    seg = SegmentSource(VideoFileSource(path), 1.01, 1.6, inclusive_end=False)
    frames = list(seg.frames())
    assert [f.index for f in frames] == list(range(13, 20))  # 1.04 .. 1.52 s at 12.5 fps
    for f in frames:
        assert f.pts == pytest.approx(whole[f.index].pts)
        assert np.array_equal(f.image, whole[f.index].image)


def test_a_raw_stream_is_planned_into_batch_segments(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from etle.batch.jobs import plan_batch

    path = _raw_stream(tmp_path / "dvr.h264", n=50)  # 4 s at 12.5 fps
    with caplog.at_level("WARNING"):
        jobs, failures = plan_batch([str(path)], segment_s=1.0, overlap_s=0.2, tail_s=0.1)
    assert failures == []
    (job,) = jobs
    assert job.duration_s == pytest.approx(4.0) and job.fps == pytest.approx(12.5)
    assert len(job.plan.segments) == 4
    assert "the rate its header declares" in caplog.text


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_a_stream_without_timestamps_is_timed_not_dropped(tmp_path: Path) -> None:
    """A raw H.264 stream over HTTP (as some cameras and encoders serve it): every frame comes
    through, one frame duration apart (before: none, every frame lacked a PTS)."""
    _raw_stream(tmp_path / "live.h264", n=15)

    def handler(*args: object, **kwargs: object) -> _Quiet:
        return _Quiet(*args, directory=str(tmp_path), **kwargs)  # type: ignore[arg-type]

    with socketserver.TCPServer(("127.0.0.1", 0), handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            src = open_source(f"http://127.0.0.1:{httpd.server_address[1]}/live.h264")
            assert src.info.kind == "stream"
            frames = list(src.frames())
        finally:
            httpd.shutdown()
    assert [f.index for f in frames] == list(range(15))
    assert [f.pts for f in frames] == pytest.approx([i / 12.5 for i in range(15)])


@pytest.mark.parametrize("name, fmt, codec", [
    ("rec.mts", "mpegts", "libx264"), ("rec.m2ts", "mpegts", "libx264"), ("rec.vob", "vob", "mpeg1video"),
    ("rec.asf", "asf", "msmpeg4"), ("rec.wmv", "asf", "wmv2"), ("rec.3gp", "3gp", "libx264"),
])
def test_recorders_other_containers_are_listed_and_read(tmp_path: Path, name: str, fmt: str, codec: str) -> None:
    """AVCHD and DVD recorders' .mts / .m2ts / .vob, Windows' .asf / .wmv, phones' .3gp: a folder of
    them was 'no videos or images found in the folder'."""
    import av

    path = tmp_path / name
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(20):
            for pkt in s.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 10, np.uint8), format="bgr24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    (tmp_path / "notes.txt").write_text("not a video")
    assert expand_sources(str(tmp_path)) == [str(path)]
    frames = list(open_source(str(path)).frames())
    assert len(frames) == 20
    gaps = np.diff([f.pts for f in frames])
    assert np.allclose(gaps, 0.04, atol=0.002)
