"""EvidenceWriter: files, hashes, clip, atomicity, verification."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import av
import numpy as np
import pytest

from etle.errors import ConfigError, StoreError
from etle.evidence import builder
from etle.evidence.builder import (
    CameraMeta,
    EvidenceRequest,
    EvidenceWriter,
    cleanup_partial,
    discard_bundle,
    verify_bundle,
)
from etle.types import NO_PLATE, Box, Frame, PlateRead, PlateResult, TrackedObject, Violation

H, W = 121, 160  # odd height: the clip must be padded to even dimensions
START = datetime(2026, 11, 27, 23, 59, 58, tzinfo=timezone.utc)  # 06:59:58 WIB on the 28th
CAMERA = CameraMeta(id="jbi-01", name="Simpang Pulai", location="Kota Jambi", lat=-1.61, lon=103.6,
                    timezone="Asia/Jakarta")


def make_frame(i: int, fps: float = 10.0) -> Frame:
    image = np.zeros((H, W, 3), dtype=np.uint8)
    x = 10 + 3 * i
    image[40:80, x:x + 40] = (40, 120, 200)
    return Frame(source="rtsp://cam/1", index=i, pts=i / fps, image=image, wall_start=START)


def car(i: int) -> TrackedObject:
    x = 10 + 3 * i
    return TrackedObject(track_id=7, box=Box(x, 40, x + 40, 80), label="car", confidence=0.9)


def other() -> TrackedObject:
    return TrackedObject(track_id=8, box=Box(120, 90, 150, 118), label="motorcycle", confidence=0.8)


def make_request(n_clip: int = 20, key: int = 10, plate: PlateResult | None = None, **kw: object) -> EvidenceRequest:
    key_frame = make_frame(key)
    violation = Violation(
        rule="red_light", track_id=7, label="car", frame_index=key, pts=key_frame.pts,
        timestamp=key_frame.timestamp, box=car(key).box, related_track_ids=(8,),
        details={"signal": "red", "red_for_s": np.float32(2.5), "bad": float("nan"), "line": Box(0, 100, 160, 100)},
    )
    if plate is None:
        crop = np.full((12, 40, 3), 255, dtype=np.uint8)
        plate = PlateResult(
            text="BH1234AB", confidence=0.93,
            candidates=(PlateRead("BH1234AB", 0.93, "BH 1234 AB", 9, crop=crop), PlateRead("BH1Z34AB", 0.41, "", 8)),
            best=PlateRead("BH1234AB", 0.93, "BH 1234 AB", 9, box=Box(20, 60, 60, 72), validity="05.29", crop=crop),
        )
    fields: dict = dict(
        violation=violation, camera=CAMERA, key_frame=key_frame, key_objects=(car(key), other()),
        clip=tuple((make_frame(i), (car(i), other())) for i in range(n_clip)), plate=plate,
        article="287(2)", fine=500_000, models={"detector": "sha256:abc", "plate_ocr": "sha256:def"},
        config_hash="cfg123", extra={"run_id": "r1"},
    )
    fields.update(kw)
    return EvidenceRequest(**fields)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("evidence")
    request = make_request()
    return root, request, EvidenceWriter(root).write(request)


def test_layout_and_files(written) -> None:
    root, _, bundle = written
    rel = bundle.path.relative_to(root)
    assert rel.parts[:2] == ("jbi-01", "20261128")  # the camera's local date
    assert rel.parts[2].startswith("065959000_red_light_t7_")
    assert bundle.relpath == rel.as_posix()
    names = {p.name for p in bundle.path.iterdir()}
    assert names == {"overview.jpg", "original.png", "closeup.jpg", "plate.jpg", "clip.mp4", "manifest.json"}
    assert set(bundle.files) == names - {"manifest.json"}
    assert not [p for p in bundle.path.parent.iterdir() if p.name.startswith(builder.PARTIAL_PREFIX)]


def test_original_is_lossless(written) -> None:
    import cv2

    _, request, bundle = written
    original = cv2.imread(str(bundle.path / "original.png"), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(original, request.key_frame.image)


def test_manifest_content_and_hashes(written) -> None:
    _, request, bundle = written
    raw = bundle.manifest_path.read_bytes()
    assert builder.sha256_bytes(raw) == bundle.manifest_sha256
    m = json.loads(raw)
    assert m["schema_version"] == builder.SCHEMA_VERSION
    assert m["camera"]["id"] == "jbi-01" and m["camera"]["timezone"] == "Asia/Jakarta"
    assert m["time"]["utc"] == "2026-11-27T23:59:59.000+00:00"
    assert m["time"]["local"] == "2026-11-28T06:59:59.000+07:00"
    assert m["time"]["wall_clock_known"] is True
    v = m["violation"]
    assert (v["rule"], v["track_id"], v["vehicle_label"], v["article"], v["fine"]) == ("red_light", 7, "car", "287(2)", 500000)
    assert v["box"] == [40.0, 40.0, 80.0, 80.0] and v["related_track_ids"] == [8]
    assert v["details"] == {"signal": "red", "red_for_s": 2.5, "bad": None, "line": [0.0, 100.0, 160.0, 100.0]}
    p = m["plate"]
    assert p["text"] == "BH1234AB" and p["validity"] == "05.29"
    assert p["candidates"][1] == {"text": "BH1Z34AB", "confidence": 0.41, "raw": "", "frame_index": 8}
    assert m["models"] == {"detector": "sha256:abc", "plate_ocr": "sha256:def"}
    assert m["config_hash"] == "cfg123" and m["extra"] == {"run_id": "r1"}
    assert m["software"]["name"] == "etle" and m["software"]["version"]
    assert m["clip"]["frames"] == 20 and m["clip"]["fps"] == pytest.approx(10.0)
    for name, entry in m["files"].items():
        data = (bundle.path / name).read_bytes()
        assert entry == {"sha256": builder.sha256_bytes(data), "bytes": len(data)}
        assert bundle.files[name].sha256 == entry["sha256"]
    assert verify_bundle(bundle.path, manifest_sha256=bundle.manifest_sha256) == []


def test_clip_decodes(written) -> None:
    _, _, bundle = written
    with av.open(str(bundle.path / "clip.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert (stream.width, stream.height) == (W, H + 1)
        assert float(stream.average_rate or 0) == pytest.approx(10.0)
        frames = list(container.decode(video=0))
    assert len(frames) == 20
    # the violator's box is drawn in red on the clip frames
    first = frames[0].to_ndarray(format="bgr24")
    assert first[40:44, 20:40, 2].mean() > 150


def test_faststart(written) -> None:
    _, _, bundle = written
    data = (bundle.path / "clip.mp4").read_bytes()
    assert 0 <= data.find(b"moov") < data.find(b"mdat")


def test_mpeg4_fallback_and_fixed_fps(tmp_path: Path) -> None:
    writer = EvidenceWriter(tmp_path, clip_fps=5, video_codecs=("no-such-encoder", "mpeg4"))
    bundle = writer.write(make_request(n_clip=6))
    with av.open(str(bundle.path / "clip.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "mpeg4"
        assert float(stream.average_rate or 0) == pytest.approx(5.0)
        assert len(list(container.decode(video=0))) == 6
    assert json.loads(bundle.manifest_path.read_bytes())["clip"]["codec"] == "mpeg4"


def test_no_encoder_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="video encoders"):
        EvidenceWriter(tmp_path, video_codecs=("no-such-encoder",)).write(make_request(n_clip=2))
    assert not list(tmp_path.rglob("*.mp4"))


def test_without_plate_and_clip(tmp_path: Path) -> None:
    bundle = EvidenceWriter(tmp_path, original_format="jpg").write(make_request(n_clip=0, plate=NO_PLATE))
    assert set(bundle.files) == {"overview.jpg", "original.jpg", "closeup.jpg"}
    m = json.loads(bundle.manifest_path.read_bytes())
    assert m["clip"] is None and m["plate"]["text"] == "" and m["plate"]["candidates"] == []
    assert verify_bundle(bundle.path) == []


def test_duplicate_clip_frames_dropped_and_sorted(tmp_path: Path) -> None:
    request = make_request(n_clip=0)
    clip = tuple((make_frame(i), (car(i),)) for i in (3, 1, 2, 2, 0))
    bundle = EvidenceWriter(tmp_path).write(EvidenceRequest(**{**_fields(request), "clip": clip}))
    m = json.loads(bundle.manifest_path.read_bytes())
    assert (m["clip"]["frames"], m["clip"]["first_frame_index"], m["clip"]["last_frame_index"]) == (4, 0, 3)


def _fields(request: EvidenceRequest) -> dict:
    return {name: getattr(request, name) for name in EvidenceRequest.__dataclass_fields__}


def test_failure_mid_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self, request, path):
        path.write_bytes(b"half a clip")
        raise RuntimeError("encoder crashed")

    monkeypatch.setattr(EvidenceWriter, "_encode_clip", boom)
    with pytest.raises(RuntimeError, match="encoder crashed"):
        EvidenceWriter(tmp_path).write(make_request())
    day = tmp_path / "jbi-01" / "20261128"
    assert day.is_dir() and list(day.iterdir()) == []


def test_os_error_is_store_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="cannot create evidence folder"):
        EvidenceWriter(blocker).write(make_request(n_clip=0))

    real_replace = os.replace

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(builder.os, "replace", full_disk)
    with pytest.raises(StoreError, match="No space left"):
        EvidenceWriter(tmp_path / "ev").write(make_request(n_clip=0))
    monkeypatch.setattr(builder.os, "replace", real_replace)
    assert list((tmp_path / "ev" / "jbi-01" / "20261128").iterdir()) == []


def test_cleanup_partial(tmp_path: Path) -> None:
    day = tmp_path / "cam" / "20260101"
    stale = day / f"{builder.PARTIAL_PREFIX}000000000_x_t1_aaaa"
    fresh = day / f"{builder.PARTIAL_PREFIX}000000000_x_t2_bbbb"
    done = day / "000000000_x_t3_cccc"
    for folder in (stale, fresh, done):
        folder.mkdir(parents=True)
        (folder / "overview.jpg").write_bytes(b"x")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    assert cleanup_partial(tmp_path, older_than_s=600) == [stale]
    assert fresh.exists() and done.exists()
    assert cleanup_partial(tmp_path, older_than_s=0) == [fresh]
    assert done.exists()


def test_verify_detects_problems(tmp_path: Path) -> None:
    bundle = EvidenceWriter(tmp_path).write(make_request(n_clip=3))
    (bundle.path / "closeup.jpg").write_bytes(b"tampered")
    (bundle.path / "plate.jpg").unlink()
    (bundle.path / "notes.txt").write_text("?")
    overview = bundle.path / "overview.jpg"
    data = bytearray(overview.read_bytes())
    data[-3] ^= 0xFF
    overview.write_bytes(bytes(data))
    problems = verify_bundle(bundle.path, manifest_sha256="0" * 64)
    assert any(p.startswith("manifest.json: sha256 mismatch") for p in problems)
    assert "closeup.jpg: size mismatch" in " ".join(problems)
    assert "overview.jpg: sha256 mismatch" in problems
    assert "plate.jpg: missing" in problems
    assert "notes.txt: not listed in the manifest" in problems

    bundle.manifest_path.write_text("{not json")
    assert verify_bundle(bundle.path)[0].startswith("manifest.json: unparsable")
    bundle.manifest_path.unlink()
    assert verify_bundle(bundle.path)[0].startswith("manifest.json: missing")
    assert verify_bundle(tmp_path / "nope")[0].endswith("not a folder")


def test_two_writes_distinct_and_discard(tmp_path: Path) -> None:
    writer = EvidenceWriter(tmp_path)
    a = writer.write(make_request(n_clip=0))
    b = writer.write(make_request(n_clip=0))
    assert a.path != b.path and a.bundle_id != b.bundle_id
    discard_bundle(a.path)
    assert not a.path.exists() and b.path.exists()
    assert [p.name for p in a.path.parent.iterdir()] == [b.path.name]
    discard_bundle(a.path)  # already gone: no error


def test_camera_meta_from_mapping_and_validation() -> None:
    request = make_request(n_clip=0, camera={"id": "c9", "timezone": "Asia/Makassar"})
    assert request.camera == CameraMeta(id="c9", timezone="Asia/Makassar")
    with pytest.raises(ConfigError, match="unknown timezone"):
        CameraMeta(id="c", timezone="Mars/Olympus")
    with pytest.raises(ConfigError, match="unknown keys"):
        CameraMeta.from_mapping({"id": "c", "tz": "UTC"})
    with pytest.raises(ConfigError):
        CameraMeta(id=" ")


def test_writer_argument_validation(tmp_path: Path) -> None:
    for kwargs in ({"clip_fps": 0}, {"jpeg_quality": 0}, {"original_format": "bmp"}):
        with pytest.raises(ValueError):
            EvidenceWriter(tmp_path, **kwargs)  # type: ignore[arg-type]
