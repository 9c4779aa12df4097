"""What a pipeline runs and where a run writes: the options of ``etle run``, declared once.

:class:`StageOptions` is what shapes the stages (which detector, how often it runs, plates,
clip length, device); the edge site's ``pipeline:`` section, ``etle batch``, ``etle bench`` and
``etle eval`` take it as it is or with their own profile's defaults.  :class:`RunOptions` adds
where one run writes and how long it runs; :class:`etle.pipeline.Pipeline` runs on it.
The command-line flags map onto these fields one to one (:meth:`StageOptions.from_flags`).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_DB = "sqlite:///etle.db"
"""The ticket database when none is given: SQLite in the working directory."""
DEFAULT_OUT = Path("etle-out")
"""The evidence folder when none is given, in the working directory."""

DEFAULT_DETECTOR = "vehicle-detector"
"""The float COCO detector: a clerk's batch has time, every weakly seen vehicle counts."""
FAST_DETECTOR = "vehicle-detector-int8"
"""The int8 detector of the fast (edge) profile, made by ``etle models prepare``; where it was
not made, the float one runs instead with a warning.  On a CPU without VNNI the fast profile
takes the float one (:func:`fast_detector`)."""
FAST_DETECT_FPS = 6.0
"""Detector runs per second of video in the fast profile (tracks predicted in between)."""



def fast_detector() -> str:
    """The fast profile's vehicle detector on this machine: the int8 one where its arithmetic is
    the one measured (a CPU with VNNI, or one whose features are unknown), else the float one.

    Without VNNI, ONNX Runtime sums pairs of uint8 x int8 products in 16 bits, which saturate on
    the detector's 8-bit weights (:data:`etle.train.export.VEHICLE_REDUCE_RANGE`): the same file
    then finds other boxes, and on the shared clips fewer right tickets and a wrong plate
    (docs/accuracy.md, both detectors measured on such a CPU by ``scripts/accuracy.sh``), for
    little time saved.  So such a CPU runs the float model, whose results do not depend on the
    CPU; ``--detector vehicle-detector-int8`` still runs the int8 one on purpose.
    """
    from etle.config.hardware import cpu

    return DEFAULT_DETECTOR if cpu()["vnni"] is False else FAST_DETECTOR


Device = Literal["cpu", "cuda", "auto"]
DEVICES: tuple[str, ...] = ("cpu", "cuda", "auto")


