"""Schema migrations on real SQLite and real PostgreSQL: an empty database, a database created by
etle 0.1 (``create_all`` of the first ``tickets`` model, kept verbatim below), the models matching
the newest revision, the append-only audit log, and concurrent first opens."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, ClassVar

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import JSON, Float, Index, Integer, String, Text, UniqueConstraint, create_engine, inspect, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from etle.errors import StoreError
from etle.store import TicketStore, migrate
from etle.store.models import Base, UTCDateTime

# -- the schema of etle 0.1, verbatim (etle/store/models.py before revision 0002) -------------


class LegacyBase(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class LegacyTicket(LegacyBase):
    __tablename__ = "tickets"
    __table_args__ = (
        UniqueConstraint("camera_id", "source", "run_id", "track_id", "rule", name="uq_tickets_dedupe"),
        Index("ix_tickets_status_occurred", "status", "occurred_at"),
        Index("ix_tickets_camera_occurred", "camera_id", "occurred_at"),
        Index("ix_tickets_plate_text", "plate_text"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    camera_id: Mapped[str] = mapped_column(String(128))
    camera_name: Mapped[str] = mapped_column(String(256), default="")
    location: Mapped[str] = mapped_column(String(512), default="")
    occurred_at: Mapped[datetime] = mapped_column(index=True)
    local_time: Mapped[str] = mapped_column(String(64), default="")
    rule: Mapped[str] = mapped_column(String(64))
    article: Mapped[str | None] = mapped_column(String(64))
    fine: Mapped[int | None] = mapped_column(Integer)
    vehicle_label: Mapped[str] = mapped_column(String(32), default="")
    track_id: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Text, default="")
    run_id: Mapped[str] = mapped_column(String(64), default="")
    frame_index: Mapped[int] = mapped_column(Integer, default=-1)
    plate_text: Mapped[str] = mapped_column(String(32), default="")
    plate_confidence: Mapped[float] = mapped_column(Float, default=0.0)
    plate_candidates: Mapped[list[Any]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(32), default="pending_review")
    evidence_path: Mapped[str] = mapped_column(Text, default="")
    manifest_sha256: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=lambda: datetime.now(timezone.utc))


T0 = datetime(2026, 11, 28, 3, 0, tzinfo=timezone.utc)


def legacy_rows(n: int) -> list[LegacyTicket]:
    return [
        LegacyTicket(
            reference=f"ETLE-20261128-AAAA{i:02d}", camera_id=f"jbi-0{i % 2}", camera_name="Simpang Pulai", location="Jambi",
            occurred_at=T0, local_time="2026-11-28T10:00:00+07:00", rule="red_light", article="287(2)", fine=500000,
            vehicle_label="car", track_id=i, source="a.mp4", run_id="r1", frame_index=10 + i, plate_text=f"BH{1000 + i}AB",
            plate_confidence=0.9, plate_candidates=[{"text": f"BH{1000 + i}AB", "confidence": 0.9, "frame_index": 3}],
            status="confirmed" if i == 2 else "pending_review", evidence_path=f"/ev/{i}", manifest_sha256="ab" * 32,
            created_at=T0,
        )
        for i in range(n)
    ]


def make_legacy(url: str, n: int = 3) -> None:
    from sqlalchemy.orm import Session

    engine = create_engine(url)
    LegacyBase.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        session.add_all(legacy_rows(n))
    engine.dispose()

@contextmanager
def legacy_at(db_url: str, rows: int, revision: str) -> Iterator[Any]:
    """A database of ``rows`` legacy tickets migrated up to ``revision``: a connection to it."""
    make_legacy(db_url, rows)
    engine = create_engine(db_url)
    migrate.upgrade(engine, revision)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


@contextmanager
def downgraded(db_url: str, revision: str) -> Iterator[Any]:
    """The database migrated back down to ``revision``: a connection to it."""
    from alembic import command

    engine = create_engine(db_url)
    cfg = migrate.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()



def schema_diff(engine: Any, metadata: Any) -> list[Any]:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)


def test_empty_database_is_migrated_to_head(db_url: str) -> None:
    with TicketStore(db_url) as store:
        with store.engine.connect() as conn:
            assert migrate.current_revision(conn) == migrate.head_revision()
        tables = set(inspect(store.engine).get_table_names())
        assert {"tickets", "cameras", "users", "plate_reads", "evidence_files", "review_actions", "site_keys",
                "sync_state", "alembic_version"} <= tables
        assert schema_diff(store.engine, Base.metadata) == []


def test_first_revision_is_exactly_the_legacy_schema(db_url: str) -> None:
    engine = create_engine(db_url)
    migrate.upgrade(engine, migrate.FIRST_REVISION)
    assert schema_diff(engine, LegacyBase.metadata) == []
    engine.dispose()


def test_legacy_database_is_upgraded_with_its_data(db_url: str) -> None:
    make_legacy(db_url, 3)
    with TicketStore(db_url) as store:
        assert schema_diff(store.engine, Base.metadata) == []
        views = sorted(store.list(), key=lambda v: v.track_id)
        assert [v.track_id for v in views] == [0, 1, 2]
        assert [v.status for v in views] == ["pending_review", "pending_review", "confirmed"]
        assert all(len(v.uid) == 32 for v in views) and len({v.uid for v in views}) == 3
        assert all(v.plate_colour == "" and v.plate_category == "" for v in views)  # revision 0003
        assert views[1].reference == "ETLE-20261128-AAAA01" and views[1].occurred_at == T0
        # backfilled: cameras, plate reads, one 'create' audit entry reaching the status found
        reads = store.plate_reads(views[1].id)
        assert [(r.text, r.chosen, r.source) for r in reads] == [("BH1001AB", True, "ocr")]
        acts = store.actions(views[2].id)
        assert [(a.action, a.to_status, a.data.get("backfilled")) for a in acts] == [("create", "confirmed", True)]
        with store.engine.connect() as conn:
            assert sorted(conn.execute(text("SELECT id FROM cameras")).scalars()) == ["jbi-00", "jbi-01"]
        # and it works as a current store
        from etle.store import TicketIn

        tid = store.add(TicketIn(camera_id="jbi-00", rule="red_light", track_id=99, occurred_at=T0))
        assert store.get(tid) is not None and store.count() == 4


def test_models_match_newest_revision_after_legacy_upgrade_on_reopen(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    make_legacy(url, 1)
    TicketStore(url).close()
    with TicketStore(url, create=False) as store:  # already current: opens without migrating
        assert store.count() == 1


def test_outdated_database_is_refused_without_create(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    make_legacy(url, 1)
    with pytest.raises(StoreError, match="schema revision none.*etle db upgrade"):
        TicketStore(url, create=False)
    with pytest.raises(StoreError, match="no ticket database"):
        TicketStore(f"sqlite:///{tmp_path / 'missing.db'}", create=False)
    assert not (tmp_path / "missing.db").exists()


def test_downgrade_to_first_revision_and_back(db_url: str) -> None:
    make_legacy(db_url, 2)
    TicketStore(db_url).close()
    engine = create_engine(db_url)
    from alembic import command

    cfg = migrate.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, migrate.FIRST_REVISION)
    assert schema_diff(engine, LegacyBase.metadata) == []
    engine.dispose()
    with TicketStore(db_url) as store:
        assert store.count() == 2


def test_audit_log_is_append_only_in_the_database(db_url: str) -> None:
    from etle.store import TicketIn

    with TicketStore(db_url) as store:
        store.add(TicketIn(camera_id="c", rule="red_light", track_id=1, occurred_at=T0))
        for statement in ("UPDATE review_actions SET actor = 'someone'", "DELETE FROM review_actions"):
            with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
                conn.execute(text(statement))
        assert len(store.actions(1)) == 1


def test_concurrent_first_opens_migrate_once(fresh_postgres_url: str) -> None:
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            TicketStore(fresh_postgres_url).close()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with TicketStore(fresh_postgres_url) as store, store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1


# -- revision 0003: plate colour and category ---------------------------------------------------


def test_revision_0003_adds_plate_colour_and_keeps_rows(db_url: str) -> None:
    from etle.store import TicketIn

    with legacy_at(db_url, 3, "0002") as conn:
        assert migrate.current_revision(conn) == "0002"
        assert "plate_colour" not in {c["name"] for c in inspect(conn).get_columns("tickets")}
    with TicketStore(db_url) as store:  # opening upgrades 0002 -> head
        with store.engine.connect() as conn:
            assert migrate.current_revision(conn) == migrate.head_revision()
        assert schema_diff(store.engine, Base.metadata) == []
        views = sorted(store.list(), key=lambda v: v.track_id)
        assert [(v.track_id, v.plate_text, v.status) for v in views] == [
            (0, "BH1000AB", "pending_review"), (1, "BH1001AB", "pending_review"), (2, "BH1002AB", "confirmed")]
        assert {(v.plate_colour, v.plate_category) for v in views} == {("", "")}
        uids = {v.uid for v in views}
        tid = store.add(TicketIn(camera_id="jbi-00", rule="red_light", track_id=50, occurred_at=T0,
                                 plate_text="BH7AB", plate_colour="green", plate_category="free_trade_zone"))
        got = store.get(tid)
        assert got is not None and (got.plate_colour, got.plate_category) == ("green", "free_trade_zone")
    # and back down to 0002: the columns go, the rows stay
    with downgraded(db_url, "0002") as conn:
        assert "plate_colour" not in {c["name"] for c in inspect(conn).get_columns("tickets")}
        assert conn.execute(text("SELECT count(*) FROM tickets")).scalar() == 4
        assert uids <= set(conn.execute(text("SELECT uid FROM tickets")).scalars())


# -- revision 0004: the registered owner (vehicle-registry lookup) ------------------------------


def test_revision_0004_adds_owner_columns_and_keeps_rows(db_url: str) -> None:
    owner_columns = {"owner_name", "owner_address", "vehicle_make", "vehicle_colour", "registry_status",
                     "registry_checked_at", "registry_mismatch"}
    with legacy_at(db_url, 3, "0003") as conn:
        assert not owner_columns & {c["name"] for c in inspect(conn).get_columns("tickets")}
    with TicketStore(db_url) as store:  # opening upgrades 0003 -> head
        with store.engine.connect() as conn:
            assert migrate.current_revision(conn) == migrate.head_revision()
            assert "ix_tickets_status_registry" in {i["name"] for i in inspect(conn).get_indexes("tickets")}
        assert schema_diff(store.engine, Base.metadata) == []
        views = sorted(store.list(), key=lambda v: v.track_id)
        assert [(v.track_id, v.status) for v in views] == [(0, "pending_review"), (1, "pending_review"), (2, "confirmed")]
        assert {(v.owner_name, v.owner_address, v.vehicle_make, v.vehicle_colour, v.registry_status,
                 v.registry_checked_at, v.registry_mismatch) for v in views} == {("", "", "", "", "", None, "")}
        store.record_owner_lookup(views[2].id, status="found", owner={"owner_name": "Budi Contoh", "make": "Honda"},
                                  mismatch="vehicle_type: registry motorcycle, camera car", actor="system:registry")
        got = store.get(views[2].id)
        assert (got.owner_name, got.vehicle_make, got.registry_status) == ("Budi Contoh", "Honda", "found")
        assert got.registry_mismatch.startswith("vehicle_type") and got.status == "confirmed"
    # and back down to 0003: the columns go, the rows and their audit entries stay
    with downgraded(db_url, "0003") as conn:
        assert not owner_columns & {c["name"] for c in inspect(conn).get_columns("tickets")}
        assert conn.execute(text("SELECT count(*) FROM tickets")).scalar() == 3
        assert conn.execute(text("SELECT count(*) FROM review_actions WHERE action = 'registry_lookup'")).scalar() == 1


# -- revision 0005: the notice register (letters produced for posting) -----------------------


def test_revision_0005_adds_the_append_only_notice_register(db_url: str) -> None:
    from datetime import date

    from etle.store import NoticeIn

    with legacy_at(db_url, 2, "0004") as conn:
        assert "notices" not in inspect(conn).get_table_names()
    with TicketStore(db_url) as store:  # opening upgrades 0004 -> head
        with store.engine.connect() as conn:
            assert migrate.current_revision(conn) == migrate.head_revision() == "0008"
            assert {"ix_notices_ticket", "ix_notices_notice_date"} <= {i["name"] for i in inspect(conn).get_indexes("notices")}
        assert schema_diff(store.engine, Base.metadata) == []
        views = sorted(store.list(), key=lambda v: v.track_id)
        store.add_user("rev")
        store.transition(views[0].id, "approve", actor="rev")
        sent = store.send_notices([NoticeIn(views[0].id, date(2026, 11, 30), date(2026, 12, 8), "letters.pdf", "ab" * 32,
                                            "Fiktif (CONTOH)", "Jl. Contoh 1\nJambi")], actor="rev")
        assert [(n.reference, n.addressee_address) for n in sent] == [(views[0].reference, "Jl. Contoh 1\nJambi")]
        assert store.notices() == sent and store.get(views[0].id).status == "notice_sent"
        for statement in ("UPDATE notices SET addressee_name = 'x'", "DELETE FROM notices"):
            with pytest.raises(DBAPIError), store.engine.begin() as conn:
                conn.execute(text(statement))
        assert store.notices() == sent
    # and back down to 0004: the register goes, the tickets and their audit entries stay
    with downgraded(db_url, "0004") as conn:
        assert "notices" not in inspect(conn).get_table_names()
        assert conn.execute(text("SELECT count(*) FROM review_actions WHERE action = 'send_notice'")).scalar() == 1


# -- revision 0006: the payment code (issued at confirmation or blocking) ------------------------


def test_revision_0006_adds_a_unique_payment_code(db_url: str) -> None:
    with legacy_at(db_url, 3, "0005") as conn:
        assert "payment_code" not in {c["name"] for c in inspect(conn).get_columns("tickets")}
    with TicketStore(db_url) as store:  # opening upgrades 0005 -> head
        with store.engine.connect() as conn:
            assert migrate.current_revision(conn) == migrate.head_revision() == "0008"
            index = {i["name"]: i for i in inspect(conn).get_indexes("tickets")}["ix_tickets_payment_code"]
            assert index["unique"]
        assert schema_diff(store.engine, Base.metadata) == []
        views = sorted(store.list(), key=lambda v: v.track_id)
        assert {v.payment_code for v in views} == {""}  # rows kept, no code yet
        store.add_user("rev")
        store.transition(views[0].id, "approve", actor="rev")
        store.transition(views[0].id, "send_notice", actor="rev")
        code = store.transition(views[0].id, "confirm", actor="rev").payment_code
        assert len(code) == 12 and store.by_payment_codes([code.lower()])[code].id == views[0].id
        with pytest.raises(DBAPIError), store.engine.begin() as conn:  # codes are unique
            conn.execute(text("UPDATE tickets SET payment_code = :c WHERE id = :i"), {"c": code, "i": views[1].id})
    with downgraded(db_url, "0005") as conn:
        assert "payment_code" not in {c["name"] for c in inspect(conn).get_columns("tickets")}
        assert conn.execute(text("SELECT count(*) FROM review_actions WHERE action = 'confirm'")).scalar() == 1


# -- revision 0007: when an edge box removed a synced ticket's media ----------------------------


def test_revision_0007_adds_the_local_offload_time(db_url: str) -> None:
    with legacy_at(db_url, 3, "0006") as conn:
        assert "offloaded_at" not in {c["name"] for c in inspect(conn).get_columns("tickets")}
    with TicketStore(db_url) as store:  # opening upgrades 0006 -> head
        with store.engine.connect() as conn:
            assert migrate.current_revision(conn) == migrate.head_revision() == "0008"
        assert schema_diff(store.engine, Base.metadata) == []
        views = sorted(store.list(), key=lambda v: v.track_id)
        assert {v.offloaded_at for v in views} == {None}  # rows kept, nothing removed
        with pytest.raises(StoreError, match="not synced"):  # the only copy is never marked away
            store.mark_offloaded(views[0].id)
        store.mark_synced([views[0].id])
        assert [v.id for v in store.offloadable()] == [views[0].id]
        store.mark_offloaded(views[0].id)
        assert store.get(views[0].id).offloaded_at is not None and store.offloadable() == []
    with downgraded(db_url, "0006") as conn:
        assert "offloaded_at" not in {c["name"] for c in inspect(conn).get_columns("tickets")}
        assert conn.execute(text("SELECT count(*) FROM tickets")).scalar() == 3


# -- revision 0008: what each edge box last reported -------------------------------------------


def test_revision_0008_keeps_one_report_per_site(db_url: str) -> None:
    with legacy_at(db_url, 2, "0007") as conn:
        assert "site_status" not in inspect(conn).get_table_names()
    with TicketStore(db_url) as store:  # opening upgrades 0007 -> head
        with store.engine.connect() as conn:
            assert migrate.current_revision(conn) == migrate.head_revision() == "0008"
        assert schema_diff(store.engine, Base.metadata) == []
        assert store.site_statuses() == []  # no box has reported
        early = datetime(2026, 12, 8, 1, 0, tzinfo=timezone.utc)
        store.report_site_status("jbi-01", {"status": "ok", "pending": 3}, at=early)
        store.report_site_status("bdg-02", {"status": "degraded"}, at=early)
        store.report_site_status("jbi-01", {"status": "degraded", "pending": 0}, at=early.replace(minute=5))
        got = store.site_statuses()
        assert [(s.site, s.data, s.reported_at) for s in got] == [
            ("bdg-02", {"status": "degraded"}, early),
            ("jbi-01", {"status": "degraded", "pending": 0}, early.replace(minute=5))]
    with downgraded(db_url, "0007") as conn:
        assert "site_status" not in inspect(conn).get_table_names()


def test_two_processes_opening_one_new_sqlite_file_at_once(tmp_path) -> None:
    """Two camera workers of one ``etle edge`` open the same new SQLite file at the same moment
    (a barrier), 20 times over: both open it, and it is migrated once.  Before the busy timeout
    was set ahead of the switch to WAL, about one round in ten failed with "database is locked"
    (the switch answered SQLITE_BUSY at once while the other process migrated)."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    for round_ in range(20):
        url = f"sqlite:///{tmp_path / f'etle-{round_}.db'}"
        barrier, results = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=_open_store_at_once, args=(url, barrier, results)) for _ in range(2)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        errors = [e for e in (results.get(timeout=5) for _ in procs) if e]
        assert errors == [], f"round {round_}: {errors}"
        with TicketStore(url, create=False) as store, store.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def _open_store_at_once(url: str, barrier, results) -> None:  # type: ignore[no-untyped-def]
    barrier.wait()
    try:
        TicketStore(url).close()
        results.put("")
    except StoreError as exc:
        results.put(str(exc))
