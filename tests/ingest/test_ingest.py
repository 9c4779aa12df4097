from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from etle.errors import SourceError
from etle.ingest.sources import ImageFolderSource, VideoFileSource, expand_sources, is_stream, open_source, _redact

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_videos" / "intel_car_detection_parking.mp4"


def _write_video(path: Path, n: int = 20, fps: float = 10.0, size=(64, 48)) -> Path:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=int(fps))
        s.width, s.height = size
        s.pix_fmt = "yuv420p"
        for i in range(n):
            img = np.full((size[1], size[0], 3), (i * 10) % 255, np.uint8)
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return path


def test_video_frames_carry_index_and_pts(tmp_path: Path) -> None:
    src = open_source(str(_write_video(tmp_path / "a.mp4", n=20, fps=10)))
    frames = list(src.frames())
    assert [f.index for f in frames] == list(range(20))
    assert frames[0].pts == pytest.approx(0.0)
    assert frames[10].pts == pytest.approx(1.0, abs=1e-6)
    assert src.info.width == 64 and src.info.height == 48
    assert not frames[0].image.flags.writeable


def test_sample_clip_pts_and_wall_start_from_container() -> None:
    src = VideoFileSource(SAMPLE, max_seconds=1.0)
    frames = list(src.frames())
    assert src.info.fps == pytest.approx(12.5)
    assert frames[1].pts - frames[0].pts == pytest.approx(0.08, abs=1e-6)
    assert src.info.wall_start is not None and src.info.wall_start.year == 2018
    assert frames[0].timestamp == src.info.wall_start


def test_missing_file() -> None:
    with pytest.raises(SourceError, match="no such file"):
        open_source("/nonexistent/clip.mp4")


def test_zero_byte_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.mp4"
    p.write_bytes(b"")
    with pytest.raises(SourceError, match="empty"):
        open_source(str(p))


def test_non_video_file(tmp_path: Path) -> None:
    p = tmp_path / "notes.mp4"
    p.write_text("this is not a video\n")
    with pytest.raises(SourceError, match="not a readable video"):
        open_source(str(p))


def test_truncated_file(tmp_path: Path) -> None:
    p = tmp_path / "cut.mp4"
    p.write_bytes(SAMPLE.read_bytes()[:300_000])
    with pytest.raises(SourceError, match="truncated"):
        open_source(str(p))


def test_unreachable_stream() -> None:
    with pytest.raises(SourceError, match="unreachable"):
        open_source("rtsp://127.0.0.1:9/nothing")


def test_folder_of_videos_expands(tmp_path: Path) -> None:
    _write_video(tmp_path / "b.mp4")
    _write_video(tmp_path / "a.mp4")
    (tmp_path / "readme.txt").write_text("x")
    assert [Path(s).name for s in expand_sources(str(tmp_path))] == ["a.mp4", "b.mp4"]


def test_folder_of_images(tmp_path: Path) -> None:
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), np.full((30, 40, 3), i * 50, np.uint8))
    assert expand_sources(str(tmp_path)) == [str(tmp_path)]
    src = open_source(str(tmp_path), image_interval_s=0.5)
    assert isinstance(src, ImageFolderSource)
    frames = list(src.frames())
    assert [f.pts for f in frames] == [0.0, 0.5, 1.0]


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no videos or images"):
        expand_sources(str(tmp_path))


def test_stream_detection_and_redaction() -> None:
    assert is_stream("rtsp://user:pw@cam/1") and is_stream("http://x/y.mjpg") and not is_stream("clip.mp4")
    assert _redact("rtsp://user:pw@10.0.0.2/live") == "rtsp://***@10.0.0.2/live"


def test_early_stop_then_reopen_does_not_deadlock() -> None:
    """Stopping a source early (--max-seconds, a stop event) and opening it again must not hang."""
    import threading

    counts: list[int] = []

    def work() -> None:
        for _ in range(3):
            counts.append(sum(1 for _ in VideoFileSource(SAMPLE, max_seconds=2.0).frames()))

    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(timeout=60)
    assert not t.is_alive(), "decoding deadlocked after an early stop"
    assert counts == [counts[0]] * 3 and counts[0] == 26
