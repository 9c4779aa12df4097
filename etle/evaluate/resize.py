"""The truth file's clips at another resolution: ``etle eval violations --scale F``.

Footage reaches etle at whatever size the recorder exports, rarely the size a camera file was
drawn on.  :func:`resized_truth` writes a copy of each clip scaled by ``F`` (the same frames, at
the same timestamps, re-encoded with x264 at a high quality) and a truth file whose labelled
points are scaled with it; the camera files stay as they are, so the run shows whether the
camera fitting (:mod:`etle.camera.fit`) and every stage after it give the tickets of the
original size.  Hand-written because it is this project's truth format; the video work is
PyAV's and OpenCV's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from etle.errors import SourceError
from etle.evaluate.violations import TruthClip, TruthFile

__all__ = ["resize_video", "resized_truth", "scaled_size"]


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """``width`` x ``height`` times ``scale``, rounded to even numbers (what 4:2:0 video needs)."""
    return max(2, 2 * round(width * scale / 2)), max(2, 2 * round(height * scale / 2))


def resize_video(src: Path, dst: Path, scale: float, *, max_seconds: float | None = None,
                 on_frame: Callable[[], None] | None = None) -> tuple[int, int]:
    """Write ``src`` scaled by ``scale`` to ``dst`` (H.264, every frame at its own timestamp, made
    strictly increasing; only the first ``max_seconds`` when given); returns the new size."""
    import av
    import cv2

    try:
        with av.open(str(src)) as inp:
            stream = inp.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            size = scaled_size(width, height, scale)
            interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
            with av.open(str(dst), "w") as out:
                enc = out.add_stream("libx264", rate=stream.average_rate or 30)
                enc.width, enc.height = size
                enc.pix_fmt = "yuv420p"
                # the source's time base for the stream and the encoder alike: with the encoder's
                # default (1 / frame rate) a variable-rate clip's timestamps would be rounded
                enc.time_base = enc.codec_context.time_base = stream.time_base
                enc.options = {"crf": "16", "preset": "veryfast", "bf": "0"}  # no B-frames: dts = pts, always increasing
                last = None
                for frame in inp.decode(stream):
                    if frame.pts is None:
                        continue
                    # a container may repeat or reorder a timestamp (the highway clip does); the
                    # copy keeps every frame, one tick (1 / time base) after the one before it
                    pts = frame.pts if last is None or frame.pts > last else last + 1
                    last = pts
                    if max_seconds is not None and frame.time is not None and frame.time > max_seconds + 1.0:
                        break
                    image = cv2.resize(frame.to_ndarray(format="bgr24"), size, interpolation=interpolation)
                    new = av.VideoFrame.from_ndarray(image, format="bgr24")
                    new.pts, new.time_base = pts, frame.time_base
                    for packet in enc.encode(new):
                        out.mux(packet)
                    if on_frame is not None:
                        on_frame()
                for packet in enc.encode():
                    out.mux(packet)
    except (av.FFmpegError, OSError) as exc:
        raise SourceError(f"{src}: cannot write a copy scaled by {scale:g}: {exc}") from None
    return size


def resized_truth(truth: TruthFile, clips: Sequence[TruthClip], scale: float, folder: Path,
                  on_frame: Callable[[], None] | None = None) -> TruthFile:
    """``truth`` with ``clips`` only, each clip's video replaced by a copy scaled by ``scale`` in
    ``folder`` (one per video, shared by the clips that use it) and its events' points scaled."""
    folder.mkdir(parents=True, exist_ok=True)
    made: dict[Path, Path] = {}
    longest: dict[Path, float | None] = {}
    for c in clips:  # the longest part of each video any clip reads
        prev = longest.get(c.video, 0.0)
        longest[c.video] = None if prev is None or c.max_seconds is None else max(prev, c.max_seconds)
    out: list[TruthClip] = []
    for c in clips:
        if c.video not in made:
            dst = folder / f"{len(made):02d}-{c.video.stem}-x{scale:g}.mp4"
            resize_video(c.video, dst, scale, max_seconds=longest[c.video], on_frame=on_frame)
            made[c.video] = dst
        events = tuple(e.model_copy(update={"point": (e.point[0] * scale, e.point[1] * scale)}) for e in c.events)
        out.append(c.model_copy(update={"video": made[c.video], "events": events}))
    return truth.model_copy(update={"clips": tuple(out)})
