"""Camera files that travel with a batch job: their content, not a path.

A worker on another machine cannot read the driver's camera file, nor the files it names (the
view guard's reference view, a rule's model or registry).  :func:`pack_camera` validates the
file on the driver and packs its text with those files' bytes; :func:`unpack_camera` writes
them into a folder of the worker so that the camera file, unchanged, finds every file where its
relative paths point (absolute paths are rewritten to the copies).  The configuration hash
recorded with the evidence (:meth:`CameraConfig.config_hash`) hashes file contents, so it is
the same on every worker as on the driver.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from etle.rules.registry import file_fields
from etle.errors import ConfigError

#: (section, rule, field) of every file a camera file can name: the view guard's reference and
#: the files the rules declare (etle.rules.registry)
_FILE_FIELDS: tuple[tuple[str, ...], ...] = (("view_guard", "reference"), *(("rules", r, f) for r, f in file_fields()))
#: a camera's files travel through the cluster's object store: keep them small
MAX_FILE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CameraFile:
    """A file a camera file names: the value as written, and its bytes."""

    written: str
    data: bytes


@dataclass(frozen=True, slots=True)
class CameraBundle:
    """A camera file's name and text with the files it names; ``sha256`` identifies the lot."""

    name: str
    camera_id: str
    text: str
    files: tuple[CameraFile, ...]
    sha256: str


def _get(data: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _parse(text: str, where: str) -> dict[str, Any]:
    import yaml

    from etle.camera.config import _Loader

    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the top level must be a mapping of fields")
    return data


def pack_camera(path: Path) -> CameraBundle:
    """Validate ``path`` and pack it with the files it names (:class:`ConfigError` when bad)."""
    from etle.camera.config import load_camera

    camera = load_camera(path)  # validates, and resolves every file it names
    text = path.read_text(encoding="utf-8")
    data = _parse(text, str(path))
    files: list[CameraFile] = []
    digest = hashlib.sha256(text.encode("utf-8"))
    for field in _FILE_FIELDS:
        written = _get(data, field)
        if not isinstance(written, str) or not written:
            continue
        resolved = Path(written).expanduser()
        if not resolved.is_absolute():
            resolved = path.parent / resolved
        try:
            size = resolved.stat().st_size
            if size > MAX_FILE_BYTES:
                raise ConfigError(
                    f"{path}: {'.'.join(field)} names {resolved} ({size / 1e6:.0f} MB): too big to travel with a batch "
                    "job; save the reference view as an image (etle camera snapshot)"
                )
            blob = resolved.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read {resolved}: {exc.strerror or exc}") from None
        files.append(CameraFile(written=written, data=blob))
        digest.update(written.encode("utf-8"))
        digest.update(hashlib.sha256(blob).digest())
    return CameraBundle(name=path.name, camera_id=camera.id, text=text, files=tuple(files), sha256=digest.hexdigest())


def unpack_camera(bundle: CameraBundle, folder: Path) -> Path:
    """Write ``bundle`` under ``folder``; returns the camera file's path there."""
    ups = 0
    for f in bundle.files:
        if not Path(f.written).expanduser().is_absolute():
            parts = PurePosixPath(os.path.normpath(f.written.replace("\\", "/"))).parts
            ups = max(ups, sum(1 for p in parts if p == ".."))
    cam_dir = folder.joinpath("camera", *(f"d{i}" for i in range(ups)))
    cam_dir.mkdir(parents=True, exist_ok=True)
    text = bundle.text
    for i, f in enumerate(bundle.files):
        written = Path(f.written).expanduser()
        if written.is_absolute():
            target = folder / "abs" / str(i) / written.name
            text = text.replace(f.written, str(target))
        else:
            target = Path(os.path.normpath(cam_dir / f.written))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(f.data)
    camera_path = cam_dir / bundle.name
    camera_path.write_text(text, encoding="utf-8")
    return camera_path
