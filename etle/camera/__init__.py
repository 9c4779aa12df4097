"""etle.camera stage: the camera file (config); the reference-view guard is etle.viewguard."""

from etle.camera.config import CameraConfig, CameraConfigError, load_camera
from etle.viewguard.guard import ViewGuard, ViewStatus

__all__ = ["CameraConfig", "CameraConfigError", "ViewGuard", "ViewStatus", "load_camera"]
