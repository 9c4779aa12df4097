"""View guard on synthetic scenes: same view with traffic, reframed view, cuts, hysteresis."""

from __future__ import annotations

import logging
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from etle.camera.config import CameraConfig
from etle.viewguard.guard import ViewGuard, ViewStatus
from etle.errors import ConfigError
from etle.types import Frame

W, H = 480, 270


def scene(seed: int = 0) -> np.ndarray:
    """A textured 'junction': kerbs, markings, buildings (random shapes, fixed by seed)."""
    rng = np.random.default_rng(seed)
    img = np.full((H, W, 3), 90, np.uint8)
    for _ in range(120):
        x, y = int(rng.integers(0, W)), int(rng.integers(0, H))
        w, h = int(rng.integers(5, 60)), int(rng.integers(5, 40))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        if rng.random() < 0.5:
            cv2.rectangle(img, (x, y), (x + w, y + h), colour, -1)
        else:
            cv2.line(img, (x, y), (x + w, y + h), colour, int(rng.integers(1, 4)))
    return cv2.GaussianBlur(img, (3, 3), 0)


def with_traffic(img: np.ndarray, seed: int, n: int = 6) -> np.ndarray:
    rng = np.random.default_rng(1000 + seed)
    out = img.copy()
    for _ in range(n):
        x, y = int(rng.integers(0, W - 60)), int(rng.integers(0, H - 40))
        cv2.rectangle(out, (x, y), (x + 50, y + 30), (int(rng.integers(0, 255)), 40, 200), -1)
    return out


def zoomed(img: np.ndarray, scale: float) -> np.ndarray:
    m = cv2.getRotationMatrix2D((W / 2, H / 2), 0, scale)
    return cv2.warpAffine(img, m, (W, H), borderMode=cv2.BORDER_REFLECT)


def frame(i: int, img: np.ndarray, fps: float = 10.0) -> Frame:
    return Frame("syn", i, i / fps, img)


REF = scene(0)


def test_same_view_with_traffic_matches():
    g = ViewGuard(REF)
    for seed in range(5):
        m = g.compare(with_traffic(REF, seed))
        assert m.ok and m.shift is not None and m.shift < 0.01, m


@pytest.mark.parametrize("scale", [1.15, 0.85])
def test_reframed_view_does_not_match(scale):
    m = ViewGuard(REF).compare(zoomed(REF, scale))
    assert not m.ok
    assert m.shift is None or m.shift > 0.03


def test_other_scene_does_not_match():
    m = ViewGuard(REF).compare(scene(7))
    assert not m.ok and m.score < 0.1


def test_update_pauses_at_once_and_resumes_after_resume_after_s(caplog):
    g = ViewGuard(REF, check_every_s=0.5, resume_after_s=1.0)
    other = scene(5)
    seq = [REF] * 22 + [other] * 20 + [REF] * 40  # 10 fps: ref, other from 2.2 s, ref from 4.2 s
    with caplog.at_level(logging.INFO, logger="etle.viewguard.guard"):
        statuses = [g.update(frame(i, with_traffic(img, i % 7))) for i, img in enumerate(seq)]
    ok = [s.ok for s in statuses]
    assert all(ok[:22])
    # the cut falls between two scheduled checks (2.0, 2.5) and is checked at once
    assert statuses[22].checked and statuses[22].cut and not ok[22] and statuses[22].changed
    assert statuses[42].checked and statuses[42].score > 0.5  # back at 4.2 s ...
    assert not any(ok[22:51])  # ... but it must match for 1 s before rules resume
    assert all(ok[53:])
    (p0, e0, _), (p1, e1, _) = g.events
    assert (round(p0, 2), e0, e1) == (2.2, "pause", "resume")
    assert 5.1 <= p1 <= 5.3
    assert "rules paused" in caplog.text and "rules resume" in caplog.text


def test_checks_only_every_check_every_s_without_cuts():
    g = ViewGuard(REF, check_every_s=0.5)
    checked = [g.update(frame(i, REF)).checked for i in range(30)]
    assert [i for i, c in enumerate(checked) if c] == [0, 5, 10, 15, 20, 25]


