"""Store-and-forward: an edge box (SQLite + evidence folder) pushes to a central store (PostgreSQL,
or SQLite, + a folder or S3) idempotently; the central copy verifies; retries never duplicate;
an outage of the central database part-way through a run loses and duplicates nothing."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from etle.errors import StoreError
from etle.evidence import EvidenceWriter, record_violation
from etle.evidence.signing import ManifestSigner, trusted_keys
from etle.evidence.storage import LocalEvidenceStorage, open_evidence_storage
from etle.evidence.verify import verify_evidence
from etle.store import TicketStore
from etle.store.models import Ticket
from etle.sync import BackgroundSync, StoreAndForward, SyncTarget


class Edge:
    """An edge box: local SQLite store, evidence folder, site key."""

    def __init__(self, root: Path, make_request) -> None:
        self.root = root
        self.make_request = make_request
        self.store = TicketStore(f"sqlite:///{root / 'edge.db'}")
        self.signer = ManifestSigner.generate()
        self.store.register_site_key(self.signer.key_id, self.signer.public_key_b64)
        self.evidence = root / "ev"
        self.writer = EvidenceWriter(self.evidence, signer=self.signer)
        self.store.add_user("officer1")

    def record(self, track: int, camera: str = "jbi-01") -> int:
        return record_violation(self.writer, self.store, self.make_request(track, camera=camera, clip=track % 5 == 0),
                                {"run_id": "r1"}).ticket_id

    def forward(self, db_url: str, evidence: str) -> StoreAndForward:
        return StoreAndForward(self.store, self.evidence, SyncTarget(db_url, evidence))


@pytest.fixture
def edge(tmp_path: Path, make_evidence_request):
    (tmp_path / "edge").mkdir()
    e = Edge(tmp_path / "edge", make_evidence_request)
    yield e
    e.store.close()


def central_verify(db_url: str, evidence: str):
    with TicketStore(db_url) as central:
        return verify_evidence(open_evidence_storage(evidence), store=central,
                               keys=trusted_keys(Path("/nonexistent"), central.site_keys()))


def test_sync_pushes_everything_once(edge: Edge, tmp_path: Path, postgres_databases) -> None:
    central_db = postgres_databases.create()
    central_ev = str(tmp_path / "central-ev")
    ids = [edge.record(i) for i in range(1, 5)] + [edge.record(7, camera="jbi-02")]
    edge.store.transition(ids[0], "approve", actor="officer1")
    forward = edge.forward(central_db, central_ev)
    first = forward.run_once()
    assert first.ok and first.reachable
    assert (first.tickets_pushed, first.pending, first.heads) == (5, 0, 2)
    assert first.files_uploaded == sum(len(edge.store.get(i).evidence_files) for i in ids)
    again = forward.run_once()
    assert (again.tickets_pushed, again.files_uploaded, again.actions_pushed, again.heads) == (0, 0, 0, 0)
    # a review on the edge after the sync travels as audit entries
    edge.store.transition(ids[0], "send_notice", actor="system:notices")
    edge.store.correct_plate(ids[1], "BH9999ZZ", actor="officer1")
    later = forward.run_once()
    assert later.ok and later.actions_pushed == 2
    forward.close()
    with TicketStore(central_db) as central:
        assert central.count() == 5
        local_view, central_view = edge.store.get(ids[0]), central.get(edge.store.get(ids[0]).uid)
        assert central_view.reference == local_view.reference and central_view.status == "notice_sent"
        assert central_view.evidence_path == str((Path(central_ev) / local_view.evidence_key).resolve())
        assert [a.uid for a in central.actions(central_view.id)] == [a.uid for a in edge.store.actions(ids[0])]
        assert central.get(edge.store.get(ids[1]).uid).plate_text == "BH9999ZZ"
    report = central_verify(central_db, central_ev)
    assert report.ok, [f.line() for f in report.findings]
    assert (report.bundles, report.tickets) == (5, 5)


def test_retry_after_a_crash_between_central_insert_and_local_mark(edge: Edge, tmp_path: Path, monkeypatch) -> None:
    central_db = f"sqlite:///{tmp_path / 'central.db'}"
    edge.record(1)
    forward = edge.forward(central_db, str(tmp_path / "central-ev"))

    def crash(ids, at=None):
        raise StoreError("disk I/O error")

    monkeypatch.setattr(edge.store, "mark_synced", crash)
    failed = forward.run_once()
    assert failed.failed and failed.pending == 1
    monkeypatch.undo()
    retried = forward.run_once()
    assert (retried.tickets_pushed, retried.tickets_present, retried.pending) == (0, 1, 0)
    with TicketStore(central_db) as central:
        assert central.count() == 1


def test_locally_altered_evidence_is_not_forwarded(edge: Edge, tmp_path: Path) -> None:
    tid = edge.record(1)
    key = edge.store.get(tid).evidence_key
    (edge.evidence / key / "overview.jpg").write_bytes(b"not the picture")
    report = edge.forward(f"sqlite:///{tmp_path / 'central.db'}", str(tmp_path / "c")).run_once()
    assert report.reachable and not report.ok and "altered locally" in report.failed[0]
    assert report.pending == 1


def test_reference_collision_at_the_central_store(edge: Edge, tmp_path: Path) -> None:
    central_db = f"sqlite:///{tmp_path / 'central.db'}"
    tid = edge.record(1)
    ref = edge.store.get(tid).reference
    with TicketStore(central_db) as central:  # another edge box already used that code
        from etle.store import TicketIn
        from datetime import datetime, timezone

        other = central.add(TicketIn(camera_id="x", rule="red_light", track_id=1, occurred_at=datetime.now(timezone.utc)))
        with central.engine.begin() as conn:
            conn.execute(Ticket.__table__.update().where(Ticket.id == other).values(reference=ref))
    assert edge.forward(central_db, str(tmp_path / "c")).run_once().ok
    with TicketStore(central_db) as central:
        moved = central.get(edge.store.get(tid).uid)
        assert moved.reference != ref and central.actions(moved.id)[-1].action == "reassign_reference"


def test_unreachable_central_store_is_reported_not_raised(edge: Edge, tmp_path: Path) -> None:
    edge.record(1)
    report = edge.forward("postgresql+psycopg://etle:secret@127.0.0.1:1/x", str(tmp_path / "c")).run_once()
    assert not report.reachable and report.pending == 1 and "secret" not in (report.error or "")
    with pytest.raises(StoreError, match="set both"):
        SyncTarget.from_env({"ETLE_CENTRAL_DB": "sqlite://"})
    assert SyncTarget.from_env({}) is None


# ---------------------------------------------------------------- the outage


class FlakyProxy:
    """A TCP proxy to the database server that can be taken down (every connection cut, new
    ones refused) and brought back, like a flaky uplink or a restarted server."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.refused = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up.is_set():
                self.refused += 1
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def down(self) -> None:
        self.up.clear()
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            self.conns.clear()

    def close(self) -> None:
        self.down()
        self.listener.close()


