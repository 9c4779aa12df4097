"""Evidence bundles: one folder of pictures, a clip and a hashed manifest per violation.

Layout (the date and time are the camera's local time)::

    <root>/<camera_id>/<YYYYMMDD>/<HHMMSSmmm>_<rule>_t<track>_<shortid>/
        overview.jpg   annotated key picture (all boxes, the violator strong, a caption panel)
        original.png   the key frame exactly as decoded (lossless; ``original.jpg`` if configured)
        closeup.jpg    the violating vehicle
        plate.jpg      the chosen plate crop (only when there is one)
        clip.mp4       H.264 yuv420p (mpeg4 where libx264 is missing) with the violator boxed
        manifest.json  what, where, when, plate, models, sha256 + size of every file above, and
                       the camera chain link (sequence number, previous manifest's sha256)
        manifest.sig   Ed25519 signature of manifest.json (when the writer has a site key)
        pruned.json    only after retention removed the media of a rejected ticket
        offloaded.json only on an edge box that removed the media of a ticket the central store
                       holds, to free disk space (etle.evidence.offload)
        public/        blurred copies of the pictures for letters and the citizen page, with
                       their own public/manifest.json (etle.privacy; not signed, derived)

A bundle is written into a hidden sibling folder (``.partial-<name>``) and renamed into place
with :func:`os.replace` only when every file is written and synced, so a crash never leaves a
half-written bundle under its final name; :func:`cleanup_partial` removes the leftovers.
Manifests are chained per camera (:mod:`etle.evidence.chain`) and signed
(:mod:`etle.evidence.signing`).  :func:`verify_bundle` re-hashes one bundle against its
manifest; :mod:`etle.evidence.verify` checks whole evidence stores, chains, signatures and tickets.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import secrets
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import date, datetime, timezone
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import av
import cv2
import numpy as np

from etle import __version__
from etle.errors import ConfigError, StoreError
from etle.evidence import annotate
from etle.evidence.annotate import ZoneOverlay
from etle.evidence.chain import ChainLink, ManifestChain, camera_folder
from etle.evidence.folders import PARTIAL_PREFIX, discard_bundle  # noqa: F401 - discard_bundle re-exported
from etle.evidence.ring import RingEntry
from etle.types import NO_PLATE, Box, Frame, PlateRead, PlateResult, TrackedObject, Violation

log = logging.getLogger(__name__)

SCHEMA = "etle.evidence"
SCHEMA_VERSION = 2
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
PRUNED_NAME = "pruned.json"
OFFLOADED_NAME = "offloaded.json"
SIDE_FILES = frozenset({SIGNATURE_NAME, PRUNED_NAME, OFFLOADED_NAME})
"""Files of a bundle that the manifest cannot list (they are made after it)."""
PUBLIC_DIR = "public"
"""The bundle's folder of public (blurred) copies of its pictures (:mod:`etle.privacy`): derived
files with their own record, never listed in the signed manifest."""
PUBLIC_MANIFEST = "manifest.json"
"""The record of the public copies, inside :data:`PUBLIC_DIR`."""
FILE_ROLES = MappingProxyType({
    "overview.jpg": "overview", "original.png": "original", "original.jpg": "original",
    "closeup.jpg": "closeup", "plate.jpg": "plate", "clip.mp4": "clip",
    MANIFEST_NAME: "manifest", SIGNATURE_NAME: "signature",
})
VIDEO_CODECS: tuple[str, ...] = ("libx264", "mpeg4")
"""Clip encoders in order of preference; the first one PyAV can open is used."""


# --------------------------------------------------------------------------------------------
# records


@dataclass(frozen=True, slots=True)
class CameraMeta:
    """What the evidence says about the camera.  ``timezone`` is an IANA name (Asia/Jakarta)."""

    id: str
    name: str = ""
    location: str = ""
    lat: float | None = None
    lon: float | None = None
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if not str(self.id).strip():
            raise ConfigError("camera id must not be empty")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"camera {self.id}: unknown timezone {self.timezone!r}") from exc

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def label(self) -> str:
        """``name (id) - location`` for captions."""
        head = f"{self.name} ({self.id})" if self.name else self.id
        return f"{head} - {self.location}" if self.location else head

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> CameraMeta:
        known = {"id", "name", "location", "lat", "lon", "timezone"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"camera meta has unknown keys {unknown}; known: {sorted(known)}")
        return cls(**{k: data[k] for k in known if k in data})

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "location": self.location,
            "lat": self.lat,
            "lon": self.lon,
            "timezone": self.timezone,
        }


def _freeze(data: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(data or {}))


@dataclass(frozen=True, slots=True)
class EvidenceRequest:
    """Everything one bundle is made from.

    ``clip`` is the ``(frame, objects)`` sequence around the violation (e.g. from
    :meth:`FrameRing.between`); ``models`` maps model names to their hashes (or small dicts);
    ``extra`` is copied into the manifest under ``"extra"``.
    """

    violation: Violation
    camera: CameraMeta
    key_frame: Frame
    key_objects: tuple[TrackedObject, ...] = ()
    clip: tuple[RingEntry, ...] = ()
    plate: PlateResult = NO_PLATE
    article: str | None = None
    fine: int | None = None
    models: Mapping[str, Any] = field(default_factory=dict)
    software_version: str = __version__
    config_hash: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    zones: ZoneOverlay | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        camera: Any = self.camera
        if not isinstance(camera, CameraMeta):
            object.__setattr__(self, "camera", CameraMeta.from_mapping(camera))
        object.__setattr__(self, "key_objects", tuple(self.key_objects))
        object.__setattr__(self, "clip", tuple((f, tuple(objs)) for f, objs in self.clip))
        object.__setattr__(self, "models", _freeze(self.models))
        object.__setattr__(self, "extra", _freeze(self.extra))


@dataclass(frozen=True, slots=True)
class FileDigest:
    sha256: str
    bytes: int


@dataclass(frozen=True, slots=True)
class EvidenceBundle:
    """A written bundle.  ``relpath`` is ``path`` relative to the writer's root (POSIX form).

    ``files`` are the files the manifest lists; ``chain_seq`` is the bundle's place in its
    camera's chain (None when the writer does not chain); ``signature`` the digest of
    ``manifest.sig`` (None when unsigned).
    """

    path: Path
    relpath: str
    bundle_id: str
    manifest_path: Path
    manifest_sha256: str
    files: Mapping[str, FileDigest]
    manifest_bytes: int = 0
    chain_seq: int | None = None
    key_id: str | None = None
    signature: FileDigest | None = None

    def all_files(self) -> dict[str, FileDigest]:
        """Every file of the bundle: the listed ones, the manifest and its signature."""
        out = dict(self.files)
        out[MANIFEST_NAME] = FileDigest(self.manifest_sha256, self.manifest_bytes)
        if self.signature is not None:
            out[SIGNATURE_NAME] = self.signature
        return out

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", _freeze(self.files))


# --------------------------------------------------------------------------------------------
# helpers


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _slug(text: str) -> str:
    return camera_folder(text)


def to_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def local_time_text(moment: datetime) -> str:
    """``2026-11-28 10:04:05.123 WIB`` for captions."""
    return f"{moment:%Y-%m-%d %H:%M:%S}.{moment.microsecond // 1000:03d} {moment.tzname() or ''}".strip()


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: mappings, sequences, numpy, datetimes, boxes, dataclasses.

    Non-finite floats become ``None``; anything unknown becomes its ``str``.
    """
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Box):
        return [jsonable(v) for v in value.as_tuple()]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((jsonable(v) for v in value), key=repr)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        return jsonable(asdict(value))
    return str(value)


