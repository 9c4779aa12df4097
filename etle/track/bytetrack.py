"""Multi-object tracking with ByteTrack from Roboflow's maintained ``trackers`` package.

ByteTrack matches boxes by IoU regardless of class.  A rider's box overlaps the motorcycle's
almost completely, so one tracker over all classes would swap ids between riders and bikes;
this adapter runs one tracker per class group (vehicles, persons, bicycles), gives every track a
run-wide unique id, and labels a track by the majority of its detections (YOLO flips between
car and truck on one vehicle).  Per-track state is forgotten when a track has not been seen for
a while, so memory stays flat on a stream that runs for months.
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
    minimum_iou_threshold: float = 0.1
    forget_after_s: float = 10.0


class _TrackState:
    __slots__ = ("labels", "last_pts")

    def __init__(self) -> None:
        self.labels: Counter[str] = Counter()
        self.last_pts = 0.0


class ByteTrackTracker:
    """Detections of one frame in, tracked objects with stable ids out."""

    def __init__(self, frame_rate: float, settings: TrackerSettings | None = None) -> None:
        try:
            import supervision as sv
            from trackers import ByteTrackTracker as _BT
        except ImportError as exc:  # pragma: no cover - core dependency
            from etle.errors import MissingDependencyError

            raise MissingDependencyError("trackers", "core", "tracking") from exc
        self._sv = sv
        self.settings = s = settings or TrackerSettings()
        self.frame_rate = max(float(frame_rate), 1.0)
        self._trackers = {
            g: _BT(
                lost_track_buffer=max(1, int(round(s.lost_track_s * self.frame_rate))),
                frame_rate=self.frame_rate,
                track_activation_threshold=s.track_activation_threshold,
                minimum_consecutive_frames=s.minimum_consecutive_frames,
                minimum_iou_threshold=s.minimum_iou_threshold,
                high_conf_det_threshold=s.high_conf_det_threshold,
            )
            for g in GROUPS
        }
        self._ids: dict[tuple[str, int], int] = {}
        self._state: dict[int, _TrackState] = {}
        self._next_id = 1

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
                st.last_pts = frame.pts
                label = st.labels.most_common(1)[0][0]
                x1, y1, x2, y2 = (float(v) for v in tracked.xyxy[i])
                box = Box(x1, y1, max(x1, x2), max(y1, y2)).clip(frame.width, frame.height)
                confv = float(tracked.confidence[i]) if tracked.confidence is not None else 0.0
                out.append(TrackedObject(gid, box, label, confv))
        self._forget_stale(frame.pts)
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