def test_gradual_pan_is_caught_by_the_cumulative_thumbnail_difference():
    g = ViewGuard(REF, check_every_s=1000.0)  # only cut-triggered checks after the first
    statuses = []
    for i in range(40):
        m = np.float32([[1, 0, -i * 5.0], [0, 1, 0]])
        img = cv2.warpAffine(REF, m, (W, H), borderMode=cv2.BORDER_REFLECT)
        statuses.append(g.update(frame(i, img)))
    assert statuses[0].ok and not statuses[-1].ok
    assert any(
        s.cut for s in statuses
    )  # no single step is a cut; the drift since the last check is


def test_first_frame_decides_the_initial_state():
    g = ViewGuard(REF)
    s = g.update(frame(0, scene(3)))
    assert not s.ok and not s.changed
    assert g.events[0][1] == "pause"


def test_no_reference_is_always_ok():
    g = ViewGuard(None)
    assert g.update(frame(0, scene(3))) == ViewStatus(ok=True, score=1.0, shift=0.0)
    assert g.events == []
    assert ViewGuard.from_config(CameraConfig.model_validate({"id": "c"})).update(frame(0, REF)).ok


def test_ignore_regions_are_left_out():
    ref = REF.copy()
    cv2.putText(ref, "2019-02-13 12:00:01 Wed", (10, 20), 0, 0.6, (255, 255, 255), 2)
    other = scene(9)
    cv2.putText(other, "2019-02-13 12:00:01 Wed", (10, 20), 0, 0.6, (255, 255, 255), 2)
    g = ViewGuard(ref, ignore=[[(0, 0), (300, 0), (300, 30), (0, 30)]])
    assert g.compare(ref).ok and not g.compare(other).ok


def test_textureless_reference_is_refused():
    with pytest.raises(ValueError, match="texture"):
        ViewGuard(np.zeros((H, W, 3), np.uint8))


def write_video(path: Path, frames: list[np.ndarray], fps: int = 10) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"qscale": "2"}
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def camera(tmp_path: Path, reference: str, at: float | None = None) -> CameraConfig:
    vg: dict = {"reference": reference}
    if at is not None:
        vg["reference_at_s"] = at
    return CameraConfig.model_validate(
        {"id": "c", "view_guard": vg}, context={"base_dir": tmp_path}
    )


def test_from_config_with_an_image(tmp_path):
    cv2.imwrite(str(tmp_path / "ref.png"), REF)
    g = ViewGuard.from_config(camera(tmp_path, "ref.png"))
    assert g.update(frame(0, with_traffic(REF, 1))).ok


def test_from_config_takes_the_video_frame_at_reference_at_s(tmp_path):
    other = scene(4)
    write_video(tmp_path / "ref.mp4", [other] * 20 + [REF] * 20)  # REF from 2.0 s
    g = ViewGuard.from_config(camera(tmp_path, "ref.mp4", at=2.5))
    assert g.compare(REF).ok and not g.compare(other).ok
    g0 = ViewGuard.from_config(camera(tmp_path, "ref.mp4", at=0.0))
    assert g0.compare(other).ok and not g0.compare(REF).ok
    with pytest.raises(ConfigError, match="past the end"):
        ViewGuard.from_config(camera(tmp_path, "ref.mp4", at=60.0))


def test_from_config_errors(tmp_path):
    (tmp_path / "ref.png").write_bytes(b"not a png")
    with pytest.raises(ConfigError, match="not a readable image"):
        ViewGuard.from_config(camera(tmp_path, "ref.png"))
    (tmp_path / "ref.mp4").write_bytes(b"not a video")
    with pytest.raises(ConfigError, match="cannot be decoded"):
        ViewGuard.from_config(camera(tmp_path, "ref.mp4"))
    cv2.imwrite(str(tmp_path / "flat.png"), np.zeros((H, W, 3), np.uint8))
    with pytest.raises(ConfigError, match="texture"):
        ViewGuard.from_config(camera(tmp_path, "flat.png"))
    cam = camera(tmp_path, "flat.png")
    (tmp_path / "flat.png").unlink()
    with pytest.raises(ConfigError, match="not found"):
        ViewGuard.from_config(cam)
