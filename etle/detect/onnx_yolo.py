"""YOLOv8-family detection models run with ONNX Runtime (the torch-free run path).

Ultralytics exports YOLOv8 detectors to ONNX with a single output of shape
``(1, 4 + num_classes, num_anchors)``: box centre/size in input pixels followed by per-class
scores, without NMS.  This module letterboxes an image, runs the session, decodes that output
and applies class-aware NMS with OpenCV.  The decoding is a dozen lines of NumPy and depends on
the export format rather than on any library, so it is written here; ONNX Runtime and OpenCV do
the heavy lifting.
"""

from __future__ import annotations

import ast
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from etle.errors import ModelError
from etle.types import Box, Detection

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How an image was scaled and padded into the network input."""

    scale: float
    pad_x: float
    pad_y: float


def letterbox(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping the aspect ratio and pad to ``size`` (w, h) with grey, as YOLO expects."""
    h, w = image.shape[:2]
    tw, th = size
    scale = min(tw / w, th / h)
    nw, nh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((th, tw, 3), 114, dtype=np.uint8)
    px, py = (tw - nw) // 2, (th - nh) // 2
    canvas[py : py + nh, px : px + nw] = resized
    return canvas, Letterbox(scale=scale, pad_x=float(px), pad_y=float(py))


def decode_yolov8(
    output: np.ndarray,
    lb: Letterbox,
    image_size: tuple[int, int],
    names: Sequence[str],
    conf_threshold: float,
    iou_threshold: float,
    keep: frozenset[str] | None = None,
) -> list[Detection]:
    """Turn a raw ``(1, 4+C, N)`` YOLOv8 output into detections in original image pixels."""
    pred = np.asarray(output)
    if pred.ndim == 3:
        pred = pred[0]
    rows = 4 + len(names) if names else None
    if (rows is not None and pred.shape[0] == rows) or (rows is None and pred.shape[0] < pred.shape[1]):
        pred = pred.T  # (4+C, N) -> (N, 4+C)
    if pred.shape[1] < 5:
        raise ModelError(f"unexpected YOLO output shape {output.shape}")
    scores_all = pred[:, 4:]
    class_ids = scores_all.argmax(axis=1)
    scores = scores_all[np.arange(len(class_ids)), class_ids]
    mask = scores >= conf_threshold
    if keep is not None:
        allowed = np.array([i < len(names) and names[i] in keep for i in range(scores_all.shape[1])])
        mask &= allowed[class_ids]
    if not mask.any():
        return []
    boxes_c = pred[mask, :4]
    scores = scores[mask]
    class_ids = class_ids[mask]
    w, h = image_size
    x1 = (boxes_c[:, 0] - boxes_c[:, 2] / 2 - lb.pad_x) / lb.scale
    y1 = (boxes_c[:, 1] - boxes_c[:, 3] / 2 - lb.pad_y) / lb.scale
    x2 = (boxes_c[:, 0] + boxes_c[:, 2] / 2 - lb.pad_x) / lb.scale
    y2 = (boxes_c[:, 1] + boxes_c[:, 3] / 2 - lb.pad_y) / lb.scale
    x1, x2 = np.clip(x1, 0, w), np.clip(x2, 0, w)
    y1, y2 = np.clip(y1, 0, h), np.clip(y2, 0, h)
    out: list[Detection] = []
    # class-aware NMS: offset boxes per class so that different classes never suppress each other
    offset = class_ids.astype(np.float32) * float(max(w, h) + 1)
    rects = np.stack([x1 + offset, y1, x2 - x1, y2 - y1], axis=1).astype(np.float32)
    idx = cv2.dnn.NMSBoxes(rects.tolist(), scores.astype(float).tolist(), conf_threshold, iou_threshold)
    for i in np.array(idx).reshape(-1):
        if x2[i] - x1[i] < 1 or y2[i] - y1[i] < 1:
            continue
        cid = int(class_ids[i])
        label = names[cid] if cid < len(names) else str(cid)
        out.append(Detection(Box(float(x1[i]), float(y1[i]), float(x2[i]), float(y2[i])), label, float(scores[i])))
    return out


