"""etle.viewguard stage: rules run only while the camera shows the view its zones were drawn on.

The guard is :mod:`etle.viewguard.guard`; its configuration (the camera file's ``view_guard``
section) is :mod:`etle.viewguard.config`.
"""

from etle.viewguard.guard import ViewGuard, ViewStatus

__all__ = ["ViewGuard", "ViewStatus"]