def _encode_image(image: np.ndarray, ext: Literal[".jpg", ".png"], jpeg_quality: int) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if ext == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:
        raise StoreError(f"could not encode a {ext} image of shape {image.shape}")
    return buf.tobytes()


def _write_synced(path: Path, data: bytes) -> FileDigest:
    with open(path, "xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return FileDigest(sha256=sha256_bytes(data), bytes=len(data))


def _fsync_path(path: Path) -> None:
    """fsync a file or a directory (directories where the OS allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _plate_crop(plate: PlateResult) -> np.ndarray | None:
    reads: list[PlateRead] = ([plate.best] if plate.best is not None else []) + list(plate.candidates)
    for read in reads:
        if read.crop is not None and read.crop.size > 0:
            return read.crop
    return None


def _estimate_fps(clip: Sequence[RingEntry]) -> float:
    pts = np.array([f.pts for f, _ in clip], dtype=np.float64)
    steps = np.diff(pts)
    steps = steps[steps > 1e-6]
    if steps.size == 0:
        return 10.0
    return float(min(max(1.0 / float(np.median(steps)), 1.0), 120.0))


def _even(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` resized to the clip's size when needed, padded with black to even dimensions."""
    if image.shape[1] != width or image.shape[0] != height:
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    pad_w, pad_h = width % 2, height % 2
    if pad_w or pad_h:
        image = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    return np.ascontiguousarray(image)


def pick_video_codec(preferred: Sequence[str] = VIDEO_CODECS) -> str:
    """The first of ``preferred`` that PyAV can encode with."""
    for name in preferred:
        try:
            av.codec.Codec(name, "w")
        except Exception:  # noqa: BLE001 - PyAV raises several types for a missing encoder
            log.debug("video encoder %s not available", name)
            continue
        return name
    raise StoreError(f"none of the video encoders {list(preferred)} is available in PyAV")


# --------------------------------------------------------------------------------------------
# writer


class EvidenceWriter:
    """Writes evidence bundles under ``root``.

    ``clip_fps`` fixes the clip frame rate (default: estimated from the frames' pts, so a
    pipeline that skips frames still gets a real-time clip).  ``original_format`` chooses a
    lossless PNG (default) or a JPEG for the unannotated key frame.  ``signer`` (a
    :class:`etle.evidence.signing.ManifestSigner`) signs every manifest; ``chained`` links
    manifests per camera (:class:`etle.evidence.chain.ManifestChain` on ``root``).
    """

    def __init__(
        self,
        root: Path | str,
        *,
        clip_fps: float | None = None,
        jpeg_quality: int = 90,
        original_format: Literal["png", "jpg"] = "png",
        closeup_margin: float = 0.3,
        video_codecs: Sequence[str] = VIDEO_CODECS,
        crf: int = 23,
        signer: Any | None = None,
        chained: bool = True,
    ) -> None:
        if clip_fps is not None and not clip_fps > 0:
            raise ValueError(f"clip_fps must be > 0, got {clip_fps!r}")
        if not 1 <= jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality!r}")
        if original_format not in ("png", "jpg"):
            raise ValueError(f"original_format must be 'png' or 'jpg', got {original_format!r}")
        self._root = Path(root)
        self._clip_fps = clip_fps
        self._jpeg_quality = int(jpeg_quality)
        self._original_ext: Literal[".jpg", ".png"] = ".png" if original_format == "png" else ".jpg"
        self._closeup_margin = float(closeup_margin)
        self._video_codecs = tuple(video_codecs)
        self._crf = int(crf)
        self._codec: str | None = None
        self.signer = signer
        self.chain: ManifestChain | None = ManifestChain(self._root) if chained else None

    @property
    def root(self) -> Path:
        return self._root

    def _video_codec(self) -> str:
        if self._codec is None:
            self._codec = pick_video_codec(self._video_codecs)
            log.debug("evidence clips use the %s encoder", self._codec)
        return self._codec

    def bundle_dir(self, request: EvidenceRequest, short_id: str) -> Path:
        """Where the bundle of ``request`` goes (its parent is created by :meth:`write`)."""
        v = request.violation
        local = to_utc(v.timestamp).astimezone(request.camera.zone)
        name = (
            f"{local:%H%M%S}{local.microsecond // 1000:03d}_{_slug(v.rule)}_t{v.track_id}_{short_id}"
        )
        return self._root / _slug(request.camera.id) / f"{local:%Y%m%d}" / name

    def write(self, request: EvidenceRequest, *, link: ChainLink | None = None) -> EvidenceBundle:
        """Write the bundle of ``request`` atomically and return where it is and its hashes.

        ``link`` is the chain place held by the caller (:meth:`ManifestChain.extend`), which
        then commits it; without one a chaining writer takes and commits the next place itself.
        Raises :class:`StoreError` when the folder cannot be written (disk full, permissions);
        nothing is left under the final name on any failure.
        """
        if link is None and self.chain is not None:
            with self.chain.extend(request.camera.id) as own:
                bundle = self._write(request, own)
                own.commit(bundle.manifest_sha256, bundle.relpath)
                return bundle
        return self._write(request, link)

    def _write(self, request: EvidenceRequest, link: ChainLink | None) -> EvidenceBundle:
        bundle_id = secrets.token_hex(16)
        final = self.bundle_dir(request, bundle_id[:8])
        partial = final.with_name(PARTIAL_PREFIX + final.name)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            partial.mkdir()
        except OSError as exc:
            raise StoreError(f"cannot create evidence folder {partial}: {exc}") from exc
        try:
            files = self._write_files(request, partial)
            manifest = self._manifest(request, bundle_id, files, link)
            data = (json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n").encode()
            _write_synced(partial / MANIFEST_NAME, data)
            signature = _write_synced(partial / SIGNATURE_NAME, self.signer.sign(data)) if self.signer else None
            _fsync_path(partial)
            if link is not None:
                link.mark_pending(final.relative_to(self._root).as_posix())
            os.replace(partial, final)
            _fsync_path(final.parent)
        except BaseException as exc:
            shutil.rmtree(partial, ignore_errors=True)
            if isinstance(exc, OSError):
                raise StoreError(f"cannot write evidence bundle {final}: {exc}") from exc
            raise
        log.info("evidence written: %s", final)
        return EvidenceBundle(
            path=final,
            relpath=final.relative_to(self._root).as_posix(),
            bundle_id=bundle_id,
            manifest_path=final / MANIFEST_NAME,
            manifest_sha256=sha256_bytes(data),
            files=files,
            manifest_bytes=len(data),
            chain_seq=link.seq if link is not None else None,
            key_id=self.signer.key_id if self.signer else None,
            signature=signature,
        )

    # -- the parts ---------------------------------------------------------------------------

    def _write_files(self, request: EvidenceRequest, folder: Path) -> dict[str, FileDigest]:
        v = request.violation
        cam = request.camera
        local = to_utc(v.timestamp).astimezone(cam.zone)
        extra_lines = []
        if request.article or request.fine is not None:
            fine = f"max fine Rp {request.fine:,}" if request.fine is not None else ""
            extra_lines.append(" | ".join(p for p in (f"art. {request.article}" if request.article else "", fine) if p))
        if not request.plate.empty:
            extra_lines.append(f"plate {request.plate.text} ({request.plate.confidence:.2f})")
        files: dict[str, FileDigest] = {}
        q = self._jpeg_quality

        picture = annotate.overview(
            request.key_frame,
            request.key_objects,
            v,
            cam.label,
            local_time_text(local),
            extra_lines=extra_lines,
            zones=request.zones,
        )
        files["overview.jpg"] = _write_synced(folder / "overview.jpg", _encode_image(picture, ".jpg", q))
        original = "original" + self._original_ext
        files[original] = _write_synced(
            folder / original, _encode_image(request.key_frame.image, self._original_ext, 95)
        )
        box = next((o.box for o in request.key_objects if o.track_id == v.track_id), v.box)
        crop = annotate.closeup(request.key_frame, box, self._closeup_margin)
        files["closeup.jpg"] = _write_synced(folder / "closeup.jpg", _encode_image(crop, ".jpg", q))
        plate = _plate_crop(request.plate)
        if plate is not None:
            files["plate.jpg"] = _write_synced(folder / "plate.jpg", _encode_image(plate, ".jpg", max(q, 95)))
        if request.clip:
            clip_path = folder / "clip.mp4"
            self._encode_clip(request, clip_path)
            _fsync_path(clip_path)
            files["clip.mp4"] = FileDigest(sha256=sha256_file(clip_path), bytes=clip_path.stat().st_size)
        return files

    def _clip_entries(self, request: EvidenceRequest) -> list[RingEntry]:
        seen: set[int] = set()
        entries = []
        for frame, objs in sorted(request.clip, key=lambda e: (e[0].pts, e[0].index)):
            if frame.index in seen:
                continue
            seen.add(frame.index)
            entries.append((frame, objs))
        return entries

    def clip_fps(self, request: EvidenceRequest) -> float:
        return self._clip_fps or _estimate_fps(self._clip_entries(request))

    def _encode_clip(self, request: EvidenceRequest, path: Path) -> None:
        entries = self._clip_entries(request)
        v = request.violation
        fps = self.clip_fps(request)
        rate = Fraction(fps).limit_denominator(1001)
        width, height = entries[0][0].width, entries[0][0].height
        codec = self._video_codec()
        with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
            stream = out.add_stream(codec, rate=rate)
            if not isinstance(stream, av.video.stream.VideoStream):
                raise StoreError(f"{codec} is not a video encoder")
            stream.width, stream.height = width + width % 2, height + height % 2
            stream.pix_fmt = "yuv420p"
            if codec == "libx264":
                stream.options = {"crf": str(self._crf), "preset": "veryfast"}
            else:
                stream.bit_rate = int(max(1_000_000, stream.width * stream.height * float(rate) * 0.2))
            for i, (frame, objs) in enumerate(entries):
                image = annotate.draw_tracks(
                    frame.image, objs, v.track_id, label=v.rule, related_ids=v.related_track_ids
                )
                vf = av.VideoFrame.from_ndarray(_even(image, width, height), format="bgr24")
                vf.pts = i
                for packet in stream.encode(vf):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)

    def _manifest(
        self, request: EvidenceRequest, bundle_id: str, files: Mapping[str, FileDigest], link: ChainLink | None = None
    ) -> dict[str, Any]:
        v = request.violation
        cam = request.camera
        utc = to_utc(v.timestamp)
        local = utc.astimezone(cam.zone)
        plate = request.plate
        entries = self._clip_entries(request) if request.clip else []
        clip: dict[str, Any] | None = None
        if entries:
            clip = {
                "file": "clip.mp4",
                "frames": len(entries),
                "fps": self.clip_fps(request),
                "codec": self._video_codec(),
                "first_frame_index": entries[0][0].index,
                "last_frame_index": entries[-1][0].index,
                "first_pts": entries[0][0].pts,
                "last_pts": entries[-1][0].pts,
            }
        manifest: dict[str, Any] = {
            "schema": SCHEMA,
            "schema_version": SCHEMA_VERSION,
            "bundle_id": bundle_id,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "camera": cam.as_dict(),
            "source": request.key_frame.source,
            "time": {
                "utc": utc.isoformat(timespec="milliseconds"),
                "local": local.isoformat(timespec="milliseconds"),
                "timezone": cam.timezone,
                "wall_clock_known": request.key_frame.wall_start is not None,
                "frame_index": v.frame_index,
                "pts": v.pts,
            },
            "violation": {
                "rule": v.rule,
                "article": request.article,
                "fine": request.fine,
                "track_id": v.track_id,
                "vehicle_label": v.label,
                "box": v.box,
                "related_track_ids": list(v.related_track_ids),
                "details": v.details,
            },
            "key_frame": {
                "index": request.key_frame.index,
                "pts": request.key_frame.pts,
                "width": request.key_frame.width,
                "height": request.key_frame.height,
                "objects": [
                    {"track_id": o.track_id, "label": o.label, "confidence": o.confidence, "box": o.box}
                    for o in request.key_objects
                ],
            },
            "plate": {
                "text": plate.text,
                "confidence": plate.confidence,
                "validity": plate.best.validity if plate.best is not None else None,
                "box": plate.best.box if plate.best is not None else None,
                "candidates": [
                    {"text": c.text, "confidence": c.confidence, "raw": c.raw, "frame_index": c.frame_index}
                    for c in plate.candidates
                ],
            },
            "clip": clip,
            "files": {name: {"sha256": d.sha256, "bytes": d.bytes} for name, d in sorted(files.items())},
            "software": {"name": "etle", "version": request.software_version},
            "models": request.models,
            "config_hash": request.config_hash,
            "extra": request.extra,
            "chain": (
                {"camera_id": cam.id, "seq": link.seq, "prev_manifest_sha256": link.prev_sha256}
                if link is not None else None
            ),
            "signing": {"alg": "Ed25519", "key_id": self.signer.key_id} if self.signer else None,
        }
        return jsonable(manifest)