class StageOptions(BaseModel):
    """What the pipeline's stages run (one camera's, one clip's or one worker's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: vehicle detector: a manifest name (vehicle-detector, vehicle-detector-int8) or a model file
    detector: str = DEFAULT_DETECTOR
    #: run the detector on every Nth frame and predict tracks in between; 0 = from ``detect_fps``
    detect_every: int = Field(0, ge=0)
    #: detector runs per second of video when ``detect_every`` is 0 (the stride is rounded, >= 1);
    #: 0 = every frame
    detect_fps: float = Field(0.0, ge=0)
    #: on a stride, also detect on frames where something moves across a rule line of the camera
    #: (:class:`etle.detect.motion.MotionGate`): crossings are judged at the line
    detect_on_motion: bool = True
    #: the detector's score threshold
    conf_threshold: float = Field(0.25, gt=0, lt=1)
    #: plate OCR backend; None: the measured default for ``country``
    reader: str | None = None
    #: plate format: ``id`` (Indonesian TNKB grammar) or ``generic`` (any country, no grammar);
    #: checked where the plate stage is built (and by the site file)
    country: str = "id"
    #: plate detector kind; None: the measured default for ``country``
    #: (:func:`etle.plate.detector.default_plate_detector`)
    plate_detector: str | None = None
    read_plates: bool = True
    #: a track's plate below this consensus confidence is stored as unread (candidates kept)
    min_plate_confidence: float = Field(0.3, ge=0, le=1)
    #: a ticket prints a plate only when at least this many reads, from distinct frames, spell it
    #: exactly: one read is not a consensus, and a confident wrong plate costs a citizen; below
    #: it the ticket shows ``?`` with the candidates for the officer
    min_plate_agreement: int = Field(2, ge=0)
    #: ... and only when every character of it was read alike by more than this share of the
    #: reads covering it: reads that split on a character (W / V / M) leave it to the officer,
    #: however often the vote's winner was read whole; and, of the reads at least as long, more
    #: than this share must be exactly as long (etle.plate.consensus.character_agreement).  0.5
    #: is a plain majority, not a tuned value
    plate_char_majority: float = Field(0.5, ge=0, lt=1)
    #: seconds of clip before and after a violation
    pre_s: float = Field(2.0, ge=0)
    post_s: float = Field(2.0, ge=0)
    #: where the detectors run: cpu, cuda (ONNX Runtime's TensorRT/CUDA providers; an error
    #: without them) or auto (the GPU when there is one, else the CPU with a warning); None: as
    #: ``ETLE_DEVICE`` says (cpu where unset)
    device: Device | None = None
    #: ONNX Runtime threads; None: every core (``ETLE_THREADS`` where set)
    threads: int | None = Field(None, ge=1)

    @classmethod
    def fast(cls, **overrides: Any) -> "StageOptions":
        """The fast (edge) profile: the int8 detector (:func:`fast_detector`) at 6 runs a second,
        with ``overrides``."""
        return cls(**{"detector": fast_detector(), "detect_fps": FAST_DETECT_FPS, **overrides})

    @classmethod
    def from_flags(cls, **flags: Any) -> "StageOptions":
        """Options from command-line values: a flag left at ``None`` keeps the default."""
        return cls(**{k: v for k, v in flags.items() if v is not None})

    @property
    def profile(self) -> str:
        """``fast`` (the fast profile's detector on a stride), ``default`` (float detector on every
        frame) or ``custom``."""
        if self.detect_fps > 0 and (self.detector.endswith("int8") or self.detector == fast_detector()):
            return "fast"
        if self.detector == DEFAULT_DETECTOR and self.detect_fps <= 0 and self.detect_every <= 1:
            return "default"
        return "custom"

    def stages(self) -> "StageOptions":
        """Only the fields of :class:`StageOptions` (drops what a subclass adds)."""
        return StageOptions(**{k: getattr(self, k) for k in StageOptions.model_fields})


class RunOptions(StageOptions):
    """One run: the stages' options plus where it writes and how much of each source it reads."""

    out_dir: Path = DEFAULT_OUT
    db_url: str = DEFAULT_DB
    #: stop each source after this many seconds of video
    max_seconds: float | None = Field(None, ge=0)
    #: wall-clock start of the footage; None: camera file, container metadata, file time
    wall_start: datetime | None = None
    #: frames decoded ahead in a separate thread (0: decode in the processing thread)
    prefetch: int = Field(8, ge=0)
    #: seconds between the frames of a folder of images
    image_interval_s: float = Field(1.0, gt=0)
    #: frames a second of footage without timestamps (a recorder's raw .h264 / .265 export);
    #: None: the rate its stream header declares.  Footage with timestamps keeps its own.
    frame_rate: float | None = Field(None, gt=0)
    #: run the files of a folder that continue one another (a recording the recorder split into
    #: files, dated by its picture's clock or its file names) as one source (etle.ingest.joined)
    join: bool = True
    #: write evidence without its clip while the evidence folder's disk has fewer bytes free (0: always)
    clip_min_free_bytes: int = Field(0, ge=0)
    #: write no evidence while the disk has fewer bytes free (0: no floor): the run stops with a
    #: one-line error (``low_disk: stop``) or logs and counts the violation (``skip``: etle edge)
    evidence_min_free_bytes: int = Field(0, ge=0)
    low_disk: Literal["stop", "skip"] = "stop"

    @classmethod
    def of(cls, stages: StageOptions, **run: Any) -> "RunOptions":
        """A run of ``stages`` (any subclass: only its stage fields are taken) with ``run``'s fields."""
        return cls(**{**{k: getattr(stages, k) for k in StageOptions.model_fields}, **run})
