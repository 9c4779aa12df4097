"""The edge box's upkeep beside its cameras: store-and-forward and the disk.

``etle edge`` runs for months on a box with a small disk and a flaky uplink.  :class:`Upkeep`, run
by the :class:`~etle.edge.supervisor.Supervisor` in its own process (not in a camera worker):

* **sync** -- :class:`etle.sync.BackgroundSync` pushes the site's tickets, evidence and audit log
  to the central store every ``sync.interval_s`` (the site file's ``sync:``, else
  ``$ETLE_CENTRAL_DB`` / ``$ETLE_CENTRAL_EVIDENCE``), and the site's report (its health in
  brief: :meth:`etle.edge.supervisor.Supervisor.report`); a central store that cannot be reached
  is retried on the next round and nothing is lost (see :mod:`etle.sync.forward`);
* **disk** -- every ``storage.check_interval_s`` the free space of the disk holding
  ``output_dir``; below ``storage.offload_below_gb`` the media of tickets the central store
  already holds are removed here, oldest first, until ``storage.offload_to_gb`` are free
  (:mod:`etle.evidence.offload`).  The camera workers themselves leave clips out, then stop
  writing, below the lower floors (:mod:`etle.evidence.space`).

Both report to the Prometheus metrics and to ``/health`` (:meth:`Upkeep.state`): free space and
its state (``ok``, ``low``, ``no_clips``, ``full``), what was offloaded, and the sync's pending
tickets, reachability and last success; and whether the box's clock is synchronised
(:mod:`etle.clock.system`), which dates every live ticket.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

from etle.edge.metrics import EdgeMetrics
from etle.edge.site import SiteConfig
from etle.errors import EtleError
from etle.evidence.offload import GB, disk_free, offload_synced

log = logging.getLogger(__name__)

__all__ = ["Upkeep", "sync_target"]

#: how often a low disk without a central store to offload to is said again (seconds)
_NAG_S = 3600.0


def sync_target(site: SiteConfig) -> Any:
    """The central store of ``site`` (:class:`etle.sync.SyncTarget`), or None: the site file's
    ``sync:``, else the environment's ``ETLE_CENTRAL_DB`` / ``ETLE_CENTRAL_EVIDENCE``."""
    from etle.sync import SyncTarget

    if site.sync is not None:
        return SyncTarget(site.sync.central_db, site.sync.central_evidence) if site.sync.enabled else None
    return SyncTarget.from_env()


