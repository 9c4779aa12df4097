"""Frames that change size in the middle of a source (a DVR export joining two streams, a camera
that reconnects at its default resolution): brought back to the source's size, or, in another
shape, with the rules paused (etle.ingest.conform)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import pytest

from etle.evidence.builder import verify_bundle
from etle.ingest.conform import SizeConformer
from etle.ingest.sources import SourceInfo
from etle.types import Box, Detection, Frame

from fixtures.scenes import FPS, H, START, W, build


def _frame(index: int, w: int, h: int) -> Frame:
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = 200  # left half bright: survives a resize in place
    return Frame("x.mp4", index, index / 10, img, None)


def test_frames_of_the_source_size_pass_untouched() -> None:
    conform = SizeConformer("x.mp4", 64, 36, aspect_tolerance=0.02)
    f = _frame(0, 64, 36)
    assert conform(f) is f and conform.ok and conform.resized == 0


def test_the_same_picture_at_another_resolution_is_resized(caplog: pytest.LogCaptureFixture) -> None:
    conform = SizeConformer("x.mp4", 64, 36, aspect_tolerance=0.02)
    with caplog.at_level(logging.WARNING):
        out = [conform(_frame(i, 128, 72)) for i in range(3)]
    assert all(o.image.shape == (36, 64, 3) for o in out)
    assert conform.ok and conform.resized == 3
    assert out[0].index == 0 and out[2].pts == pytest.approx(0.2)
    assert out[0].image[:, :30].min() >= 190 and out[0].image[:, 34:].max() <= 10
    assert caplog.text.count("128x72") == 1, "one warning for one change of size"


def test_another_shape_is_not_ok_until_the_size_comes_back(caplog: pytest.LogCaptureFixture) -> None:
    conform = SizeConformer("x.mp4", 64, 36, aspect_tolerance=0.02)
    with caplog.at_level(logging.WARNING):
        crop = conform(_frame(0, 48, 36))
        assert crop.image.shape == (36, 64, 3) and not conform.ok
        conform(_frame(1, 48, 36))
        back = conform(_frame(2, 64, 36))
    assert conform.ok and back.image.shape == (36, 64, 3)
    assert "another shape" in caplog.text and "back at 64x36" in caplog.text


class _ScaledCar:
    """A car driving down the picture at 6 px a frame of a 320x240 picture, found where it is in
    whatever picture the detector is given (its box scales with the picture)."""

    def __init__(self) -> None:
        self.i = 0
        self.sizes: set[tuple[int, int]] = set()

    def detect(self, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        self.sizes.add((w, h))
        sx, sy = w / W, h / H
        y2 = 40 + 6.0 * self.i
        self.i += 1
        return [Detection(Box(140 * sx, (y2 - 40) * sy, 190 * sx, y2 * sy), "car", 0.9)]


@dataclass
class _ChangingSource:
    """60 frames of 320x240, from frame ``at`` on of ``size``."""

    size: tuple[int, int]
    at: int = 5
    n: int = 60

    @property
    def info(self) -> SourceInfo:
        return SourceInfo("changing.mp4", "file", W, H, FPS, self.n / FPS, self.n, START, "given")

    def frames(self) -> Iterator[Frame]:
        for i in range(self.n):
            img = np.full((H, W, 3), 90, np.uint8)
            img[118:122, :] = 255
            if i >= self.at:
                img = cv2.resize(img, self.size)
            yield Frame("changing.mp4", i, i / FPS, img, START)


def test_a_source_that_doubles_its_size_midway_gives_the_ticket_of_one_size(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    pipe, store = build(tmp_path / "a", "red", _ScaledCar())
    steady = pipe.run_source(_ChangingSource((W, H)))
    car = _ScaledCar()
    pipe, store_b = build(tmp_path / "b", "red", car)
    summary = pipe.run_source(_ChangingSource((2 * W, 2 * H)))
    assert car.sizes == {(W, H)}, "every frame reaches the stages at the source's size"
    assert summary.resized_frames == 55 and steady.resized_frames == 0
    assert summary.tickets == steady.tickets == 1
    (a,), (b,) = store.list(), store_b.list()
    assert (b.rule, b.frame_index, b.occurred_at) == (a.rule, a.frame_index, a.occurred_at)
    assert verify_bundle(b.evidence_path) == []
    clip = cv2.VideoCapture(str(Path(b.evidence_path) / "clip.mp4"))
    ok, first = clip.read()
    assert ok and first.shape[:2] == (H, W)


def test_another_shape_midway_pauses_the_rules(tmp_path: Path) -> None:
    car = _ScaledCar()
    pipe, store = build(tmp_path, "red", car)
    summary = pipe.run_source(_ChangingSource((426, 240)))  # 16:9 after frame 5; the car crosses near frame 13
    assert summary.violations == 0 and store.list() == []
    assert summary.view_pauses == 1 and summary.resized_frames == 55


class _Picture:
    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size

    def to_ndarray(self, format: str = "bgr24") -> np.ndarray:  # noqa: A002
        img = np.full((H, W, 3), 90, np.uint8)
        img[118:122, :] = 255
        return cv2.resize(img, self.size) if self.size != (W, H) else img


class _Connection:
    """``n`` pictures of ``size`` 0.1 s apart (stream time), then a cut."""

    def __init__(self, n: int, size: tuple[int, int], start: float) -> None:
        self.n, self.start = n, start
        self.width, self.height = size
        self.fps = FPS
        self.size = size

    def pictures(self):  # type: ignore[no-untyped-def]
        import time

        from etle.errors import SourceError

        for i in range(self.n):
            time.sleep(0.002)
            yield self.start + i / FPS, _Picture(self.size)
        raise SourceError("cut")

    def close(self) -> None:
        pass


def test_a_camera_that_reconnects_at_another_resolution(tmp_path: Path) -> None:
    """The edge runner's live source: the camera drops and comes back at twice the resolution
    (a firmware reset); its frames reach the stages at the size the run began with."""
    import threading

    from etle.ingest.live import LiveSource

    conns = [_Connection(5, (W, H), 0.0), _Connection(55, (2 * W, 2 * H), 0.5)]

    def connect(should_stop):  # type: ignore[no-untyped-def]
        from etle.errors import SourceError

        if not conns:
            raise SourceError("gone")
        return conns.pop(0)

    src = LiveSource("rtsp://cam/x", queue_size=100, connect=connect, backoff_initial_s=0.01, backoff_max_s=0.05,
                     first_connect_timeout_s=5.0, realtime=False)
    car = _ScaledCar()
    pipe, store = build(tmp_path, "red", car)
    seen = []

    def progress(frame: Frame) -> None:
        seen.append(frame)
        if len(seen) >= 60:
            src.close()  # as the edge runner stops a camera: the frames end

    timer = threading.Timer(30.0, src.close)  # never hang the suite
    timer.start()
    try:
        summary = pipe.run_source(src, progress)
    finally:
        timer.cancel()
        src.close()
    assert len(seen) == 60
    assert car.sizes == {(W, H)}
    assert summary.resized_frames == 55 and summary.tickets == 1
    assert store.list()[0].rule == "red_light"
