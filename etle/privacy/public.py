"""Public copies of evidence pictures: blurred, derived files beside the signed originals.

Every picture that leaves the officer's desk (the letter, the citizen page, exports) is a public
copy.  It lives in the bundle's ``public/`` folder with its own record, ``public/manifest.json``
(file, SHA-256, size, the original it was derived from and that original's SHA-256, how many
faces and plates were hidden and by which detectors).  The originals and the signed
``manifest.json`` are never touched, so the court's bundle still verifies; ``etle verify`` checks
the public copies against their own record (:mod:`etle.evidence.verify`).

:func:`public_image` makes the copies on demand (once per bundle; later calls return the file).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from etle.errors import EtleError, ModelError
from etle.evidence.builder import MANIFEST_NAME, PUBLIC_DIR, PUBLIC_MANIFEST
from etle.privacy.blur import BlurPlan, Scene, blur_regions, is_rider, plan_blur
from etle.types import Box, Detection

log = logging.getLogger(__name__)

SCHEMA = "etle.public"
PICTURES: tuple[str, ...] = ("overview.jpg", "original.png", "original.jpg", "closeup.jpg", "plate.jpg")
"""The bundle's pictures that get public copies (the clip does not: it never leaves the desk)."""
VEHICLE_LABELS = frozenset({"car", "motorcycle", "bus", "truck", "bicycle"})
CLOSEUP_MARGIN = 0.3  # etle.evidence.builder.EvidenceWriter's default


class PrivacyError(EtleError):
    """A public (blurred) copy cannot be made: the bundle, its original or a detector is missing
    or does not match; nothing that shows bystanders may leave the desk then."""

    exit_code = 7


class Finder(Protocol):
    def detect(self, image: np.ndarray) -> list[Detection]: ...


@dataclass(frozen=True, slots=True)
class Detectors:
    """The detectors a public copy is made with: ``faces`` (MTCNN), ``objects`` (the vehicle
    detector: persons and vehicles) and ``plates``; ``names`` are recorded in the public record."""

    faces: Finder
    objects: Finder
    plates: Finder
    names: Mapping[str, str]


_lock = threading.Lock()  # loading the detectors
_write_lock = threading.Lock()  # writing public copies (with a file lock across processes)


@lru_cache(maxsize=1)
def _default_detectors() -> Detectors:
    from etle.detect.detector import load_detector
    from etle.plate.detector import load_plate_detector
    from etle.privacy.faces import MtcnnConfig, MtcnnFaceDetector

    return Detectors(
        faces=MtcnnFaceDetector(MtcnnConfig(upscale=2.0)),
        objects=load_detector("vehicle-detector", conf_threshold=0.2),
        plates=load_plate_detector("tnkb", conf_threshold=0.1),
        names={"faces": "face-mtcnn (upscale 2)", "heads": "vehicle-detector person boxes",
               "objects": "vehicle-detector", "plates": "plate-detector-tnkb"},
    )


def default_detectors() -> Detectors:
    """The real detectors (loaded once per process); :class:`PrivacyError` when one is missing."""
    with _lock:
        try:
            return _default_detectors()
        except ModelError as exc:
            raise PrivacyError(f"cannot blur evidence pictures: {exc}") from exc


# --------------------------------------------------------------------------------------------
# the scene of a key frame


def _box(value: Any) -> Box | None:
    try:
        x1, y1, x2, y2 = (float(v) for v in value)
        return Box(x1, y1, x2, y2)
    except (TypeError, ValueError):
        return None


def _merge(primary: Sequence[Box], extra: Sequence[Box], iou: float = 0.5) -> tuple[Box, ...]:
    out = list(primary)
    for b in extra:
        if not any(b.iou(p) >= iou for p in out):
            out.append(b)
    return tuple(out)


