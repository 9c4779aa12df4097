"""Decode ahead in a thread: frames are produced while the previous ones are processed.

FFmpeg decoding (PyAV) and ONNX Runtime inference both release the GIL, so on a 2-4 core edge
box a decoder thread overlaps decoding with detection.  :func:`prefetch` runs any frame iterator in
a daemon thread into a bounded queue (memory stays at ``depth`` frames), hands the frames out in
order, re-raises the producer's exception in the consumer, and stops and closes the producer when
the consumer stops early (``break``, an exception, or ``close()``).  The standard library has no
iterator-prefetch helper, hence these few lines.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()


class _Failure:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetch(items: Iterable[T], depth: int = 8, name: str = "etle-decode") -> Iterator[T]:
    """Iterate ``items`` in a background thread, at most ``depth`` items ahead."""
    if depth <= 0:
        yield from items
        return
    q: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        it = iter(items)
        try:
            for item in it:
                if not put(item):
                    break
            else:
                put(_END)
                return
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(_Failure(exc))
            return
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # pragma: no cover - closing a finished generator
                    pass
        put(_END)

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while True:  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                break
        worker.join(timeout=5.0)
