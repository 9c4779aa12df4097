"""Multi-object tracking with ByteTrack from Roboflow's maintained ``trackers`` package.

ByteTrack matches boxes by IoU regardless of class.  A rider's box overlaps the motorcycle's
almost completely, so one tracker over all classes would swap ids between riders and bikes;
this adapter runs one tracker per class group (vehicles, persons, bicycles), gives every track a
run-wide unique id, and labels a track by the majority of its detections (YOLO flips between
car and truck on one vehicle).  Per-track state is forgotten when a track has not been seen for
a while, so memory stays flat on a stream that runs for months.

Detection stride: when the detector runs only on every Nth frame, :meth:`ByteTrackTracker.predict`
gives the frames in between: the last observed boxes moved by each track's velocity (box corners
per second, smoothed over observations, from frame timestamps) and marked ``predicted``.  This
constant-velocity step is a few lines over the tracker's own output, because the ``trackers``
package exposes no predict-only call.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from etle.types import Box, Detection, Frame, TrackedObject

log = logging.getLogger(__name__)

#: class groups tracked independently; labels inside a group may flip and are voted
GROUPS: dict[str, frozenset[str]] = {
    "vehicle": frozenset({"car", "motorcycle", "bus", "truck"}),
    "person": frozenset({"person"}),
    "bicycle": frozenset({"bicycle"}),
}


@dataclass(frozen=True)
class TrackerSettings:
    """ByteTrack knobs; times are in seconds and converted with the source frame rate."""

    lost_track_s: float = 1.5
    track_activation_threshold: float = 0.35
    high_conf_det_threshold: float = 0.5
    minimum_consecutive_frames: int = 2
    #: ... but only as many as fit in this many seconds of updates: with the detector on a stride
    #: (6 updates/s) two consecutive matched detections are rare for a weakly detected vehicle, and
    #: the sample clip's red-light car was never confirmed; at >= 8 updates/s the setting applies as is
    confirm_within_s: float = 0.25
    minimum_iou_threshold: float = 0.1
    forget_after_s: float = 10.0
    #: prediction horizon: a box is not extrapolated further than this past its last observation
    max_predict_s: float = 0.5


class _TrackState:
    __slots__ = ("labels", "last_pts", "box", "velocity")

    def __init__(self) -> None:
        self.labels: Counter[str] = Counter()
        self.last_pts = 0.0
        self.box: Box | None = None  # last observed box
        self.velocity: np.ndarray | None = None  # d(x1, y1, x2, y2)/dt in pixels per second

    def observe(self, box: Box, pts: float, smoothing: float = 0.5) -> None:
        if self.box is not None and pts > self.last_pts:
            v = (np.array(box.as_tuple()) - np.array(self.box.as_tuple())) / (pts - self.last_pts)
            self.velocity = v if self.velocity is None else smoothing * v + (1 - smoothing) * self.velocity
        self.box = box
        self.last_pts = pts


class ByteTrackTracker:
    """Detections of one frame in, tracked objects with stable ids out."""

    def __init__(self, frame_rate: float, settings: TrackerSettings | None = None, *, max_rate: float | None = None) -> None:
        """``frame_rate``: updates per second on the detection stride; ``max_rate``: the fastest
        they may come (the source frame rate, when a motion gate can add detections between stride
        frames): a lost track is kept for ``lost_track_s`` at that rate, so that a burst of extra
        updates does not drop it early."""
        try:
            import supervision as sv
            from trackers import ByteTrackTracker as _BT
        except ImportError as exc:  # pragma: no cover - core dependency
            from etle.errors import MissingDependencyError

            raise MissingDependencyError("trackers", "core", "tracking") from exc
        self._sv = sv
        self.settings = s = settings or TrackerSettings()
        self.frame_rate = max(float(frame_rate), 1.0)
        #: detections in a row that confirm a new track at this update rate (see TrackerSettings)
        self.consecutive_frames = max(1, min(s.minimum_consecutive_frames, int(s.confirm_within_s * self.frame_rate)))
        self._trackers = {
            g: _BT(
                lost_track_buffer=max(1, int(round(s.lost_track_s * max(self.frame_rate, max_rate or 0.0)))),
                frame_rate=self.frame_rate,
                track_activation_threshold=s.track_activation_threshold,
                minimum_consecutive_frames=self.consecutive_frames,
                minimum_iou_threshold=s.minimum_iou_threshold,
                high_conf_det_threshold=s.high_conf_det_threshold,
            )
            for g in GROUPS
        }
        self._ids: dict[tuple[str, int], int] = {}
        self._state: dict[int, _TrackState] = {}
        self._next_id = 1
        self._last: tuple[TrackedObject, ...] = ()

    def _global_id(self, group: str, local: int) -> int:
        key = (group, local)
        gid = self._ids.get(key)
        if gid is None:
            gid = self._next_id
            self._next_id += 1
            self._ids[key] = gid
        return gid

    def update(self, detections: Sequence[Detection], frame: Frame) -> tuple[TrackedObject, ...]:
        sv = self._sv
        out: list[TrackedObject] = []
        for group, labels in GROUPS.items():
            dets = [d for d in detections if d.label in labels]
            names = sorted(labels)
            if dets:
                xyxy = np.array([d.box.as_tuple() for d in dets], dtype=np.float32)
                conf = np.array([d.confidence for d in dets], dtype=np.float32)
                cls = np.array([names.index(d.label) for d in dets], dtype=int)
                svd = sv.Detections(xyxy=xyxy, confidence=conf, class_id=cls)
            else:
                svd = sv.Detections.empty()
            tracked = self._trackers[group].update(svd)
            if tracked.tracker_id is None:
                continue
            for i in range(len(tracked)):
                tid = int(tracked.tracker_id[i])
                if tid < 0:  # not yet confirmed
                    continue
                gid = self._global_id(group, tid)
                st = self._state.get(gid)
                if st is None:
                    st = self._state[gid] = _TrackState()
                cid = int(tracked.class_id[i]) if tracked.class_id is not None else 0
                label_now = names[cid] if 0 <= cid < len(names) else names[0]
                st.labels[label_now] += 1
                label = st.labels.most_common(1)[0][0]
                x1, y1, x2, y2 = (float(v) for v in tracked.xyxy[i])
                box = Box(x1, y1, max(x1, x2), max(y1, y2)).clip(frame.width, frame.height)
                st.observe(box, frame.pts)
                confv = float(tracked.confidence[i]) if tracked.confidence is not None else 0.0
                out.append(TrackedObject(gid, box, label, confv))
        self._forget_stale(frame.pts)
        self._last = tuple(out)
        return self._last

    def predict(self, frame: Frame) -> tuple[TrackedObject, ...]:
        """The objects of the last update moved to ``frame``'s time (no detections this frame)."""
        out: list[TrackedObject] = []
        for obj in self._last:
            st = self._state.get(obj.track_id)
            if st is None or st.box is None:
                continue
            dt = min(max(frame.pts - st.last_pts, 0.0), self.settings.max_predict_s)
            if st.velocity is None or dt == 0.0:
                box = st.box
            else:
                x1, y1, x2, y2 = (np.array(st.box.as_tuple()) + st.velocity * dt).tolist()
                box = Box(x1, y1, max(x1, x2), max(y1, y2)).clip(frame.width, frame.height)
            if box.width < 1 or box.height < 1:
                continue
            out.append(TrackedObject(obj.track_id, box, obj.label, obj.confidence, predicted=True))
        return tuple(out)

    def _forget_stale(self, pts: float) -> list[int]:
        horizon = self.settings.forget_after_s
        gone = [gid for gid, st in self._state.items() if pts - st.last_pts > horizon]
        if gone:
            gone_set = set(gone)
            for gid in gone:
                del self._state[gid]
            self._ids = {k: v for k, v in self._ids.items() if v not in gone_set}
        return gone

    @property
    def live_track_count(self) -> int:
        return len(self._state)
