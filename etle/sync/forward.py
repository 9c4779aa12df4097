"""Store-and-forward: push an edge box's tickets and evidence to the central store.

Written by hand for a flaky network.  The edge writes every ticket and bundle locally first
(:func:`etle.evidence.record_violation`); :class:`StoreAndForward` copies them to a central
ticket database and evidence location whenever both are reachable:

1. the site's public keys (so the central store can verify signatures);
2. each ticket not yet marked ``synced_at``, oldest first: its evidence files (each checked
   against the digest recorded locally, uploaded only when absent or different centrally),
   then the ticket with its plate reads, file digests and audit log, inserted by its stable
   ``uid`` (a retry finds it and inserts nothing), then ``synced_at`` locally;
3. audit entries recorded after a ticket was synced (reviews, corrections, pruning), from a
   high-water mark kept per central store, each inserted once by its ``uid``;
4. the chain heads of cameras whose tickets are all synced;
5. where a ``site`` and a ``status`` are given (``etle edge``), the site's report: its health in
   brief, replaced at every round (``site_status``, shown by the central review app's ``/sites``).

Any failure leaves the local mark untouched, so the next run redoes the step and nothing is
lost or duplicated.  A central store that cannot be reached makes :meth:`run_once` return a
report with ``reachable=False``; :class:`BackgroundSync` runs it every few seconds in a thread.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etle.config.settings import settings
from etle.errors import EtleError, StoreError
from etle.evidence.builder import PRUNED_NAME
from etle.evidence.chain import head_key
from etle.evidence.storage import EvidenceStorage, LocalEvidenceStorage, open_evidence_storage
from etle.store.repository import TicketStore, TicketView

log = logging.getLogger(__name__)

CENTRAL_DB_ENV = "ETLE_CENTRAL_DB"
CENTRAL_EVIDENCE_ENV = "ETLE_CENTRAL_EVIDENCE"


@dataclass(frozen=True, slots=True)
class SyncTarget:
    """The central store: a ticket database URL and an evidence location (folder or s3://)."""

    db_url: str
    evidence: str

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> SyncTarget | None:
        """From ``ETLE_CENTRAL_DB`` and ``ETLE_CENTRAL_EVIDENCE`` (None when unset)."""
        if environ is not None:
            db, evidence = environ.get(CENTRAL_DB_ENV, ""), environ.get(CENTRAL_EVIDENCE_ENV, "")
        else:
            now = settings()
            db, evidence = now.central_db, now.central_evidence
        if not db and not evidence:
            return None
        if not db or not evidence:
            raise StoreError(f"set both {CENTRAL_DB_ENV} and {CENTRAL_EVIDENCE_ENV} to sync, or neither")
        return cls(db, evidence)


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one :meth:`StoreAndForward.run_once` did."""

    reachable: bool
    tickets_pushed: int = 0
    tickets_present: int = 0
    files_uploaded: int = 0
    files_present: int = 0
    actions_pushed: int = 0
    actions_present: int = 0
    heads: int = 0
    pending: int = 0
    failed: tuple[str, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.reachable and not self.failed and self.error is None


@dataclass
class _Tally:
    tickets_pushed: int = 0
    tickets_present: int = 0
    files_uploaded: int = 0
    files_present: int = 0
    actions_pushed: int = 0
    actions_present: int = 0
    heads: int = 0
    failed: list[str] = field(default_factory=list)


class _Unreachable(Exception):
    pass


class StoreAndForward:
    """Pushes ``local`` (a TicketStore) and ``local_evidence`` to ``target``.

    The central database and storage are opened on first use and reopened after a failure.
    ``central_store`` / ``central_storage`` factories can be replaced in tests.
    """

    def __init__(
        self,
        local: TicketStore,
        local_evidence: EvidenceStorage | Path | str,
        target: SyncTarget,
        *,
        batch: int = 100,
        central_store: Callable[[str], TicketStore] = TicketStore,
        central_storage: Callable[[str], EvidenceStorage] = open_evidence_storage,
        site: str = "",
        status: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.local = local
        self.site = site
        self.status = status
        self.local_evidence = (
            local_evidence if not isinstance(local_evidence, (str, Path)) else LocalEvidenceStorage(local_evidence)
        )
        self.target = target
        self.batch = batch
        self._open_store = central_store
        self._open_storage = central_storage
        self._central: TicketStore | None = None
        self._storage: EvidenceStorage | None = None
        self._lock = threading.Lock()

    @property
    def target_name(self) -> str:
        from sqlalchemy.engine import make_url

        try:
            db = make_url(self.target.db_url).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - an unparsable URL fails on open with a clear error
            db = "?"
        return f"{db} + {self.target.evidence}"

    def close(self) -> None:
        if self._central is not None:
            self._central.close()
        self._central = None
        self._storage = None

    def _connect(self) -> tuple[TicketStore, EvidenceStorage]:
        if self._central is None:
            self._central = self._open_store(self.target.db_url)
        if self._storage is None:
            self._storage = self._open_storage(self.target.evidence)
        return self._central, self._storage

    def _reachable(self) -> bool:
        if self._central is None:
            return False
        try:
            from sqlalchemy import text

            with self._central.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - any failure means unreachable
            return False
        return True

    def run_once(self) -> SyncReport:
        """Push everything pending once; never raises for an unreachable central store."""
        with self._lock:
            tally = _Tally()
            try:
                central, storage = self._connect()
                self._push_keys(central)
                self._push_tickets(central, storage, tally)
                self._push_actions(central, tally)
                self._push_heads(storage, tally)
                self._push_status(central)
            except (_Unreachable, EtleError) as exc:
                message = str(exc)
                reachable = not isinstance(exc, _Unreachable) and self._reachable()
                self.close()
                log.warning("sync to %s stopped: %s", self.target_name, message)
                return SyncReport(reachable=reachable, **self._fields(tally), pending=self._pending(), error=message)
            report = SyncReport(reachable=True, **self._fields(tally), pending=self._pending())
            if report.tickets_pushed or report.actions_pushed or report.failed:
                log.info("sync to %s: %d tickets, %d files, %d audit entries pushed; %d failed; %d pending",
                         self.target_name, report.tickets_pushed, report.files_uploaded, report.actions_pushed,
                         len(report.failed), report.pending)
            return report

    @staticmethod
    def _fields(t: _Tally) -> dict[str, Any]:
        return {
            "tickets_pushed": t.tickets_pushed, "tickets_present": t.tickets_present,
            "files_uploaded": t.files_uploaded, "files_present": t.files_present,
            "actions_pushed": t.actions_pushed, "actions_present": t.actions_present,
            "heads": t.heads, "failed": tuple(t.failed),
        }

    def _pending(self) -> int:
        try:
            return len(self.local.unsynced_keys())
        except StoreError:
            return -1

    def _central_call(self, fn: Callable[[], Any]) -> Any:
        """Run a central call; a failure while the central store is unreachable aborts the run."""
        try:
            return fn()
        except StoreError as exc:
            if not self._reachable():
                raise _Unreachable(str(exc)) from exc
            raise

    def _push_status(self, central: TicketStore) -> None:
        """The site's report to the central store (its health in brief and what waits here), at
        every round that reached it: the central review app lists each box and when it last did."""
        if not self.site or self.status is None:
            return
        try:
            data = json.loads(json.dumps({**self.status(), "pending": self._pending()}, default=str))
        except Exception:  # noqa: BLE001 - a report that cannot be made must not stop the sync
            log.exception("the site's report to the central store could not be made")
            return
        self._central_call(lambda: central.report_site_status(self.site, data))

    def _push_keys(self, central: TicketStore) -> None:
        for kid, b64 in self.local.site_keys().items():
            self._central_call(lambda kid=kid, b64=b64: central.register_site_key(kid, b64))

    def _push_tickets(self, central: TicketStore, storage: EvidenceStorage, tally: _Tally) -> None:
        skipped: set[int] = set()
        while True:
            batch = [t for t in self.local.unsynced(limit=self.batch + len(skipped)) if t.id not in skipped]
            if not batch:
                return
            for ticket in batch:
                try:
                    self._push_ticket(ticket, central, storage, tally)
                except _Unreachable:
                    raise
                except EtleError as exc:
                    if not self._reachable() and self._central is not None and isinstance(exc, StoreError):
                        raise _Unreachable(str(exc)) from exc
                    tally.failed.append(f"ticket {ticket.reference}: {exc}")
                    log.error("sync of ticket %s failed: %s", ticket.reference, exc)
                    skipped.add(ticket.id)

    def _push_ticket(self, ticket: TicketView, central: TicketStore, storage: EvidenceStorage, tally: _Tally) -> None:
        key = ticket.evidence_key
        if key:
            names = [f for f in ticket.evidence_files if f.pruned_at is None]
            for f in names:
                self._push_file(f"{key}/{f.name}", f.sha256, storage, tally)
            if any(f.pruned_at is not None for f in ticket.evidence_files):
                data = self.local_evidence.read_bytes(f"{key}/{PRUNED_NAME}")
                self._central_call(lambda: storage.put_bytes(f"{key}/{PRUNED_NAME}", data))
        record = self.local.record(ticket.id)
        path = storage.uri(key) if key else ticket.evidence_path
        _, created = self._central_call(lambda: central.import_record(record, evidence_path=path))
        if created:
            tally.tickets_pushed += 1
        else:
            tally.tickets_present += 1
        self.local.mark_synced([ticket.id])

    def _push_file(self, key: str, sha256: str, storage: EvidenceStorage, tally: _Tally) -> None:
        local_sha = self.local_evidence.sha256(key)
        if local_sha is None:
            raise StoreError(f"evidence file {key} is missing locally")
        if local_sha != sha256:
            raise StoreError(f"evidence file {key} was altered locally (sha256 differs from the ticket's record)")
        there = self._central_call(lambda: storage.stat(key))
        if there is not None and self._central_call(lambda: storage.sha256(key)) == sha256:
            tally.files_present += 1
            return
        path = getattr(self.local_evidence, "root", None)
        if path is not None:
            self._central_call(lambda: storage.put_file(key, Path(path) / key, sha256))
        else:  # pragma: no cover - a non-folder local storage
            data = self.local_evidence.read_bytes(key)
            self._central_call(lambda: storage.put_bytes(key, data))
        tally.files_uploaded += 1

    def _push_actions(self, central: TicketStore, tally: _Tally) -> None:
        name = self.target_name
        mark = self.local.sync_mark(name)
        while True:
            actions = self.local.actions_after(mark, limit=500)
            if not actions:
                return
            unsynced = {uid for uid, _ in self.local.unsynced_keys()}
            ready = []
            for a in actions:
                if a.ticket_uid in unsynced:
                    break  # its ticket is not central yet: stop here, retry next run
                ready.append(a)
            if not ready:
                return
            inserted, present = self._central_call(lambda: central.import_actions(ready))
            tally.actions_pushed += inserted
            tally.actions_present += present
            mark = ready[-1].id
            self.local.set_sync_mark(name, mark)
            if len(ready) < len(actions):
                return

    def _push_heads(self, storage: EvidenceStorage, tally: _Tally) -> None:
        unsynced_cameras = {camera for _, camera in self.local.unsynced_keys()}
        cameras = set(self.local.camera_ids()) - unsynced_cameras
        for camera in sorted(cameras):
            key = head_key(camera)
            if self.local_evidence.stat(key) is None:
                continue
            data = self.local_evidence.read_bytes(key)
            there = self._central_call(lambda: storage.stat(key))
            if there is not None and self._central_call(lambda: storage.read_bytes(key)) == data:
                continue
            self._central_call(lambda: storage.put_bytes(key, data))
            tally.heads += 1


class BackgroundSync:
    """Runs :meth:`StoreAndForward.run_once` every ``interval_s`` in a daemon thread.

    :meth:`stop` ends the thread and, with ``flush=True``, makes one last attempt.
    """

    def __init__(self, forward: StoreAndForward, *, interval_s: float = 30.0,
                 on_report: Callable[[SyncReport], None] | None = None) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self.forward = forward
        self.interval_s = interval_s
        self.on_report = on_report
        self.last_report: SyncReport | None = None
        self.runs = 0
        self.unreachable_runs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="etle-sync", daemon=True)

    def start(self) -> BackgroundSync:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.last_report = self.forward.run_once()
                self.unreachable_runs += 0 if self.last_report.reachable else 1
                if self.on_report is not None:
                    self.on_report(self.last_report)
            except Exception:  # noqa: BLE001 - a sync bug must not kill the pipeline
                log.exception("background sync failed")
            self.runs += 1
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    def stop(self, *, flush: bool = True, timeout_s: float = 60.0) -> SyncReport | None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if flush:
            self.last_report = self.forward.run_once()
            if self.on_report is not None:
                self.on_report(self.last_report)
        return self.last_report
