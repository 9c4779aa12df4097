"""Detection batched across streams: several pipelines share one detector, and the frames they
hand in at about the same time run as one batch (one ONNX Runtime call).

One GPU watching several cameras is mostly idle when each stream calls the network with one
frame: a batch of N frames costs little more than one.  :class:`BatchingDetector` collects the
frames that the streams' threads hand in within a few milliseconds (at most one per stream,
at most ``max_batch``) and runs them together; each stream gets its own detections back.  On a
CPU the gain is small (ONNX Runtime already uses every core for one frame); the figures of
``scripts/gpu_bench.sh`` and ``etle run --streams`` say what it buys where.

Written here because no library does it for an in-process pipeline: ONNX Runtime runs a batch
but does not collect one from threads, and Ray Serve's ``@serve.batch`` serves HTTP/actor
requests, not frames of threads in one process.  The collector is a queue and a thread; the
results travel in :class:`concurrent.futures.Future`.

:func:`dynamic_batch` makes a batch-1 YOLOv8 export accept any batch: Ultralytics' static
exports bake ``1`` into the input and into their reshapes (``[1, 4, 16, 8400]``); ONNX's
Reshape copies a dimension given as ``0``, so the leading ``1`` of each reshape becomes ``0``.
:meth:`etle.detect.onnx_yolo.OnnxYolo.detect_many` checks the result once against single-frame
runs and falls back to one call per frame where they differ.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np

from etle.errors import ModelError
from etle.types import Detection

log = logging.getLogger(__name__)


class BatchDetector(Protocol):
    """A detector that can run several images at once (one list of detections per image)."""

    def detect_many(self, images: Sequence[np.ndarray]) -> list[list[Detection]]: ...


def dynamic_batch(model: Any) -> Any | None:
    """A copy of an ONNX ``ModelProto`` whose first input and outputs take any batch size, or
    ``None`` when the graph is not one this understands (no 4-D image input, or a reshape whose
    shape is computed at run time and so cannot be rewritten here)."""
    from onnx import ModelProto, numpy_helper

    m = ModelProto()
    m.CopyFrom(model)
    graph = m.graph
    inputs = [i for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    if not inputs or len(inputs[0].type.tensor_type.shape.dim) != 4:
        return None
    dim = inputs[0].type.tensor_type.shape.dim[0]
    if dim.HasField("dim_param"):
        return m  # already dynamic
    dim.ClearField("dim_value")
    dim.dim_param = "batch"
    for out in graph.output:
        dims = out.type.tensor_type.shape.dim
        if len(dims) and dims[0].HasField("dim_value") and dims[0].dim_value == 1:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "batch"
    shapes = {n.input[1] for n in graph.node if n.op_type == "Reshape" and len(n.input) > 1}
    found: set[str] = set()

    def leading_zero(tensor: Any) -> Any | None:
        arr = numpy_helper.to_array(tensor)
        if arr.dtype != np.int64 or arr.ndim != 1 or arr.size < 2 or arr[0] != 1:
            return None
        return numpy_helper.from_array(np.concatenate([[0], arr[1:]]).astype(np.int64), tensor.name)

    for i, init in enumerate(graph.initializer):
        if init.name in shapes:
            found.add(init.name)
            t = leading_zero(init)
            if t is not None:
                graph.initializer[i].CopyFrom(t)
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] in shapes:
            found.add(node.output[0])
            for attr in node.attribute:
                if attr.name == "value":
                    t = leading_zero(attr.t)
                    if t is not None:
                        attr.t.CopyFrom(t)
    if found != shapes:
        return None  # a reshape's shape comes from the graph itself: leave such a model alone
    del graph.value_info[:]  # intermediate shapes of batch 1; onnxruntime infers them again
    return m


@dataclass
class BatchStats:
    """What a :class:`BatchingDetector` has run so far."""

    batches: int = 0
    frames: int = 0
    #: batch size -> how many batches of that size
    sizes: dict[int, int] = field(default_factory=dict)

    @property
    def mean_batch(self) -> float:
        return self.frames / self.batches if self.batches else 0.0


@dataclass
class _Request:
    image: np.ndarray
    future: "Future[list[Detection]]"


_STOP = object()


class BatchingDetector:
    """One detector shared by several streams; frames handed in together run as one batch.

    ``inner`` is a detector with ``detect_many`` (e.g. :class:`~etle.detect.onnx_yolo.OnnxYolo`)
    or a plain one (then each frame runs alone, still from one thread).  Each stream takes its
    own :meth:`stream` (a :class:`~etle.detect.detector.Detector`) and closes it when done, so
    the collector stops waiting for it.  A batch runs when every open stream has handed in a
    frame, when ``max_batch`` frames wait, or ``max_wait_s`` after its first frame.
    """

    def __init__(self, inner: Any, *, max_batch: int = 8, max_wait_s: float = 0.005) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.inner = inner
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.stats = BatchStats()
        self._queue: "queue.Queue[Any]" = queue.Queue()
        self._lock = threading.Lock()
        self._open = 0
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="etle-batch-detect", daemon=True)
        self._thread.start()

    # -- the streams' side
    def stream(self) -> "StreamDetector":
        with self._lock:
            if self._closed:
                raise ModelError("the shared detector is closed")
            self._open += 1
        return StreamDetector(self)

    def _release(self) -> None:
        with self._lock:
            self._open = max(0, self._open - 1)
        self._queue.put(None)  # wake the collector: a batch waiting for this stream can run now

    def submit(self, image: np.ndarray) -> "Future[list[Detection]]":
        fut: "Future[list[Detection]]" = Future()
        with self._lock:  # a frame is queued before the stop mark or refused, never lost
            if self._closed:
                fut.set_exception(ModelError("the shared detector is closed"))
                return fut
            self._queue.put(_Request(image, fut))
        return fut

    def close(self) -> None:
        """Stop the collector (frames already handed in still run)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join()

    def __enter__(self) -> "BatchingDetector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the collector
    def _serve(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is _STOP:
                break
            if item is None:
                continue
            batch = [item]
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch:
                with self._lock:
                    wanted = max(1, self._open)
                if len(batch) >= wanted:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    nxt = self._queue.get(timeout=left)
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stopping = True
                    break
                if nxt is not None:
                    batch.append(nxt)
            self._run(batch)
        # after close: anything still queued runs, so no stream waits for ever
        rest = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Request):
                rest.append(item)
        for i in range(0, len(rest), self.max_batch):
            self._run(rest[i : i + self.max_batch])

    def _run(self, batch: list[_Request]) -> None:
        images = [r.image for r in batch]
        try:
            many = getattr(self.inner, "detect_many", None)
            results = many(images) if many is not None else [self.inner.detect(im) for im in images]
            if len(results) != len(batch):
                raise ModelError(f"the detector returned {len(results)} results for {len(batch)} images")
        except BaseException as exc:  # handed to every waiting stream, which raises it
            for r in batch:
                r.future.set_exception(exc)
            return
        self.stats.batches += 1
        self.stats.frames += len(batch)
        self.stats.sizes[len(batch)] = self.stats.sizes.get(len(batch), 0) + 1
        for r, dets in zip(batch, results):
            r.future.set_result(dets)


class StreamDetector:
    """One stream's view of a :class:`BatchingDetector`: a plain ``detect(image)``."""

    def __init__(self, shared: BatchingDetector) -> None:
        self.shared = shared
        self._done = False

    def detect(self, image: np.ndarray) -> list[Detection]:
        if self._done:
            raise ModelError("this stream's detector is closed")
        return self.shared.submit(image).result()

    def close(self) -> None:
        if not self._done:
            self._done = True
            self.shared._release()

    def __enter__(self) -> "StreamDetector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
