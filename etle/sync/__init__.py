"""etle.sync: store-and-forward from an edge box to the central store (see :mod:`etle.sync.forward`)."""

from etle.sync.forward import BackgroundSync, StoreAndForward, SyncReport, SyncTarget

__all__ = ["BackgroundSync", "StoreAndForward", "SyncReport", "SyncTarget"]
