"""Frames of another size than their source declared, met in the middle of a source.

A source's size is read once, when it opens, and the camera's coordinates are fitted to it
(:mod:`etle.camera.fit`).  Some footage changes size part-way: a DVR export that joins the
main and the sub stream, two recordings cut together, a camera whose firmware came back at
its default resolution after a power cut and reconnected to the edge runner.  Frames of a
new size would meet zones, lines and tracks drawn for the old one: the stop line would lie
elsewhere in the picture, silently (seen: the bundled sample cut together from its first 14 s
and its last 16 s at twice the size gave no ticket, the original's red-light crossing lost).

:class:`SizeConformer` brings every frame back to the source's size, so zones, tracks, the
view guard, the motion gate and the evidence clip keep one geometry for the whole source.
The same picture at another resolution (the aspect within the camera fitting's tolerance) is
resized; another shape is a crop or another camera, whose picture no zone fits: it is resized
as well, to keep the stages running, but :attr:`SizeConformer.ok` turns False and the
pipeline pauses the rules on it, as the view guard does on a moved camera.  Each change of
size is logged once.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import cv2

from etle.types import Frame

log = logging.getLogger(__name__)


class SizeConformer:
    """Frames of one source, each brought to ``width`` x ``height``."""

    def __init__(self, name: str, width: int, height: int, *, aspect_tolerance: float) -> None:
        if width <= 0 or height <= 0:
            raise ValueError(f"a source size must be positive, not {width}x{height}")
        self.name = name
        self.size = (int(width), int(height))
        self.aspect_tolerance = aspect_tolerance
        #: False while the frames have another shape than the source's (rules pause)
        self.ok = True
        #: frames resized so far
        self.resized = 0
        self._seen = self.size

    def __call__(self, frame: Frame) -> Frame:
        w, h = frame.width, frame.height
        if (w, h) == self.size:
            if self._seen != self.size:
                log.warning("%s: frames back at %dx%d at %.2f s", self.name, w, h, frame.pts)
                self._seen, self.ok = self.size, True
            return frame
        if (w, h) != self._seen:
            self._seen = (w, h)
            tw, th = self.size
            self.ok = abs((w / h) / (tw / th) - 1.0) <= self.aspect_tolerance
            if self.ok:
                log.warning("%s: frames of %dx%d from %.2f s, not the %dx%d the run began with: resized to it "
                            "(the camera's coordinates stay where they were drawn)", self.name, w, h, frame.pts, tw, th)
            else:
                log.warning("%s: frames of %dx%d from %.2f s, another shape than the %dx%d the run began with "
                            "(a crop or another camera): rules paused on them", self.name, w, h, frame.pts, tw, th)
        self.resized += 1
        interpolation = cv2.INTER_AREA if w * h > self.size[0] * self.size[1] else cv2.INTER_LINEAR
        return replace(frame, image=cv2.resize(frame.image, self.size, interpolation=interpolation))