class Upkeep:
    """Store-and-forward and the disk watch of one site (see the module doc).

    ``free_bytes`` (default: the free space of ``output_dir``'s disk) and ``store`` (default: the
    site's ticket database) can be replaced in tests.
    """

    def __init__(self, site: SiteConfig, metrics: EdgeMetrics, *, target: Any = None,
                 free_bytes: Callable[[], int] | None = None, store: Any = None,
                 report: Callable[[], dict[str, Any]] | None = None) -> None:
        self.site = site
        self.report = report  # the site's health in brief, sent to the central store at each round
        self.metrics = metrics
        self.target = target
        self.out_dir = Path(site.output_dir)
        self._free_bytes = free_bytes or (lambda: disk_free(self.out_dir))
        self._store = store
        self._own_store = store is None
        self._sync: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._free: int | None = None
        self._checked_at: float | None = None
        self._offloaded_tickets = 0
        self._offloaded_bytes = 0
        self._last_offload: dict[str, Any] | None = None
        self._last_nag = -_NAG_S
        self._sync_ok_at: float | None = None
        self._sync_report: Any = None
        self._sync_pushed = 0
        self._clock_synced: bool | None = None
        self._last_clock_nag = -_NAG_S

    # ------------------------------------------------------------------ control

    def start(self) -> "Upkeep":
        if self.target is not None and self._store is None:
            from etle.store import open_store

            self._store = open_store(self.site.db_url)
        if self.target is not None:
            from etle.sync import BackgroundSync, StoreAndForward

            interval = self.site.sync.interval_s if self.site.sync is not None else 30.0
            forward = StoreAndForward(self._store, self.out_dir, self.target, site=self.site.site, status=self.report)
            self._sync = BackgroundSync(forward, interval_s=interval, on_report=self._on_sync).start()
            log.info("store-and-forward to %s every %.0f s", forward.target_name, interval)
        else:
            log.warning("no central store (site file 'sync:' or ETLE_CENTRAL_DB / ETLE_CENTRAL_EVIDENCE): "
                        "tickets and evidence stay on this box")
        self.check_disk()
        self.check_clock()
        self._thread = threading.Thread(target=self._loop, name="etle-disk", daemon=True)
        self._thread.start()
        return self

    def stop(self, *, flush_timeout_s: float = 30.0) -> None:
        """End the disk watch and the sync, with one last push where the central store answered."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10.0)
        if self._sync is not None:
            last = self._sync.last_report
            try:
                self._sync.stop(flush=last is not None and last.reachable, timeout_s=flush_timeout_s)
            except Exception:  # noqa: BLE001 - a failed last push is retried at the next start
                log.exception("last store-and-forward run failed")
            self._sync.forward.close()
        if self._own_store and self._store is not None:
            self._store.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.site.storage.check_interval_s):
            try:
                self.check_disk()
                self.check_clock()
            except Exception:  # noqa: BLE001 - the watch must outlive a bad round
                log.exception("disk check failed")

    # -------------------------------------------------------------------- clock

    def check_clock(self) -> bool | None:
        """Whether this box's clock is synchronised (:mod:`etle.clock.system`): a live camera's
        tickets are dated by it.  Said in /health and the metrics, and as a warning every hour
        while it is not (each ticket's evidence records it too, for the reviewer)."""
        from etle.clock.system import system_clock_synchronized

        synced = system_clock_synchronized()
        with self._lock:
            self._clock_synced = synced
        self.metrics.clock(synced)
        if synced is False and time.monotonic() - self._last_clock_nag >= _NAG_S:
            self._last_clock_nag = time.monotonic()
            log.warning("this box's clock is not synchronised (no NTP/PTP daemon has set it): live tickets are "
                        "dated by it and the review page marks them; run chrony or systemd-timesyncd")
        return synced

    # --------------------------------------------------------------------- disk

    def check_disk(self) -> int:
        """Measure the free space, offload when it is low; returns the free bytes."""
        cfg = self.site.storage
        free = self._free_bytes()
        if cfg.offload_below_gb and free < cfg.offload_below_gb * GB:
            if self.target is not None:
                free = self._offload(free)
            elif time.monotonic() - self._last_nag >= _NAG_S:
                self._last_nag = time.monotonic()
                log.warning("%.2f GB free on the evidence disk (%s), under %.2f GB, and no central store to "
                            "offload to: set 'sync:' in the site file, or free space by hand", free / GB,
                            self.out_dir, cfg.offload_below_gb)
        with self._lock:
            self._free, self._checked_at = free, time.monotonic()
        self.metrics.disk(free)
        return free

    def _offload(self, free: int) -> int:
        cfg = self.site.storage
        reason = f"{free / GB:.2f} GB free, under {cfg.offload_below_gb:g} GB"
        try:
            report = offload_synced(self._store, _storage(self.out_dir), free_target=int(cfg.offload_to_gb * GB),
                                    free_bytes=self._free_bytes, central=self.target.evidence, reason=reason)
        except EtleError as exc:
            log.error("offloading synced evidence failed: %s", exc)
            return self._free_bytes()
        after = report.free_bytes if report.free_bytes is not None else self._free_bytes()
        with self._lock:
            self._offloaded_tickets += report.tickets
            self._offloaded_bytes += report.bytes
            self._last_offload = {"tickets": report.tickets, "bytes": report.bytes, "free_before": free,
                                  "free_after": after, "reached": report.reached, "at": time.time()}
        self.metrics.offloaded(report.tickets, report.bytes)
        if report.tickets:
            log.info("disk low (%s): removed the media of %d synced ticket(s), %.1f MB; %.2f GB free",
                     reason, report.tickets, report.bytes / 1e6, after / GB)
        if not report.reached:
            log.warning("%.2f GB free after offloading every synced ticket's media: the rest waits for the central "
                        "store (%d pending)", after / GB, self._pending())
        return after

    def _pending(self) -> int:
        report = self._sync_report
        return int(report.pending) if report is not None else -1

    def disk_state(self, free: int | None) -> str:
        cfg = self.site.storage
        if free is None:
            return "unknown"
        if cfg.reserve_gb and free < cfg.reserve_gb * GB:
            return "full"
        if cfg.clips_below_gb and free < cfg.clips_below_gb * GB:
            return "no_clips"
        if cfg.offload_below_gb and free < cfg.offload_below_gb * GB:
            return "low"
        return "ok"

    # --------------------------------------------------------------------- sync

    def _on_sync(self, report: Any) -> None:
        with self._lock:
            self._sync_report = report
            if report.ok:
                self._sync_ok_at = time.time()
            self._sync_pushed += report.tickets_pushed
        self.metrics.sync(report, self._sync_ok_at)

    # ------------------------------------------------------------------- health

    def state(self) -> dict[str, Any]:
        """The ``storage`` and ``sync`` sections of ``/health``."""
        with self._lock:
            free = self._free
            storage = {
                "path": str(self.out_dir),
                "free_gb": round(free / GB, 3) if free is not None else None,
                "state": self.disk_state(free),
                "offloaded_tickets": self._offloaded_tickets,
                "offloaded_bytes": self._offloaded_bytes,
                "last_offload": self._last_offload,
            }
            report = self._sync_report
            sync: dict[str, Any] = {"enabled": self.target is not None}
            if self.target is not None:
                sync.update({
                    "target": self._sync.forward.target_name if self._sync is not None else None,
                    "reachable": report.reachable if report is not None else None,
                    "pending": report.pending if report is not None else None,
                    "last_success_age_s": round(time.time() - self._sync_ok_at, 1) if self._sync_ok_at else None,
                    "tickets_pushed": self._sync_pushed,
                    "last_error": (report.error or (report.failed[0] if report.failed else None)) if report else None,
                })
            clock = {"synchronized": self._clock_synced}
        return {"storage": storage, "sync": sync, "clock": clock}

    @property
    def degraded(self) -> bool:
        """Evidence is being left out: clips (``no_clips``) or whole violations (``full``)."""
        with self._lock:
            return self.disk_state(self._free) in ("no_clips", "full")


def _storage(root: Path) -> Any:
    from etle.evidence.storage import LocalEvidenceStorage

    return LocalEvidenceStorage(root)