def test_outage_during_a_run_loses_and_duplicates_nothing(edge: Edge, tmp_path: Path, postgres_databases) -> None:
    central_db = postgres_databases.create()
    url = make_url(central_db)
    central_ev = str(tmp_path / "central-ev")
    # phase 0: a wrong port: nothing reaches the central store, nothing is marked
    wrong = edge.forward(url.set(port=1).render_as_string(hide_password=False), central_ev)
    edge.record(1000)
    assert not wrong.run_once().reachable
    proxy = FlakyProxy(url.host or "127.0.0.1", url.port or 5432)
    flaky_url = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    forward = edge.forward(flaky_url, central_ev)
    background = BackgroundSync(forward, interval_s=0.05).start()

    def wait_for(condition, what: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.02)

    total, down_at, up_at = 60, 15, 40
    try:
        for i in range(total):
            if i == down_at:  # the first tickets reached the central store...
                wait_for(lambda: background.last_report is not None and background.last_report.reachable
                         and background.last_report.pending == 0, "a complete sync before the outage")
                synced_before = 1 + down_at
                proxy.down()  # ...then the uplink drops (or the server stops) mid-run
            if i == up_at:
                wait_for(lambda: background.unreachable_runs >= 3, "syncs that meet the outage")
                proxy.up.set()  # and comes back
            edge.record(i)
            time.sleep(0.01)
        final = background.stop(flush=True)
    finally:
        proxy.close()
    assert final is not None
    unreachable = background.unreachable_runs
    written = total + 1
    local = edge.store.unsynced_keys()
    with TicketStore(central_db) as central:
        with central.engine.connect() as conn:
            n_central = conn.execute(select(func.count()).select_from(Ticket)).scalar()
            n_unique = conn.execute(select(func.count(func.distinct(Ticket.uid)))).scalar()
            dupes = conn.execute(select(func.count()).select_from(
                select(Ticket.camera_id, Ticket.source, Ticket.run_id, Ticket.track_id, Ticket.rule)
                .group_by(Ticket.camera_id, Ticket.source, Ticket.run_id, Ticket.track_id, Ticket.rule)
                .having(func.count() > 1).subquery())).scalar()
        edge_uids = {t.ticket.uid for t in edge.store.records()}
        central_uids = {t.ticket.uid for t in central.records()}
    print(f"\nOUTAGE: {written} tickets written on the edge ({synced_before} synced before the outage); "
          f"central unreachable while tickets {down_at}-{up_at - 1} were written; "
          f"{background.runs} background syncs, {unreachable} saw the central store unreachable, "
          f"{proxy.refused} connections refused; central has {n_central} tickets ({n_unique} distinct uids, "
          f"{dupes} duplicated violations); missing {len(edge_uids - central_uids)}; pending on the edge {len(local)}")
    assert final.ok and local == []
    assert n_central == n_unique == written and dupes == 0
    assert edge_uids == central_uids
    assert unreachable >= 1
    report = central_verify(central_db, central_ev)
    assert report.ok, [f.line() for f in report.findings]
    assert report.tickets == written