# --------------------------------------------------------------------------------------------
# maintenance


def verify_bundle(path: Path | str, *, manifest_sha256: str | None = None) -> list[str]:
    """Problems of the bundle at ``path`` (empty when it is intact).

    Checks that the manifest parses and (when given) has ``manifest_sha256``, that every file it
    lists exists with its size and sha256, and that no unlisted file is present (the signature
    and a retention record are allowed).  Signatures and chains are checked by
    :mod:`etle.evidence.verify`.
    """
    folder = Path(path)
    if not folder.is_dir():
        return [f"{folder}: not a folder"]
    manifest_file = folder / MANIFEST_NAME
    try:
        raw = manifest_file.read_bytes()
    except OSError as exc:
        return [f"{MANIFEST_NAME}: missing or unreadable ({exc.strerror or exc})"]
    problems: list[str] = []
    if manifest_sha256 is not None and sha256_bytes(raw) != manifest_sha256:
        problems.append(f"{MANIFEST_NAME}: sha256 mismatch (expected {manifest_sha256})")
    try:
        manifest = json.loads(raw)
        listed = manifest["files"]
        if not isinstance(listed, dict):
            raise TypeError("'files' is not an object")
    except (ValueError, KeyError, TypeError) as exc:
        return problems + [f"{MANIFEST_NAME}: unparsable ({exc})"]
    for name, entry in sorted(listed.items()):
        target = folder / name
        if Path(name).name != name or not target.is_file():
            problems.append(f"{name}: missing")
            continue
        try:
            size, digest = int(entry["bytes"]), str(entry["sha256"])
        except (KeyError, TypeError, ValueError):
            problems.append(f"{name}: manifest entry unparsable")
            continue
        if target.stat().st_size != size:
            problems.append(f"{name}: size mismatch ({target.stat().st_size} != {size})")
        elif sha256_file(target) != digest:
            problems.append(f"{name}: sha256 mismatch")
    for extra in sorted(p.name for p in folder.iterdir()):
        if extra == PUBLIC_DIR and (folder / extra).is_dir():
            continue  # derived public copies, checked by etle verify against their own record
        if extra != MANIFEST_NAME and extra not in listed and extra not in SIDE_FILES:
            problems.append(f"{extra}: not listed in the manifest")
    return problems


def cleanup_partial(root: Path | str, *, older_than_s: float = 600.0) -> list[Path]:
    """Remove the temporary folders of interrupted writes under ``root``; return them.

    Only folders last modified more than ``older_than_s`` seconds ago are removed, so a writer
    in another process is not disturbed (pass 0 at start-up when no other writer runs).
    """
    now = time.time()
    removed = []
    for partial in Path(root).glob(f"*/*/{PARTIAL_PREFIX}*"):
        try:
            if not partial.is_dir() or now - partial.stat().st_mtime < older_than_s:
                continue
        except OSError:
            continue
        shutil.rmtree(partial, ignore_errors=True)
        if not partial.exists():
            log.info("removed partial evidence folder %s", partial)
            removed.append(partial)
    return removed
