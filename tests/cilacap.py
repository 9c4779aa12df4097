"""The three motorcycles waiting at the stop line of the Cilacap clip (shared/data/videos), for
the plate detector's and the plate reader's real-clip tests.

Frames 120-230, where they stand still: their boxes and their plates, measured once by eye on
frame 170 ("R 5154 WP", "R 2333 RK", "R 4762 PM"; small, tilted and dark under the camera's blue
cast; the registration characters are about 8 px tall).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from etle.types import Box

CLIP = "id_etle_cilacap_alun_motorcycles.mp4"

#: (motorcycle box, plate box, registration)
CILACAP_BIKES = (
    (Box(144, 117, 306, 307), Box(165, 157, 214, 183), "R5154WP"),
    (Box(282, 143, 419, 358), Box(291, 207, 341, 237), "R2333RK"),
    (Box(425, 171, 589, 355), Box(441, 227, 490, 255), "R4762PM"),
)


def cilacap_frames(shared: Path, indices: range) -> list[np.ndarray]:
    """The clip's frames at ``indices`` (ascending), decoded in order."""
    cap = cv2.VideoCapture(str(shared / "videos" / CLIP))
    wanted, out, i = set(indices), [], 0
    try:
        while i <= max(indices):
            ok, frame = cap.read()
            assert ok, f"{CLIP} ended at frame {i}"
            if i in wanted:
                out.append(frame)
            i += 1
    finally:
        cap.release()
    return out