# ---------------------------------------------------------------- S3


def test_s3_evidence_storage_with_moto(edge: Edge, tmp_path: Path, monkeypatch) -> None:
    moto = pytest.importorskip("moto", reason="moto (dev extra) not installed")
    boto3 = pytest.importorskip("boto3", reason="boto3 (s3 extra) not installed")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with moto.mock_aws():
        boto3.client("s3").create_bucket(Bucket="evidence")
        from etle.evidence.s3 import S3EvidenceStorage

        s3 = open_evidence_storage("s3://evidence/jambi")
        assert isinstance(s3, S3EvidenceStorage) and s3.location == "s3://evidence/jambi/"
        s3.put_bytes("a/b.txt", b"hello")
        assert s3.stat("a/b.txt").bytes == 5 and s3.stat("a/nope") is None and s3.sha256("a/nope") is None
        assert [o.key for o in s3.list("a/")] == ["a/b.txt"] and s3.read_bytes("a/b.txt") == b"hello"
        s3.delete("a/b.txt")
        s3.delete("a/b.txt")
        assert list(s3.list()) == []
        with pytest.raises(StoreError, match="invalid evidence key"):
            s3.put_bytes("../x", b"")
        with pytest.raises(StoreError):
            s3.read_bytes("missing")

        ids = [edge.record(i) for i in range(1, 4)]
        central_db = f"sqlite:///{tmp_path / 'central.db'}"
        report = edge.forward(central_db, "s3://evidence/jambi").run_once()
        assert report.ok and report.tickets_pushed == 3
        assert edge.forward(central_db, "s3://evidence/jambi").run_once().files_uploaded == 0  # idempotent
        with TicketStore(central_db) as central:
            assert central.get(edge.store.get(ids[0]).uid).evidence_path.startswith("s3://evidence/jambi/jbi-01/")
        assert central_verify(central_db, "s3://evidence/jambi").ok
        key = f"{edge.store.get(ids[1]).evidence_key}/closeup.jpg"
        s3.put_bytes(key, s3.read_bytes(key) + b"\x00")
        assert not central_verify(central_db, "s3://evidence/jambi").ok


def test_local_storage_and_locations(tmp_path: Path) -> None:
    store = open_evidence_storage(f"file://{tmp_path}")
    assert isinstance(store, LocalEvidenceStorage)
    src = tmp_path / "src.bin"
    src.write_bytes(b"abc")
    store.put_file("x/y/z.bin", src, "")
    assert store.stat("x/y/z.bin").bytes == 3 and [o.key for o in store.list("x/")] == ["src.bin"][:0] + ["x/y/z.bin"]
    assert not list(tmp_path.rglob(".*.tmp"))
    with pytest.raises(StoreError, match="unsupported evidence location"):
        open_evidence_storage("ftp://host/x")
    with pytest.raises(StoreError, match="invalid evidence key"):
        store.stat("/etc/passwd")


def test_two_syncs_at_once_duplicate_nothing(edge: Edge, tmp_path: Path, postgres_databases) -> None:
    """The background sync and an operator's ``etle sync`` may run together."""
    central_db, central_ev = postgres_databases.create(), str(tmp_path / "central-ev")
    ids = [edge.record(i) for i in range(12)]
    for tid in ids[:4]:
        edge.store.transition(tid, "reject", actor="officer1")
    forwards = [edge.forward(central_db, central_ev) for _ in range(2)]
    reports: list = []
    threads = [threading.Thread(target=lambda f=f: reports.extend(f.run_once() for _ in range(3))) for f in forwards]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.reachable and r.error is None for r in reports), reports
    assert sum(r.tickets_pushed for r in reports) == 12
    with TicketStore(central_db) as central:
        assert central.count() == 12 and central.count_by_status() == {"rejected": 4, "pending_review": 8}
        assert sum(len(central.actions(r.ticket.id)) for r in central.records()) == 12 + 4
    for f in forwards:
        f.close()
