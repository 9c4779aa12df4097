"""The view guard's configuration: the camera file's ``view_guard`` section.

:mod:`etle.camera.config` holds it as ``CameraConfig.view_guard``; :mod:`etle.viewguard.guard`
builds the guard from it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator, model_validator

from etle.geometry import Point
from etle.schema import ConfigModel, LocatedError
from etle.zones import three_points_each

__all__ = ["IMAGE_SUFFIXES", "ViewGuardConfig"]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})


class ViewGuardConfig(ConfigModel):
    """Where the reference view comes from and how strictly the live view must match it."""

    reference: Path = Field(
        description="Image of the reference view, or a video (then see reference_at_s); "
        "relative paths are relative to the camera file."
    )
    reference_at_s: float | None = Field(
        default=None,
        ge=0,
        description="When `reference` is a video: the time of the reference frame.",
    )
    check_every_s: float = Field(
        default=0.5, gt=0, description="Full view comparison every this many seconds of pts."
    )
    min_similarity: float = Field(
        default=0.15,
        ge=0,
        le=1,
        description="Homography inliers as a fraction of the reference's features needed to match.",
    )
    min_inliers: int = Field(default=20, ge=4, description="And at least this many inliers.")
    max_shift: float = Field(
        default=0.03,
        gt=0,
        le=1,
        description="Largest mean displacement of the frame corners under the fitted homography, "
        "as a fraction of the image width (the view must be the same framing, not just the scene).",
    )
    resume_after_s: float = Field(
        default=1.0,
        ge=0,
        description="After a pause, the view must match this long before rules resume.",
    )
    cut_threshold: float = Field(
        default=0.08,
        gt=0,
        le=1,
        description="Mean grey difference (0..1) of a 32x18 thumbnail against the last checked "
        "frame that triggers an immediate check (scene cut, dissolve, pan).",
    )
    work_width: int = Field(
        default=320, ge=64, le=1920, description="Frames are compared downscaled to this width."
    )
    ignore: tuple[tuple[Point, ...], ...] = Field(
        default=(),
        description="Polygons (image px) to leave out of the comparison: burned-in clocks, logos.",
    )

    @field_validator("reference", mode="after")
    @classmethod
    def _resolve_reference(cls, value: Path, info: ValidationInfo) -> Path:
        base = (info.context or {}).get("base_dir")
        path = value.expanduser()
        if base is not None and not path.is_absolute():
            path = Path(base) / path
        if not path.is_file():
            raise ValueError(f"reference file not found: {path}")
        return path

    @field_validator("ignore", mode="after")
    @classmethod
    def _polygons(cls, value: tuple[tuple[Point, ...], ...]) -> tuple[tuple[Point, ...], ...]:
        return three_points_each(value, "ignore")

    @model_validator(mode="after")
    def _verify_reference_kind(self) -> "ViewGuardConfig":
        if self.reference_at_s is not None and self.reference.suffix.lower() in IMAGE_SUFFIXES:
            raise LocatedError(("reference_at_s",), "only meaningful when reference is a video")
        return self

    @property
    def is_video(self) -> bool:
        return self.reference.suffix.lower() not in IMAGE_SUFFIXES
