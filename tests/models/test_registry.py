from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from etle.errors import ModelError
from etle.models import registry


@pytest.fixture()
def tmp_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def make(models: dict) -> Path:
        p = tmp_path / "manifest.yaml"
        p.write_text(yaml.safe_dump({"models": models}))
        monkeypatch.setenv("ETLE_MODEL_MANIFEST", str(p))
        monkeypatch.setenv("ETLE_MODEL_DIR", str(tmp_path / "cache"))
        registry._load_manifest.cache_clear()
        return p

    yield make
    registry._load_manifest.cache_clear()


def test_missing_package_names_what_to_install(tmp_manifest) -> None:
    tmp_manifest({"m": {"task": "detect", "format": "onnx", "file": "x.onnx",
                        "source": {"kind": "package", "package": "no-such-pkg", "version": "1.2", "path": "no_such_pkg/x.onnx"},
                        "sha256": "0" * 64}})
    with pytest.raises(ModelError, match=r"no-such-pkg==1.2"):
        registry.resolve("m")
    assert registry.status("m").ok is False


def test_local_file_hash_checked(tmp_manifest, tmp_path: Path) -> None:
    f = tmp_path / "w.onnx"
    f.write_bytes(b"weights")
    good = hashlib.sha256(b"weights").hexdigest()
    tmp_manifest({"ok": {"task": "detect", "format": "onnx", "file": "w.onnx", "source": {"kind": "local", "path": str(f)}, "sha256": good},
                  "bad": {"task": "detect", "format": "onnx", "file": "w.onnx", "source": {"kind": "local", "path": str(f)}, "sha256": "1" * 64}})
    assert registry.resolve("ok") == f
    with pytest.raises(ModelError, match="sha256"):
        registry.resolve("bad")


def test_export_needs_matching_record(tmp_manifest, tmp_path: Path) -> None:
    src = tmp_path / "src.pt"
    src.write_bytes(b"pt")
    tmp_manifest({
        "src": {"task": "d", "format": "pt", "file": "src.pt", "source": {"kind": "local", "path": str(src)}, "sha256": hashlib.sha256(b"pt").hexdigest()},
        "exp": {"task": "d", "format": "onnx", "file": "exp.onnx", "source": {"kind": "export", "from": "src"}},
    })
    with pytest.raises(ModelError, match="etle models prepare"):
        registry.resolve("exp")
    path = registry.locate("exp")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"onnx")
    registry.record_export(path, "src")
    assert registry.resolve("exp") == path
    path.write_bytes(b"onnx-tampered")
    with pytest.raises(ModelError, match="does not match"):
        registry.resolve("exp")


def test_unknown_model(tmp_manifest) -> None:
    tmp_manifest({})
    with pytest.raises(ModelError, match="unknown model"):
        registry.spec("nope")


def test_real_manifest_is_complete() -> None:
    registry._load_manifest.cache_clear()
    specs = registry.manifest()
    for name in ("vehicle-detector", "plate-detector", "plate-detector-pt", "ocr-rapidocr-rec"):
        assert name in specs
    for s in specs.values():
        assert s.licence, s.name
        if s.kind == "package":
            assert s.sha256 and s.source.get("version"), s.name


def test_every_model_trained_here_ships_in_the_wheel() -> None:
    """A ``repo`` model is found in the checkout's models/ or, installed, in etle/_data/: the
    wheel must carry each one (pyproject's force-include), with its committed file present."""
    import tomllib

    root = Path(__file__).resolve().parents[2]
    include = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    repo_models = {n: s for n, s in registry.manifest().items() if s.source.get("kind") == "repo"}
    assert {"plate-ocr-crnn", "ocr-rapidocr-rec-distant", "plate-detector-tnkb-pt", "helmet-classifier", "head-detector"} <= set(repo_models)
    for name, s in repo_models.items():
        rel = str(s.source["path"])
        assert include.get(f"models/{rel}") == f"etle/_data/{rel}", name
        assert (root / "models" / rel).is_file(), name


def test_an_export_made_by_another_recipe_is_made_again(tmp_manifest, tmp_path: Path) -> None:
    """A quantised model recorded without the manifest's ``reduce_range`` (made before 7-bit
    weights) is refused with the command that makes it again; the same recipe passes."""
    src = tmp_path / "src.onnx"
    src.write_bytes(b"float")
    tmp_manifest({
        "src": {"task": "d", "format": "onnx", "file": "src.onnx", "source": {"kind": "local", "path": str(src)},
                "sha256": hashlib.sha256(b"float").hexdigest()},
        "q": {"task": "d", "format": "onnx", "file": "q.onnx",
              "source": {"kind": "export", "from": "src", "method": "quantize-static", "reduce_range": True}},
    })
    path = registry.locate("q")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"int8")
    registry.record_export(path, "src", method="quantize-static")  # an older file: 8-bit weights
    with pytest.raises(ModelError, match=r"another recipe \(reduce_range: None.*etle models prepare"):
        registry.resolve("q")
    assert registry.status("q").ok is False
    registry.record_export(path, "src", method="quantize-static", reduce_range=False)
    with pytest.raises(ModelError, match="another recipe"):
        registry.resolve("q")
    registry.record_export(path, "src", method="quantize-static", reduce_range=True)
    assert registry.resolve("q") == path


def test_the_shipped_recipes_keep_the_plate_recogniser_at_7_bits() -> None:
    """The recogniser's reads must not depend on VNNI; the manifest and the quantiser agree."""
    from etle.train import export

    registry._load_manifest.cache_clear()
    assert registry.spec("ocr-rapidocr-rec-int8").source["reduce_range"] is export.PLATE_REDUCE_RANGE is True
    assert registry.spec("vehicle-detector-int8").source["reduce_range"] is export.VEHICLE_REDUCE_RANGE
