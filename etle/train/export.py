"""Derive the models that ``etle models prepare`` makes from installed weights.

``vehicle-detector-int8`` is the COCO detector quantised to int8 with ONNX Runtime's static
quantisation (see :func:`quantize_vehicle_detector`), for CPU edge boxes.

``plate-detector`` is the ``plate-detector-pt`` checkpoint (ultralytics YOLOv8n, from the
``pyplatex`` wheel) exported to ONNX, so that the run path needs neither torch nor ultralytics.
The export runs once, offline: ultralytics is told not to download or pip-install anything
(:mod:`etle.detect.ultralytics_adapter`), and needs the ``onnx`` package to write the graph (no
``onnxslim``: the graph is not simplified).  The file lands at ``registry.locate("plate-detector")``
with a sidecar record tying it to the source weights' hash.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from etle.errors import MissingDependencyError, ModelError
from etle.models import registry
from etle.models.registry import DEFAULT_PLATE_IMGSZ, plate_detector_imgsz  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

PLATE_DETECTOR = "plate-detector"
PLATE_DETECTOR_SOURCE = "plate-detector-pt"
PLATE_DETECTOR_TNKB = "plate-detector-tnkb"


def export_plate_detector(force: bool = False, imgsz: int | None = None, name: str = PLATE_DETECTOR) -> Path:
    """Export a ``.pt`` plate detector (``name``'s ``source.from`` in the manifest) to ONNX once;
    returns the verified ONNX path.

    Skips the work when a valid export is already there (unless ``force``).  Raises
    :class:`MissingDependencyError` without ultralytics/onnx, :class:`ModelError` when the
    source weights are missing or the export fails.
    """
    if not force:
        try:
            return registry.resolve(name)
        except ModelError:
            pass
    src_name = str(registry.spec(name).source["from"])
    size = int(imgsz or plate_detector_imgsz(name))
    source = registry.resolve(src_name)
    for module, package in (("ultralytics", "ultralytics"), ("onnx", "onnx")):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(package, "ultralytics", "exporting the plate detector to ONNX")
    from etle.detect.ultralytics_adapter import load_yolo

    target = registry.locate(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="etle-export-") as tmp:
        # ultralytics writes the export beside its input: work on a copy, never in site-packages
        work = Path(tmp) / source.name
        shutil.copyfile(source, work)
        model = load_yolo(work, purpose="exporting the plate detector to ONNX")
        try:
            with warnings.catch_warnings():
                # torch warns about its legacy (TorchScript) ONNX exporter and about tracing
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                warnings.filterwarnings("ignore", message=".*Converting a tensor to a Python boolean.*")
                out = model.export(format="onnx", imgsz=size, simplify=False, dynamic=False, half=False, device="cpu")
        except Exception as exc:  # ultralytics raises many untyped errors
            raise ModelError(f"ONNX export of {src_name} failed: {exc}") from exc
        produced = Path(str(out))
        if not produced.is_file():
            raise ModelError(f"ONNX export of {src_name} wrote no file ({produced})")
        partial = target.with_suffix(target.suffix + ".part")
        shutil.copyfile(produced, partial)
        partial.replace(target)
    registry.record_export(target, src_name, imgsz=size, seconds=round(time.perf_counter() - t0, 2))
    log.info("exported %s to %s (imgsz %d) in %.1fs", src_name, target, size, time.perf_counter() - t0)
    return registry.resolve(name)


# ----------------------------------------------------------------------------------------------
# int8 quantisation of the vehicle detector

VEHICLE_DETECTOR_INT8 = "vehicle-detector-int8"


def _head_prefix(model: Any) -> str | None:
    """The name prefix of a YOLOv8 export's detection head (``/model.22/``): its last module."""
    best: tuple[int, str] | None = None
    for node in model.graph.node:
        parts = node.name.split("/")
        if len(parts) > 2 and parts[1].startswith("model."):
            try:
                idx = int(parts[1].split(".")[1])
            except (IndexError, ValueError):
                continue
            if best is None or idx > best[0]:
                best = (idx, f"/{parts[1]}/")
    return best[1] if best else None


def calibration_frames(video: Path, count: int, size: tuple[int, int]) -> list[np.ndarray]:
    """``count`` network inputs (1x3xHxW float32, letterboxed) spread evenly over ``video``."""
    from etle.detect.onnx_yolo import letterbox
    from etle.ingest.sources import open_source

    src = open_source(str(video))
    total = max(int(src.info.frame_count or 0), 1)
    step = max(total // max(count, 1), 1)
    out: list[np.ndarray] = []
    for frame in src.frames():
        if frame.index % step == 0:
            padded, _ = letterbox(frame.image, size)
            out.append(np.ascontiguousarray(padded[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / 255.0)
            if len(out) >= count:
                break
    if not out:
        raise ModelError(f"no frames could be read from the calibration video {video}")
    return out


#: The plate recogniser's weights are quantised to 7 bits (``reduce_range``).  With 8-bit int8
#: weights, CPUs without VNNI (AVX2, AVX-512 before Cascade Lake, AMD Zen 2/3: many edge boxes)
#: sum pairs of uint8 x int8 products in 16 bits (``vpmaddubsw``), which saturate, so the same
#: model reads other characters there than on a VNNI CPU (ONNX Runtime's quantisation guide and
#: OpenVINO's "saturation issue" page describe it).  ``scripts/int8_cpu_check.py`` runs the
#: models natively (a VNNI Xeon) and under ``qemu-x86_64 -cpu Haswell``: the distant recogniser's
#: 8-bit file changed 3.4 % of the per-step characters (probabilities by up to 1.0), every 7-bit
#: recogniser gives the same outputs (docs/accuracy.md).
PLATE_REDUCE_RANGE = True
#: The vehicle detector keeps 8-bit weights: 7 bits cost it the weak top-down cars of the
#: red-light clips and added false tickets on the Cilacap clip (fast profile, VNNI Xeon), and
#: uint8 weights (no saturation either) lost the same cars at about 0.6 of the speed.  Its results on a
#: CPU without VNNI can therefore differ (``etle models check`` says which CPU this is).
VEHICLE_REDUCE_RANGE = False


def _quantize_qdq(src: Path, out: Path, input_name: str, batch: list[np.ndarray], what: str, *,
                  reduce_range: bool, **options: Any) -> None:
    """ONNX Runtime static quantisation to QDQ (int8 weights per channel, 7 bits of them with
    ``reduce_range``; uint8 activations), min/max ranges from ``batch``; ``options`` go to
    ``quantize_static`` (nodes or op types)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter([{input_name: x} for x in batch])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger().disabled, was = True, logging.getLogger().disabled  # ORT logs to root
        try:
            quantize_static(
                str(src), str(out), _Reader(), quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                reduce_range=reduce_range, **options,
            )
        except Exception as exc:  # onnxruntime raises untyped errors
            raise ModelError(f"int8 quantisation of {what} failed: {exc}") from exc
        finally:
            logging.getLogger().disabled = was


def quantize_vehicle_detector(force: bool = False, calibration: Path | None = None, frames: int | None = None) -> Path:
    """Quantise ``vehicle-detector`` to int8 once (ONNX Runtime static quantisation, QDQ).

    Weights per channel (int8), activations uint8, calibrated with min/max over frames of a video
    (the manifest's ``calibration``, relative to the repository, or ``calibration``).  The YOLOv8
    detection head (box decoding: DFL softmax, anchors, concatenation) is left in float: quantised,
    its box coordinates collapse.  Measured on 98 frames of the shared clips: 445 of 449 boxes of
    the float model kept (same class, IoU >= 0.5) at about half the time per frame.
    """
    if not force:
        try:
            return registry.resolve(VEHICLE_DETECTOR_INT8)
        except ModelError:
            pass
    if importlib.util.find_spec("onnx") is None:
        raise MissingDependencyError("onnx", "core", "quantising the vehicle detector")
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    s = registry.spec(VEHICLE_DETECTOR_INT8)
    source_name = str(s.source["from"])
    source = registry.resolve(source_name)
    video = calibration
    if video is None:
        rel = Path(str(s.source.get("calibration", "")))
        video = rel if rel.is_absolute() else registry.manifest_path().resolve().parent.parent / rel
    if not Path(video).is_file():
        raise ModelError(
            f"calibration video {video} not found (it ships in the repository's sample_videos/); "
            "pass one: etle models prepare --calibration VIDEO"
        )
    count = int(frames or s.source.get("frames", 26))
    base = onnx.load(str(source))
    inp = base.graph.input[0]
    dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    size = (int(dims[3] or 640), int(dims[2] or 640))
    head = _head_prefix(base)
    batch = calibration_frames(Path(video), count, size)

    target = registry.locate(VEHICLE_DETECTOR_INT8)
    target.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="etle-quant-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(source), str(pre))
        model = onnx.load(str(pre))
        exclude = [n.name for n in model.graph.node if head and n.name.startswith(head) and n.op_type != "Conv"]
        out = Path(tmp) / "int8.onnx"
        _quantize_qdq(pre, out, inp.name, batch, source_name, reduce_range=VEHICLE_REDUCE_RANGE, nodes_to_exclude=exclude)
        q = onnx.load(str(out))
        del q.metadata_props[:]
        for prop in base.metadata_props:  # class names, stride, image size from the export
            q.metadata_props.add(key=prop.key, value=prop.value)
        partial = target.with_suffix(target.suffix + ".part")
        onnx.save(q, str(partial))
        partial.replace(target)
    registry.record_export(
        target, source_name, method="quantize-static", reduce_range=VEHICLE_REDUCE_RANGE, calibration=str(video), frames=len(batch),
        excluded_nodes=len(exclude), seconds=round(time.perf_counter() - t0, 2),
    )
    log.info("quantised %s to %s in %.1fs", source_name, target, time.perf_counter() - t0)
    return registry.resolve(VEHICLE_DETECTOR_INT8)


# ----------------------------------------------------------------------------------------------
# int8 quantisation of the plate text recogniser

PLATE_RECOGNISER_INT8 = "ocr-rapidocr-rec-int8"  # etle.plate.readers.INT8_MODEL


def plate_calibration_inputs(count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` recogniser inputs (1x3x48x320 float32): the registration view that the rapidocr
    reader reads on Indonesian plates (their upper part), cut from plates *rendered* by
    :mod:`etle.train.synth` (never photographs)."""
    from etle.train import synth
    from etle.plate.lines import find_lines
    from etle.plate.readers import _CtcRecogniser, plate_views

    try:
        fonts = synth.find_fonts()
    except synth.FontNotFoundError as exc:
        raise ModelError(f"cannot render calibration plates: {exc}") from exc
    prep = _CtcRecogniser.__new__(_CtcRecogniser)  # only its preprocessing: no model needed
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    for _ in range(count):
        img = synth.render_sample(rng, fonts).image
        view = plate_views(img, find_lines(img), ("top",))[0][1]
        out.append(prep._prepare(view, _CtcRecogniser.min_width)[None])
    return out


def quantize_plate_recogniser(force: bool = False, samples: int | None = None) -> Path:
    """Quantise the PP-OCR plate recogniser (``ocr-rapidocr-rec``) to int8 once.

    The classifier is first cut to the plate symbols (:func:`etle.plate.readers.plate_head`) and
    stays float; the convolutions are quantised (ONNX Runtime static quantisation, QDQ, int8
    weights per channel, uint8 activations) with min/max ranges from the colour registration
    views of plates rendered by :mod:`etle.train.synth` (:func:`plate_calibration_inputs`); the
    attention blocks stay float (quantising them too, or the convolutions dynamically, cost
    accuracy or time).  Measured with the reader's defaults on the 92 ILPR crops (registration
    read as inverted grey) and the 147 generic crops (colour): 81/92 (``rapidocr+crnn``: 84/92)
    and 127/147, against 81/92 (83/92) and 124/147 for the float model, at about three quarters
    of its time -- with 8-bit weights on a VNNI CPU.  Those read 69/92 (``+crnn``) on a CI machine
    on 2026-12-06, most likely one without VNNI (:data:`PLATE_REDUCE_RANGE`); with 7-bit weights the
    figures are in docs/accuracy.md (82/92 on 2026-12-06) and hold on every x86 CPU.  The result depends on the calibration set: other seeds, inverted, dark-on-light
    or mixed views and percentile ranges gave 77-84/92 with ``+crnn`` at the same speed, so the
    set and seed are fixed (manifest ``samples``/``seed``) and a test checks that the int8 model
    reads freshly rendered plates as the float one does.
    """
    if not force:
        try:
            return registry.resolve(PLATE_RECOGNISER_INT8)
        except ModelError:
            pass
    if importlib.util.find_spec("onnx") is None:
        raise MissingDependencyError("onnx", "core", "quantising the plate recogniser")
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from etle.plate.readers import plate_head

    s = registry.spec(PLATE_RECOGNISER_INT8)
    source_name = str(s.source["from"])
    source = registry.resolve(source_name)
    count = int(samples or s.source.get("samples", 200))
    seed = int(s.source.get("seed", 0))
    cut = plate_head(source)
    if cut is None:
        raise ModelError(f"{source_name} ({source}) does not end in the PP-OCR classifier; cannot cut it to the plate symbols")
    base = onnx.load_from_string(cut)
    # QDQ with per-channel axes needs opset 13; the PaddleOCR export is opset 11
    base = version_converter.convert_version(base, max(13, max((o.version for o in base.opset_import if o.domain in ("", "ai.onnx")), default=13)))
    batch = plate_calibration_inputs(count, seed)
    name = base.graph.input[0].name
    target = registry.locate(PLATE_RECOGNISER_INT8)
    target.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="etle-quant-") as tmp:
        raw, pre = Path(tmp) / "cut.onnx", Path(tmp) / "pre.onnx"
        onnx.save(base, str(raw))
        out = Path(tmp) / "int8.onnx"
        try:
            # the graph's dynamic width defeats symbolic shape inference: ONNX's own is enough
            quant_pre_process(str(raw), str(pre), skip_symbolic_shape=True)
        except Exception as exc:  # onnxruntime raises untyped errors
            raise ModelError(f"int8 quantisation of {source_name} failed: {exc}") from exc
        _quantize_qdq(pre, out, name, batch, source_name, reduce_range=PLATE_REDUCE_RANGE, op_types_to_quantize=["Conv"])
        q = onnx.load(str(out))
        del q.metadata_props[:]
        for prop in base.metadata_props:  # the (cut) character list
            q.metadata_props.add(key=prop.key, value=prop.value)
        partial = target.with_suffix(target.suffix + ".part")
        onnx.save(q, str(partial))
        partial.replace(target)
    registry.record_export(
        target, source_name, method="quantize-static", reduce_range=PLATE_REDUCE_RANGE, calibration="etle.train.synth", samples=len(batch), seed=seed,
        seconds=round(time.perf_counter() - t0, 2),
    )
    log.info("quantised %s to %s in %.1fs", source_name, target, time.perf_counter() - t0)
    return registry.resolve(PLATE_RECOGNISER_INT8)


# ----------------------------------------------------------------------------------------------
# the MTCNN face detector (privacy blurring) exported to ONNX

FACE_NETS: tuple[str, ...] = ("face-mtcnn-pnet", "face-mtcnn-rnet", "face-mtcnn-onet")
"""The three stages of MTCNN (proposal, refine, output) as the manifest names their ONNX files;
each one's ``source.from`` is the ``facenet-pytorch`` state dict it is exported from."""


def _mtcnn_module(name: str) -> Any:
    """The facenet-pytorch network class for ``name`` (PNet, RNet or ONet), without weights."""
    from facenet_pytorch.models import mtcnn

    cls = {"face-mtcnn-pnet": mtcnn.PNet, "face-mtcnn-rnet": mtcnn.RNet, "face-mtcnn-onet": mtcnn.ONet}[name]
    return cls(pretrained=False)


def export_face_detector(force: bool = False) -> tuple[Path, ...]:
    """Export facenet-pytorch's MTCNN (P-, R- and O-net state dicts from its wheel) to three ONNX
    files once, so that :mod:`etle.privacy.faces` runs the cascade with ONNX Runtime and never
    needs torch.  The P-net takes any image size (the pyramid), R- and O-net any batch of 24x24
    and 48x48 crops.  Raises :class:`MissingDependencyError` without torch / facenet-pytorch and
    :class:`ModelError` when the weights are missing or the export fails.
    """
    if not force:
        try:
            return tuple(registry.resolve(n) for n in FACE_NETS)
        except ModelError:
            pass
    for module, package in (("torch", "torch"), ("facenet_pytorch", "facenet-pytorch"), ("onnx", "onnx")):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(package, "ultralytics", "exporting the face detector to ONNX (scripts/setup.sh "
                                         "installs facenet-pytorch --no-deps from models/requirements-weights.txt)")
    import torch

    out: list[Path] = []
    for name in FACE_NETS:
        src_name = str(registry.spec(name).source["from"])
        source = registry.resolve(src_name)
        target = registry.locate(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        net = _mtcnn_module(name)
        try:
            net.load_state_dict(torch.load(str(source), map_location="cpu", weights_only=True))
        except Exception as exc:  # torch raises untyped errors
            raise ModelError(f"cannot load {src_name} ({source}): {exc}") from exc
        net.eval()
        if name == "face-mtcnn-pnet":
            dummy = torch.zeros(1, 3, 48, 64)
            axes = {"input": {0: "n", 2: "h", 3: "w"}, "reg": {0: "n", 2: "oh", 3: "ow"}, "prob": {0: "n", 2: "oh", 3: "ow"}}
            outputs = ["reg", "prob"]
        elif name == "face-mtcnn-rnet":
            dummy = torch.zeros(2, 3, 24, 24)
            axes = {"input": {0: "n"}, "reg": {0: "n"}, "prob": {0: "n"}}
            outputs = ["reg", "prob"]
        else:
            dummy = torch.zeros(2, 3, 48, 48)
            axes = {"input": {0: "n"}, "reg": {0: "n"}, "points": {0: "n"}, "prob": {0: "n"}}
            outputs = ["reg", "points", "prob"]
        with tempfile.TemporaryDirectory(prefix="etle-export-") as tmp:
            raw = Path(tmp) / target.name
            try:
                with warnings.catch_warnings(), torch.no_grad():
                    warnings.simplefilter("ignore")
                    torch.onnx.export(net, (dummy,), str(raw), input_names=["input"], output_names=outputs,
                                      dynamic_axes=axes, opset_version=17, dynamo=False)
            except Exception as exc:  # torch raises untyped errors
                raise ModelError(f"ONNX export of {src_name} failed: {exc}") from exc
            partial = target.with_suffix(target.suffix + ".part")
            shutil.copyfile(raw, partial)
            partial.replace(target)
        registry.record_export(target, src_name, method="torch.onnx.export", opset=17,
                               seconds=round(time.perf_counter() - t0, 2))
        log.info("exported %s to %s", src_name, target)
        out.append(registry.resolve(name))
    return tuple(out)