def parse_names(meta: dict[str, str]) -> list[str]:
    """Read the class names an Ultralytics export stores in its ONNX metadata."""
    raw = meta.get("names")
    if not raw:
        return []
    try:
        parsed = ast.literal_eval(raw)
    except (ValueError, SyntaxError) as exc:
        raise ModelError(f"cannot parse class names in ONNX metadata: {exc}") from exc
    if isinstance(parsed, dict):
        return [str(parsed[k]) for k in sorted(parsed)]
    return [str(n) for n in parsed]


def _session(path: Path | bytes, threads: int | None):
    from etle.onnxrt import inference_session

    return inference_session(path, threads, what="ONNX model")


def rect_size(width: int, height: int, base: tuple[int, int], stride: int = 32) -> tuple[int, int]:
    """The smallest network input (w, h), multiples of ``stride``, that holds the image scaled to
    fit ``base`` -- e.g. 640x360 video in a 640x640 model -> 640x384 instead of 640x640."""
    scale = min(base[0] / width, base[1] / height)
    nw, nh = max(1, round(width * scale)), max(1, round(height * scale))
    return (min(base[0], -(-nw // stride) * stride), min(base[1], -(-nh // stride) * stride))


def yolov8_anchors(width: int, height: int, strides: Sequence[int] = (8, 16, 32)) -> tuple[np.ndarray, np.ndarray]:
    """YOLOv8's anchor points (1, 2, N) and strides (1, N) for an input of ``width`` x ``height``
    (cell centres, row-major per level, levels in stride order: what the export bakes in)."""
    points, steps = [], []
    for st in strides:
        fh, fw = height // st, width // st
        sy, sx = np.meshgrid(np.arange(fh) + 0.5, np.arange(fw) + 0.5, indexing="ij")
        points.append(np.stack([sx, sy], -1).reshape(-1, 2))
        steps.append(np.full(fh * fw, float(st)))
    return np.concatenate(points).T[None].astype(np.float32), np.concatenate(steps)[None].astype(np.float32)


def reshape_yolov8(model: Any, width: int, height: int) -> bytes | None:
    """A copy of a YOLOv8 ONNX export (float or int8 with a float head) for a ``width`` x
    ``height`` input, serialised; ``None`` when the graph is not the layout this understands.

    A static export bakes the input size into its detection head: the anchor points and strides
    (constants of N = 8400 anchors for 640x640) and the reshapes of the box distribution
    (``[1, 4, 16, 8400]``).  The convolutions do not care about the size, so replacing those
    constants (anchors recomputed with :func:`yolov8_anchors`, reshapes to ``-1``) gives the same
    network for a rectangular input -- what ultralytics itself does with ``rect`` inference.
    Done here because neither onnxruntime nor onnx offers it.
    """
    import onnx
    from onnx import numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    dims = m.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4 or not dims[2].dim_value or not dims[3].dim_value:
        return None
    n_old = sum((dims[2].dim_value // st) * (dims[3].dim_value // st) for st in (8, 16, 32))
    anchors, strides = yolov8_anchors(width, height)
    n_new = anchors.shape[2]
    replaced = {"anchors": 0, "strides": 0, "reshape": 0}

    def swap(tensor: Any) -> Any:
        """The tensor for the new size, or None where it does not depend on the size."""
        arr = numpy_helper.to_array(tensor)
        new = None
        if arr.dtype == np.float32 and arr.shape == (1, 2, n_old):
            new, key = anchors, "anchors"
        elif arr.dtype == np.float32 and arr.shape == (1, n_old):
            new, key = strides, "strides"
        elif arr.dtype == np.int64 and arr.ndim == 1 and 3 <= arr.size <= 4 and arr[-1] == n_old:
            new, key = np.concatenate([arr[:-1], [-1]]).astype(np.int64), "reshape"
        if new is None:
            return None
        replaced[key] += 1
        return numpy_helper.from_array(new, tensor.name)

    # the constants live in initializers (most exports) or in Constant nodes (older exporters)
    for i, init in enumerate(m.graph.initializer):
        t = swap(init)
        if t is not None:
            m.graph.initializer[i].CopyFrom(t)
    for node in m.graph.node:
        if node.op_type != "Constant":
            continue
        for attr in node.attribute:
            if attr.name == "value":
                t = swap(attr.t)
                if t is not None:
                    attr.t.CopyFrom(t)
    if replaced["anchors"] < 1 or replaced["strides"] < 1 or replaced["reshape"] < 1:
        return None
    dims[2].dim_value, dims[3].dim_value = height, width
    out_dims = m.graph.output[0].type.tensor_type.shape.dim
    if len(out_dims) == 3:
        out_dims[2].dim_value = n_new
    del m.graph.value_info[:]  # intermediate shapes of the old size; onnxruntime infers them again
    return m.SerializeToString()


class OnnxYolo:
    """A YOLOv8 detector exported to ONNX, run on the CPU with ONNX Runtime."""

    def __init__(
        self,
        path: str | Path,
        *,
        names: Sequence[str] | None = None,
        conf_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        keep: frozenset[str] | None = None,
        threads: int | None = None,
        rect: bool = True,
        max_sessions: int = 2,
    ) -> None:
        self.path = Path(path)
        self.threads = threads
        #: run rectangular inputs (e.g. 640x384 for 16:9 video) when the graph can be reshaped
        self.rect = rect
        #: reshaped sessions kept at most (one per input size); other sizes run the square input
        self.max_sessions = max_sessions
        self._sessions: dict[tuple[int, int], Any] = {}
        #: batch-dynamic sessions by input size (None: that size runs one frame per call)
        self._batch_sessions: dict[tuple[int, int], Any] = {}
        self._proto: Any = None
        if not self.path.is_file():
            raise ModelError(f"model file not found: {self.path}")
        self.session = _session(self.path, threads)
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        self.names = list(names) if names else parse_names(meta)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_dtype = np.float16 if "float16" in inp.type else np.float32
        shape = inp.shape
        h = shape[2] if isinstance(shape[2], int) else 640
        w = shape[3] if isinstance(shape[3], int) else 640
        self.input_size = (int(w), int(h))
        self.conf_threshold = conf_threshold
        self.iou_threshold = iou_threshold
        self.keep = keep

    def _session_for(self, image: np.ndarray) -> tuple[Any, tuple[int, int]]:
        """The session and input size for this image's shape (rectangular when possible)."""
        if not self.rect:
            return self.session, self.input_size
        h, w = image.shape[:2]
        size = rect_size(w, h, self.input_size)
        if size == self.input_size:
            return self.session, size
        if size not in self._sessions:
            if len(self._sessions) >= self.max_sessions:
                # each reshaped session holds its own weights and buffers (tens of MB): inputs of
                # many shapes (e.g. vehicle crops) would grow memory without bound
                return self.session, self.input_size
            self._sessions[size] = self._reshaped(size)
        sess = self._sessions[size]
        return (sess, size) if sess is not None else (self.session, self.input_size)

    def _reshaped(self, size: tuple[int, int]) -> Any:
        try:
            import onnx

            if self._proto is None:
                self._proto = onnx.load(str(self.path))
            data = reshape_yolov8(self._proto, *size)
        except ImportError:
            data = None
        if data is None:
            log.info("%s: cannot run rectangular inputs; using %dx%d", self.path.name, *self.input_size)
            self.rect = False
            return None
        log.debug("%s: running %dx%d inputs", self.path.name, *size)
        return _session(data, self.threads)

    def _batch_session_for(self, size: tuple[int, int], sample: np.ndarray) -> Any:
        """A session of this model taking any batch at input ``size``, checked once against
        single-frame runs on ``sample``; ``None`` where the graph cannot be made so."""
        if size in self._batch_sessions:
            return self._batch_sessions[size]
        session = None
        try:
            import onnx

            from etle.detect.batching import dynamic_batch

            if self._proto is None:
                self._proto = onnx.load(str(self.path))
            proto = self._proto
            if size != self.input_size:
                data = reshape_yolov8(proto, *size)
                proto = onnx.load_from_string(data) if data is not None else None
            batched = dynamic_batch(proto) if proto is not None else None
            if batched is not None:
                session = _session(batched.SerializeToString(), self.threads)
                session = session if self._same_as_single(session, size, sample) else None
        except ImportError:
            session = None
        if session is None:
            log.info("%s: cannot batch %dx%d inputs; one frame per call", self.path.name, *size)
        self._batch_sessions[size] = session
        return session

    def _same_as_single(self, batched: Any, size: tuple[int, int], sample: np.ndarray) -> bool:
        """Whether ``batched`` gives each image of a batch what one call per image gives."""
        single, single_size = self._session_for(sample)
        if single_size != size:
            return False
        images = [sample, np.ascontiguousarray(sample[::-1, ::-1])]
        blobs = [self.preprocess(im, size)[0] for im in images]
        many = batched.run(None, {self.input_name: np.concatenate(blobs)})[0]
        for k, blob in enumerate(blobs):
            one = single.run(None, {self.input_name: blob})[0]
            if many.shape[1:] != one.shape[1:] or not np.allclose(many[k], one[0], rtol=1e-3, atol=1e-2):
                log.warning("%s: a batch of %dx%d inputs differs from single runs; one frame per call", self.path.name, *size)
                return False
        return True

    def raw_many(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The model's undecoded output, (4 + classes) x anchors in float32, of each image after
        :meth:`preprocess` at the input size :meth:`detect` would use; images of one size run as one
        batch where the graph allows (the same rows as one call per image).  For callers that
        decode the rows themselves (e.g. :class:`etle.helmet.heads.HeadDetector`)."""
        out: list[np.ndarray | None] = [None] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault(self._session_for(image)[1], []).append(i)
        for size, idx in groups.items():
            blobs = [self.preprocess(images[i], size)[0] for i in idx]
            batched = self._batch_session_for(size, images[idx[0]]) if len(idx) > 1 else None
            if batched is not None:
                raw = batched.run(None, {self.input_name: np.concatenate(blobs)})[0]
                for k, i in enumerate(idx):
                    out[i] = np.asarray(raw[k], np.float32)
                continue
            single, _ = self._session_for(images[idx[0]])
            for blob, i in zip(blobs, idx, strict=True):
                out[i] = np.asarray(single.run(None, {self.input_name: blob})[0][0], np.float32)
        return [o for o in out if o is not None]

    def detect_many(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        """Detections of each image, images of one input size run as one batch (see
        :mod:`etle.detect.batching`); the same detections as :meth:`detect` on each image."""
        out: list[list[Detection] | None] = [None] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images):
            groups.setdefault(self._session_for(image)[1], []).append(i)
        for size, idx in groups.items():
            session = self._batch_session_for(size, images[idx[0]]) if len(idx) > 1 else None
            if session is None:
                for i in idx:
                    out[i] = self.detect(images[i])
                continue
            prepared = [self.preprocess(images[i], size) for i in idx]
            (raw,) = session.run(None, {self.input_name: np.concatenate([b for b, _ in prepared])})[:1]
            for k, i in enumerate(idx):
                h, w = images[i].shape[:2]
                out[i] = decode_yolov8(
                    raw[k : k + 1].astype(np.float32), prepared[k][1], (w, h), self.names,
                    self.conf_threshold, self.iou_threshold, self.keep,
                )
        return [o if o is not None else [] for o in out]

    def preprocess(self, image: np.ndarray, size: tuple[int, int] | None = None) -> tuple[np.ndarray, Letterbox]:
        padded, lb = letterbox(image, size or self.input_size)
        blob = cv2.dnn.blobFromImage(padded, 1 / 255.0, swapRB=True).astype(self.input_dtype)
        return blob, lb

    def detect(self, image: np.ndarray) -> list[Detection]:
        session, size = self._session_for(image)
        blob, lb = self.preprocess(image, size)
        (out,) = session.run(None, {self.input_name: blob})[:1]
        h, w = image.shape[:2]
        return decode_yolov8(
            out.astype(np.float32), lb, (w, h), self.names, self.conf_threshold, self.iou_threshold, self.keep
        )