def scene_from_manifest(manifest: Mapping[str, Any], detected: Sequence[Detection] = ()) -> Scene:
    """The key frame's scene from a bundle manifest (its objects, the violation, the plate) and
    the objects a detector found on the original (persons and vehicles the tracker missed).

    Riders: the persons the rule named (``details.riders``, or else ``related_track_ids``) and
    every person overlapping the ticketed vehicle (:func:`etle.privacy.blur.is_rider`)."""
    key = manifest.get("key_frame") or {}
    v = manifest.get("violation") or {}
    width, height = int(key.get("width") or 0), int(key.get("height") or 0)
    track = v.get("track_id")
    objects = [o for o in key.get("objects") or () if isinstance(o, Mapping)]
    vehicle = next((_box(o.get("box")) for o in objects if o.get("track_id") == track), None) or _box(v.get("box"))
    details = v.get("details") or {}
    named = {int(t) for t in (details.get("riders") or v.get("related_track_ids") or ()) if str(t).lstrip("-").isdigit()}
    persons_m = [(o.get("track_id"), _box(o.get("box"))) for o in objects if o.get("label") == "person"]
    persons = _merge([b for _, b in persons_m if b is not None],
                     [d.box for d in detected if d.label == "person"])
    vehicles = _merge([b for o in objects if o.get("label") in VEHICLE_LABELS and (b := _box(o.get("box"))) is not None],
                      [d.box for d in detected if d.label in VEHICLE_LABELS])
    riders = [b for t, b in persons_m if b is not None and t in named]
    if vehicle is not None:
        riders = list(_merge(riders, [p for p in persons if is_rider(p, vehicle)], iou=0.9))
    return Scene(
        width=width, height=height, vehicle=vehicle, vehicle_label=str(v.get("vehicle_label") or ""),
        plate=_box((manifest.get("plate") or {}).get("box")), riders=tuple(riders), persons=persons, vehicles=vehicles,
    )


def find_plates(image: np.ndarray, vehicles: Sequence[Box], detector: Finder, tile: int = 256) -> list[Detection]:
    """Plates in a frame: the plate detector on every vehicle's crop, as it is and grown by 10 %
    (the detector, trained on vehicle crops, finds some plates only in one of them), and on
    overlapping tiles of the whole frame (vehicles nobody detected), merged (IoU >= 0.4)."""
    h, w = image.shape[:2]
    found: list[Detection] = []
    windows = [v.expand(grow).clip(w, h).as_int() for v in vehicles for grow in (0.0, 0.1)]
    step = max(tile * 2 // 3, 1)
    for y in range(0, max(h - tile, 0) + step, step):
        for x in range(0, max(w - tile, 0) + step, step):
            windows.append((x, y, min(x + tile, w), min(y + tile, h)))
    for x1, y1, x2, y2 in windows:
        if x2 - x1 < 8 or y2 - y1 < 8:
            continue
        for d in detector.detect(np.ascontiguousarray(image[y1:y2, x1:x2])):
            found.append(Detection(d.box.offset(x1, y1), "plate", d.confidence))
    merged: list[Detection] = []
    for d in sorted(found, key=lambda d: -d.confidence):
        if not any(d.box.iou(m.box) >= 0.4 for m in merged):
            merged.append(d)
    return merged


def analyse(frame: np.ndarray, manifest: Mapping[str, Any], detectors: Detectors) -> tuple[Scene, BlurPlan]:
    """The scene of a key frame (BGR, the bundle's original) and what its public copies hide."""
    detected = detectors.objects.detect(frame)
    scene = replace(scene_from_manifest(manifest, detected), width=frame.shape[1], height=frame.shape[0])
    faces = detectors.faces.detect(frame)
    plates = find_plates(frame, scene.vehicles, detectors.plates)
    return scene, plan_blur(scene, faces, plates)


# --------------------------------------------------------------------------------------------
# public copies of a bundle


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_manifest(folder: Path) -> tuple[dict[str, Any], bytes]:
    try:
        raw = (folder / MANIFEST_NAME).read_bytes()
        manifest = json.loads(raw)
        if not isinstance(manifest.get("files"), dict):
            raise ValueError("no 'files'")
    except (OSError, ValueError) as exc:
        raise PrivacyError(f"{folder}: not an evidence bundle ({MANIFEST_NAME}: {exc})") from exc
    return manifest, raw


def _checked_original(folder: Path, manifest: Mapping[str, Any], name: str) -> bytes:
    """The bytes of one of the bundle's files, checked against the signed manifest."""
    entry = (manifest.get("files") or {}).get(name)
    if not isinstance(entry, Mapping):
        raise PrivacyError(f"{folder}: {name} is not in the bundle's manifest")
    try:
        data = (folder / name).read_bytes()
    except OSError as exc:
        raise PrivacyError(f"{folder}: {name} cannot be read ({exc.strerror or exc}); pruned?") from exc
    if _sha256(data) != entry.get("sha256"):
        raise PrivacyError(f"{folder}: {name} differs from the bundle's manifest (altered?); no public copy is made")
    return data


def _decode(data: bytes, what: str) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise PrivacyError(f"{what} cannot be decoded as a picture")
    return image


def _encode(image: np.ndarray, name: str) -> bytes:
    ext = Path(name).suffix.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, 90] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:
        raise PrivacyError(f"cannot encode the public copy of {name}")
    return buf.tobytes()


