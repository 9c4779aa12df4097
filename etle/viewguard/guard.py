"""The view guard: rules run only while the camera shows the view its zones were drawn on.

Zones (stop lines, lanes) are pixel coordinates on one reference view.  PTZ cameras get moved,
operators zoom in on an incident, edited footage cuts between shots; on any other view the
zones mean nothing and a rule would fire on garbage.  :class:`ViewGuard` compares frames with
the reference and says when rules may run.

How the comparison works, and why.  Both images are downscaled to ``work_width`` (320 px) and
converted to grey; ORB features of the reference are computed once.  A check matches the
current frame's ORB features to the reference (Hamming distance, Lowe ratio 0.8) and fits a
homography with RANSAC.  The view matches when

* the inliers are at least ``min_inliers`` and at least ``min_similarity`` of the reference's
  features (the *score*): moving vehicles hide or add some features, the road, kerbs,
  markings, poles and buildings keep most of them; and
* the homography is near the identity: the frame's corners move on average at most
  ``max_shift`` of the width.  This is what tells "the same scene, reframed" (another zoom or
  pan of the same junction, which can match with many inliers) from "the reference view".

A structural similarity of edge maps was the other candidate; it is dragged down by heavy
traffic and up by a different shot with similar structure, and it cannot tell a 15 % zoom of
the same scene from a cluttered frame.  Measured on the real clips (Banjarmasin, Cilacap; every
frame pair 2 s x 0.5 s apart): within one settled shot the score ranged 0.16 to 1.0 (busy or
blurred shots lowest) with shifts under 0.025; every pair with a shift under 0.05 came from the
same shot; reframings of the same junction reached scores of 0.2 with shifts of 0.15 or more.
So the shift does most of the separating and ``min_similarity`` (0.15) with ``min_inliers``
(20) rejects degenerate fits, e.g. on a burned-in logo that sits at the identity in every shot.

Cost: a full check is ~10 ms on one core (320 px), done every ``check_every_s`` of pts.
Between checks each frame costs a 32x18 thumbnail: when it differs from the thumbnail of the
last check by ``cut_threshold`` (mean grey difference, 0..1) a check runs at once.  Comparing
with the last *check* rather than the previous frame also catches dissolves and slow pans,
whose frame-to-frame differences stay small (the Banjarmasin clip dissolves over ~6 frames).

Hysteresis: a mismatch pauses at once; after a pause the view must match at every check for
``resume_after_s`` before rules resume.  The first check decides the initial state.  Pauses and
resumes are logged with pts and kept in :attr:`ViewGuard.events`.

Limits: a reference taken by day may not match the same view at night (features change with
lighting); give such cameras a night reference or a looser ``min_similarity``.  Burned-in
overlays (clock, logo) match in every shot at the identity: leave them out with ``ignore``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from etle.errors import ConfigError
from etle.types import Frame
from etle.viewguard.config import ViewGuardConfig

__all__ = ["ViewGuard", "ViewStatus", "ViewEvent", "load_reference"]

log = logging.getLogger(__name__)

_THUMB = (32, 18)
_ORB_FEATURES = 1000
_ORB_FAST_THRESHOLD = 10  # CCTV is low-contrast; the default 20 finds too few corners
_LOWE_RATIO = 0.8
#: below this many reference features the guard warns that it is unreliable
LOW_TEXTURE_FEATURES = 150
_RANSAC_PX = 3.0


@dataclass(frozen=True, slots=True)
class ViewStatus:
    """The guard's answer for one frame.

    ``ok``: rules may run.  ``score``: similarity of the last check (0..1).  ``changed``: ``ok``
    flipped on this frame.  ``shift``: mean corner displacement of the last check as a fraction
    of the width (None when no homography was found).  ``checked``: a full comparison ran on this
    frame.  ``cut``: it ran because the thumbnail jumped.
    """

    ok: bool
    score: float
    changed: bool = False
    shift: float | None = None
    checked: bool = False
    cut: bool = False


ViewEvent = tuple[float, str, float]


@dataclass(frozen=True, slots=True)
class _Match:
    ok: bool
    score: float
    inliers: int
    shift: float | None


def _grey(image: np.ndarray, width: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = width / w
    small = cv2.resize(image, (width, max(1, int(round(h * scale)))), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small


def _thumb(image: np.ndarray) -> np.ndarray:
    small = cv2.resize(image, _THUMB, interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
    return grey.astype(np.float32) / 255.0


class ViewGuard:
    """Says, frame by frame, whether the camera shows the reference view.

    ``reference_image`` None makes a guard that always answers ok (no view guard configured).
    """

    def __init__(
        self,
        reference_image: np.ndarray | None,
        *,
        check_every_s: float = 0.5,
        min_similarity: float = 0.15,
        min_inliers: int = 20,
        max_shift: float = 0.03,
        resume_after_s: float = 1.0,
        cut_threshold: float = 0.08,
        work_width: int = 320,
        ignore: Sequence[Sequence[tuple[float, float]]] = (),
    ) -> None:
        self._check_every = check_every_s
        self._min_similarity = min_similarity
        self._min_inliers = min_inliers
        self._max_shift = max_shift
        self._resume_after = resume_after_s
        self._cut_threshold = cut_threshold
        self._width = work_width
        self._ignore = [np.asarray(p, dtype=np.float64) for p in ignore]
        self._events: list[ViewEvent] = []
        self._ok: bool | None = None
        self._score = 1.0
        self._shift: float | None = 0.0
        self._last_check: float | None = None
        self._check_thumb: np.ndarray | None = None
        self._match_since: float | None = None
        self._reference = reference_image is not None
        if reference_image is None:
            return
        if reference_image.ndim not in (2, 3) or reference_image.size == 0:
            raise ValueError("the reference image must be a non-empty BGR or grey image")
        self._orb = cv2.ORB_create(nfeatures=_ORB_FEATURES, fastThreshold=_ORB_FAST_THRESHOLD)
        self._matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
        self._ref_shape = reference_image.shape[:2]
        ref = _grey(reference_image, work_width)
        self._ref_kp, self._ref_desc = self._orb.detectAndCompute(
            ref, self._mask(reference_image, ref)
        )
        if self._ref_desc is None or len(self._ref_kp) < 2 * min_inliers:
            raise ValueError(
                f"the reference view has too little texture ({len(self._ref_kp or ())} features, "
                f"need {2 * min_inliers})"
            )
        if len(self._ref_kp) < LOW_TEXTURE_FEATURES:
            log.warning(
                "the reference view has little texture (%d features): the view guard may pause "
                "rules when vehicles or exposure changes hide the background",
                len(self._ref_kp),
            )
        h, w = ref.shape
        self._corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32).reshape(-1, 1, 2)

    # ------------------------------------------------------------------------------ building
    @classmethod
    def from_config(cls, camera: Any) -> "ViewGuard":
        """The guard a camera file (a :class:`~etle.camera.config.CameraConfig`) configures
        (always ok when it has no ``view_guard``)."""
        cfg = camera.view_guard
        if cfg is None:
            return cls(None)
        image = load_reference(cfg)
        size = getattr(camera, "frame_size", None)
        if size is not None and (image.shape[1], image.shape[0]) != tuple(size):
            # the ignored areas and overlays are pixels of the camera file's frame size (scaled
            # to the footage by etle.camera.fit): the reference is brought to the same size
            image = cv2.resize(image, (int(size[0]), int(size[1])), interpolation=cv2.INTER_AREA)
        try:
            return cls(
                image,
                check_every_s=cfg.check_every_s,
                min_similarity=cfg.min_similarity,
                min_inliers=cfg.min_inliers,
                max_shift=cfg.max_shift,
                resume_after_s=cfg.resume_after_s,
                cut_threshold=cfg.cut_threshold,
                work_width=cfg.work_width,
                ignore=tuple(cfg.ignore) + tuple(camera.overlays),
            )
        except ValueError as exc:
            raise ConfigError(f"{cfg.reference}: view_guard.reference: {exc}") from None

    def _mask(self, original: np.ndarray, small: np.ndarray) -> np.ndarray | None:
        if not self._ignore:
            return None
        scale = small.shape[1] / original.shape[1]
        mask = np.full(small.shape[:2], 255, np.uint8)
        for poly in self._ignore:
            cv2.fillPoly(mask, [np.round(poly * scale).astype(np.int32)], 0)
        return mask

    # ------------------------------------------------------------------------------- state
    @property
    def events(self) -> list[ViewEvent]:
        """(pts, 'pause' | 'resume', score) for every change of state, oldest first."""
        return list(self._events)

    @property
    def ok(self) -> bool:
        return self._ok is not False

    def compare(self, image: np.ndarray) -> _Match:
        """One full comparison of an image with the reference (no state change)."""
        if not self._reference:
            return _Match(True, 1.0, 0, 0.0)
        grey = _grey(image, self._width)
        kp, desc = self._orb.detectAndCompute(grey, self._mask(image, grey))
        if desc is None or len(kp) < 4:
            return _Match(False, 0.0, 0, None)
        pairs = self._matcher.knnMatch(desc, self._ref_desc, k=2)
        good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < _LOWE_RATIO * m[1].distance]
        if len(good) < 4:
            return _Match(False, 0.0, 0, None)
        src = np.array([kp[m.queryIdx].pt for m in good], np.float32).reshape(-1, 1, 2)
        dst = np.array([self._ref_kp[m.trainIdx].pt for m in good], np.float32).reshape(-1, 1, 2)
        homography, inlier_mask = cv2.findHomography(src, dst, cv2.RANSAC, _RANSAC_PX)
        if homography is None or inlier_mask is None:
            return _Match(False, 0.0, 0, None)
        inliers = int(inlier_mask.sum())
        score = min(1.0, inliers / len(self._ref_kp))
        moved = cv2.perspectiveTransform(self._corners, homography) - self._corners
        shift = float(np.linalg.norm(moved, axis=2).mean()) / self._width
        ok = (
            inliers >= self._min_inliers
            and score >= self._min_similarity
            and shift <= self._max_shift
        )
        return _Match(ok, score, inliers, shift)

    def update(self, frame: Frame) -> ViewStatus:
        """The view status at this frame (a full check only when due or after a cut)."""
        if not self._reference:
            return ViewStatus(ok=True, score=1.0, shift=0.0)
        pts = frame.pts
        thumb = _thumb(frame.image)
        due = (
            self._last_check is None
            or pts - self._last_check >= self._check_every
            or pts < self._last_check
            or self._check_thumb is None
            or self._check_thumb.shape != thumb.shape
        )
        cut = False
        if not due:
            assert self._check_thumb is not None
            cut = float(np.abs(thumb - self._check_thumb).mean()) >= self._cut_threshold
        if not (due or cut):
            return ViewStatus(ok=bool(self._ok), score=self._score, shift=self._shift)

        match = self.compare(frame.image)
        self._last_check, self._check_thumb = pts, thumb
        self._score, self._shift = match.score, match.shift
        changed = False
        if match.ok:
            if self._ok is None:
                self._ok = True
                log.info("view matches the reference at pts %.3f (score %.2f)", pts, match.score)
            elif not self._ok:
                if self._match_since is None:
                    self._match_since = pts
                if pts - self._match_since >= self._resume_after:
                    self._ok, changed = True, True
                    self._events.append((pts, "resume", match.score))
                    log.info(
                        "view back to the reference at pts %.3f (score %.2f): rules resume",
                        pts,
                        match.score,
                    )
        else:
            self._match_since = None
            if self._ok is not False:
                changed = self._ok is True
                self._ok = False
                self._events.append((pts, "pause", match.score))
                log.info(
                    "view differs from the reference at pts %.3f (score %.2f, shift %s%s): "
                    "rules paused",
                    pts,
                    match.score,
                    "n/a" if match.shift is None else f"{match.shift:.3f}",
                    ", scene cut" if cut else "",
                )
        return ViewStatus(
            ok=bool(self._ok),
            score=match.score,
            changed=changed,
            shift=match.shift,
            checked=True,
            cut=cut,
        )


def load_reference(cfg: ViewGuardConfig) -> np.ndarray:
    """The reference view as a BGR image: the image file, or the frame at reference_at_s."""
    path = Path(cfg.reference)
    if not path.is_file():
        raise ConfigError(f"{path}: view_guard.reference not found")
    if not cfg.is_video:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ConfigError(f"{path}: view_guard.reference is not a readable image")
        return image
    return _video_frame(path, cfg.reference_at_s or 0.0)


def _video_frame(path: Path, at_s: float) -> np.ndarray:
    import av  # PyAV: only needed when the reference is a video

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ConfigError(f"{path}: view_guard.reference has no video stream")
            stream = container.streams.video[0]
            tb = float(stream.time_base) if stream.time_base else 0.0
            if at_s > 0 and tb > 0:
                container.seek(int(at_s / tb), stream=stream, backward=True, any_frame=False)
            last = None
            for frame in container.decode(stream):
                t = float(frame.pts * tb) if frame.pts is not None and tb > 0 else None
                last = frame
                # half a frame of slack so that 2.0 picks the frame stamped 1.9999
                if t is None or t >= at_s - 0.5 / float(stream.average_rate or 30):
                    return frame.to_ndarray(format="bgr24")
            if last is None:
                raise ConfigError(f"{path}: view_guard.reference has no decodable frames")
            raise ConfigError(
                f"{path}: view_guard.reference_at_s {at_s} is past the end of the video"
            )
    except av.error.FFmpegError as exc:
        raise ConfigError(f"{path}: view_guard.reference cannot be decoded: {exc}") from None
