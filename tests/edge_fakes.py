"""Fake camera pipelines for the edge tests (no models: they must be cheap on a 2-core box).

The factories are referenced as ``"tests.edge_fakes:fake_pipeline"`` and run inside spawned
worker processes; their behaviour comes from the spec's pipeline options:

* ``ticket_every_s``: a ticket (``on_record``) every that many seconds of source time;
* ``crash_once_marker`` + ``crash_after_frames`` (+ ``crash_camera``): hard-crash
  (``os._exit(13)``) after that many frames, the first time only (the marker file remembers it);
* ``work_ms``: pretend each frame takes this long (so the drop-oldest queue is exercised);
* ``fail_camera``: the factory raises for that camera (a worker that cannot start).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from etle.types import Box, Violation


class FakePipeline:
    def __init__(self, spec: Any) -> None:
        self.spec = spec
        self.opts = spec.pipeline

    def run_source(self, source: Any, progress: Any = None, *, stop: Any = None, on_record: Any = None) -> Any:
        info = source.info
        every = float(self.opts.get("ticket_every_s") or 0)
        crash_after = int(self.opts.get("crash_after_frames") or 0)
        marker = self.opts.get("crash_once_marker")
        work = float(self.opts.get("work_ms") or 0) / 1000.0
        frames = tickets = 0
        last_ticket = 0.0
        pending: list[Violation] = []
        for frame in source.frames():
            if stop is not None and stop.is_set():
                break
            frames += 1
            if work:
                time.sleep(work)
            if crash_after and frames >= crash_after and marker and not Path(marker).exists() \
                    and self.opts.get("crash_camera") in (None, self.spec.camera_id):
                Path(marker).write_text("crashed")
                os._exit(13)
            if every and frame.pts - last_ticket >= every:
                last_ticket = frame.pts
                pending.append(Violation("red_light", frames, "car", frame.index, frame.pts, frame.timestamp, Box(0, 0, 10, 10)))
            while pending and on_record is not None:
                v = pending.pop(0)
                tickets += 1
                on_record(v, tickets, Path(self.spec.out_dir) / f"{self.spec.camera_id}-{tickets}")
            if progress is not None:
                progress(frame)
        for v in pending:  # graceful stop: nothing seen is lost
            tickets += 1
            if on_record is not None:
                on_record(v, tickets, Path(self.spec.out_dir) / f"{self.spec.camera_id}-{tickets}")
        return SimpleNamespace(source=info.name, frames=frames, tickets=tickets)


def fake_pipeline(spec: Any) -> FakePipeline:
    if spec.camera_id == spec.pipeline.get("fail_camera"):
        raise RuntimeError("model file missing (fake)")
    return FakePipeline(spec)


def failing_factory(spec: Any) -> FakePipeline:
    raise RuntimeError("model file missing (fake)")