def closeup_offset(frame: np.ndarray, closeup: np.ndarray, vehicle: Box | None) -> tuple[int, int]:
    """Where the close-up's top-left corner lies in the frame: the writer's crop of the vehicle
    box when its size matches, else found by template matching (another margin)."""
    h, w = frame.shape[:2]
    ch, cw = closeup.shape[:2]
    if vehicle is not None:
        x1, y1, x2, y2 = vehicle.expand(CLOSEUP_MARGIN).clip(w, h).as_int()
        x1, y1 = min(x1, w - 2), min(y1, h - 2)
        x2, y2 = max(x2, x1 + 2), max(y2, y1 + 2)
        if (x2 - x1, y2 - y1) == (cw, ch):
            return x1, y1
    if ch > h or cw > w:
        raise PrivacyError("the close-up is larger than the key frame")
    scores = cv2.matchTemplate(frame, closeup, cv2.TM_SQDIFF)
    _, _, (x, y), _ = cv2.minMaxLoc(scores)
    return int(x), int(y)


@contextlib.contextmanager
def _bundle_lock(public: Path) -> Iterator[None]:
    """One writer of a bundle's public copies at a time (processes and threads)."""
    public.mkdir(exist_ok=True)
    with _write_lock, open(public / ".lock", "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_public_manifest(bundle_dir: Path | str) -> dict[str, Any] | None:
    """The bundle's ``public/manifest.json`` (None when there is none or it is unreadable)."""
    try:
        data = json.loads((Path(bundle_dir) / PUBLIC_DIR / PUBLIC_MANIFEST).read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("files"), dict) else None


def _current(bundle: Path, record: Mapping[str, Any] | None, manifest: Mapping[str, Any], name: str) -> bool:
    """Whether the public copy of ``name`` is there and matches its record and its original."""
    if record is None:
        return False
    entry = (record.get("files") or {}).get(name)
    if not isinstance(entry, Mapping):
        return False
    source = (manifest.get("files") or {}).get(name) or {}
    path = bundle / PUBLIC_DIR / name
    try:
        return entry.get("source_sha256") == source.get("sha256") and _sha256(path.read_bytes()) == entry.get("sha256")
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class PublicCopies:
    """What :func:`make_public` wrote: the bundle, the public files, faces and plates hidden."""

    bundle: Path
    files: Mapping[str, Path]
    faces: int
    heads: int
    plates: int
    made: bool


def make_public(bundle_dir: Path | str, *, detectors: Detectors | None = None, force: bool = False) -> PublicCopies:
    """Make the public copies of every picture of a bundle (see the module docstring); skipped
    when they are there and current unless ``force``.  Raises :class:`PrivacyError` when the
    bundle, its original or a detector is missing, or an original differs from the manifest."""
    bundle = Path(bundle_dir)
    manifest, raw = _read_manifest(bundle)
    listed = manifest["files"]
    names = [n for n in PICTURES if n in listed]
    public = bundle / PUBLIC_DIR
    with _bundle_lock(public):
        record = read_public_manifest(bundle)
        if not force and names and all(_current(bundle, record, manifest, n) for n in names):
            counts = (record or {}).get("hidden") or {}
            return PublicCopies(bundle, {n: public / n for n in names}, int(counts.get("faces", 0)),
                                int(counts.get("heads", 0)), int(counts.get("plates", 0)), made=False)
        original_name = next((n for n in ("original.png", "original.jpg") if n in listed), None)
        if original_name is None:
            raise PrivacyError(f"{bundle}: the bundle has no original key frame to find faces and plates on")
        frame = _decode(_checked_original(bundle, manifest, original_name), f"{bundle}/{original_name}")
        dets = detectors or default_detectors()
        scene, plan = analyse(frame, manifest, dets)
        files: dict[str, Any] = {}
        written: dict[str, Path] = {}
        for name in names:
            data = _checked_original(bundle, manifest, name)
            if name == "plate.jpg":  # the ticketed plate itself: nothing else is on it
                out = data
            else:
                image = _decode(data, f"{bundle}/{name}")
                offset = closeup_offset(frame, image, scene.vehicle) if name == "closeup.jpg" else (0, 0)
                out = _encode(blur_regions(image, plan.hide, offset=(float(offset[0]), float(offset[1]))), name)
            _write_atomic(public / name, out)
            written[name] = public / name
            files[name] = {"sha256": _sha256(out), "bytes": len(out), "source": name,
                           "source_sha256": listed[name]["sha256"]}
        hidden = {"faces": plan.count("face"), "heads": plan.count("head"), "plates": plan.count("plate")}
        doc = {
            "schema": SCHEMA,
            "schema_version": 1,
            "bundle_id": manifest.get("bundle_id"),
            "manifest_sha256": _sha256(raw),
            "created_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "detectors": dict(dets.names),
            "hidden": hidden,
            "kept": {"faces": sum(1 for r in plan.keep if r.kind == "face"),
                     "plates": sum(1 for r in plan.keep if r.kind == "plate")},
            "regions": [{"kind": r.kind, "source": r.source, "score": round(r.score, 3),
                         "box": [round(v, 1) for v in r.box.as_tuple()]} for r in plan.hide],
            "files": files,
        }
        _write_atomic(public / PUBLIC_MANIFEST, (json.dumps(doc, indent=2) + "\n").encode())
    log.info("public copies of %s: %d faces, %d heads, %d plates hidden", bundle.name, hidden["faces"],
             hidden["heads"], hidden["plates"])
    return PublicCopies(bundle, written, hidden["faces"], hidden["heads"], hidden["plates"], made=True)


def public_image(bundle_dir: Path, name: str) -> Path:
    """The public (blurred) copy of the bundle picture ``name`` (``overview.jpg``,
    ``original.png``, ``closeup.jpg``, ``plate.jpg``), made first when it is missing or stale.

    Raises :class:`PrivacyError` when it cannot be made: then the picture must not be shown.
    """
    if name not in PICTURES:
        raise PrivacyError(f"no public copy is made of {name!r} (pictures: {', '.join(PICTURES)})")
    bundle = Path(bundle_dir)
    manifest, _ = _read_manifest(bundle)
    if name not in manifest["files"]:
        raise PrivacyError(f"{bundle}: {name} is not in the bundle")
    if not _current(bundle, read_public_manifest(bundle), manifest, name):
        make_public(bundle)
    path = bundle / PUBLIC_DIR / name
    if not _current(bundle, read_public_manifest(bundle), manifest, name):
        raise PrivacyError(f"{bundle}: the public copy of {name} could not be made")
    return path
