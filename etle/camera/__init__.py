"""etle.camera stage: the camera file (config) and the reference-view guard."""

from etle.camera.config import CameraConfig, CameraConfigError, load_camera
from etle.camera.viewguard import ViewGuard, ViewStatus

__all__ = ["CameraConfig", "CameraConfigError", "ViewGuard", "ViewStatus", "load_camera"]
