"""Head crops: where the head of a detected person is, and the pixels the classifier sees.

The same functions cut the training crops (``scripts/train_helmet.py``) and the run-time crops,
so the classifier sees at run time what it was trained on.

A rider's person box (COCO detector) runs from the top of the head to the feet or the seat;
the head is at the top, about a quarter of the box height wide and at most 0.6 of the box
width.  Arms stretched to the handlebars widen the box, so the head is not always centred: the
crop is a square with margin around the estimated head (``CONTEXT`` times its size), and the
classifier was trained on head boxes jittered by that much in position and scale.
"""

from __future__ import annotations

import cv2
import numpy as np

from etle.types import Box

__all__ = [
    "CONTEXT",
    "INPUT_SIZE",
    "head_box",
    "square_crop",
    "to_input",
]

#: The classifier's input side in pixels (the crop is resized to it; chosen on the valid split:
#: 128 found more bare heads than 64 or 96 at the same precision, at about 1 ms a head on one core).
INPUT_SIZE = 128
#: Side of the crop around a head box, as a multiple of the head box's longer side.
CONTEXT = 1.5
#: Estimated head size as a fraction of a person box's height (seated rider) ...
HEAD_OF_HEIGHT = 0.25
#: ... but at most this fraction of the person box's width.  Both chosen on the Roboflow train and
#: valid splits (detector person boxes against labelled heads: median head side 0.245 of the
#: height, 0.49 of the width; these two place the most head-box centres inside the labelled head).
HEAD_OF_WIDTH = 0.6


def head_box(person: Box, *, frame_width: int, frame_height: int, min_px: float = 12.0) -> Box | None:
    """The estimated head square of a person box, or None when too small or cut by the frame top.

    ``min_px`` is the smallest head side worth classifying.  A person whose box starts at the
    top edge of the frame has its head cut off (or outside the picture): no crop.
    """
    if person.width <= 0 or person.height <= 0:
        return None
    if person.y1 <= max(2.0, 0.01 * frame_height):
        return None
    side = min(HEAD_OF_HEIGHT * person.height, HEAD_OF_WIDTH * person.width)
    if side < min_px:
        return None
    cx = (person.x1 + person.x2) / 2.0
    box = Box(cx - side / 2.0, person.y1, cx + side / 2.0, person.y1 + side)
    if box.x2 <= 0 or box.x1 >= frame_width or box.y1 >= frame_height:
        return None
    return box


def square_crop(image: np.ndarray, box: Box, *, context: float = CONTEXT, size: int = INPUT_SIZE) -> np.ndarray:
    """A ``size`` x ``size`` BGR crop of the square of side ``context * max(w, h)`` around ``box``.

    Parts outside the image are filled by edge replication, so a head at the border keeps its
    scale.  Returns a new array (the frame is never modified).
    """
    cx, cy = box.center
    half = max(box.width, box.height) * context / 2.0
    x0, y0 = int(round(cx - half)), int(round(cy - half))
    x1, y1 = int(round(cx + half)), int(round(cy + half))
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise ValueError(f"crop too small: {box}")
    h, w = image.shape[:2]
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if cx1 <= cx0 or cy1 <= cy0:
        raise ValueError(f"crop outside the image: {box}")
    crop = image[cy0:cy1, cx0:cx1]
    pads = (cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1)
    if any(pads):
        crop = cv2.copyMakeBorder(crop, *pads, cv2.BORDER_REPLICATE)
    interp = cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


def to_input(crops: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """BGR uint8 crops (N, S, S, 3) -> the float32 NCHW RGB tensor in [0, 1] the model takes."""
    arr = np.asarray(crops, dtype=np.uint8)
    if arr.ndim == 3:
        arr = arr[None]
    return np.ascontiguousarray(arr[..., ::-1].transpose(0, 3, 1, 2), dtype=np.float32) / 255.0
