"""Vehicle-registry lookup: the CSV/SQLite/HTTP registries (the HTTP one against a real local
server that counts requests), the vehicle mismatch, the owner columns on tickets (SQLite and
PostgreSQL), audit and sync of lookups, and the CLI commands run as a user runs them."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from etle.errors import ConfigError
from etle.registry import (
    FOUND,
    NOT_FOUND,
    TRIAL_REGISTRY,
    UNAVAILABLE,
    CsvRegistry,
    HttpRegistry,
    LookupResult,
    OwnerRecord,
    Registry,
    SqliteRegistry,
    lookup_ticket,
    normalise_plate,
    open_registry,
    vehicle_mismatch,
)
from etle.store import TicketIn, TicketStore, TransitionError

T0 = datetime(2026, 11, 28, 3, 0, tzinfo=timezone.utc)

CSV = """plate,owner_name,owner_address,vehicle_type,make,vehicle_colour,colour,valid_until,status
BH 1234 AB,Budi Contoh,"Jl. Contoh 1, Jambi",motorcycle,Honda Beat,Hitam,black,2028-03-31,active
bh1001ab,Siti Contoh,"Jl. Contoh 2, Jambi",mobil,Toyota Avanza,Putih,white,,
BH7011YA,PT Angkot Contoh,Jl. Terminal 3,car,Suzuki Carry,Biru,yellow,2027-06-30,active
BH5555ZZ,Rudi Contoh,Jl. Contoh 9,truck,Colt Diesel,Kuning,yellow,,stolen
"""


@pytest.fixture
def csv_path(tmp_path: Path) -> Path:
    path = tmp_path / "registry.csv"
    path.write_text(CSV, encoding="utf-8")
    return path


# -- records and file registries ------------------------------------------------------------------


def test_csv_lookup_found_and_not_found(csv_path: Path) -> None:
    reg = CsvRegistry(csv_path)
    assert isinstance(reg, Registry) and len(reg) == 4
    got = reg.lookup("BH1234AB")
    assert got.status == FOUND and got.found and got.source == "csv:registry.csv"
    assert got.record == OwnerRecord(
        plate="BH1234AB", owner_name="Budi Contoh", owner_address="Jl. Contoh 1, Jambi", vehicle_type="motorcycle",
        make="Honda Beat", vehicle_colour="Hitam", plate_colour="black", valid_until=date(2028, 3, 31), status="active")
    assert reg.lookup("BH1001AB").record.vehicle_type == "car"  # 'mobil' in the registry's words
    missing = reg.lookup("BH9999XX")
    assert missing.status == NOT_FOUND and missing.record is None and not missing.unavailable


@pytest.mark.parametrize("spelling", ["BH 1234 AB", "bh1234ab", "BH-1234-AB", " bh 1234ab "])
def test_plates_are_normalised(csv_path: Path, spelling: str) -> None:
    assert normalise_plate(spelling) == "BH1234AB"
    got = CsvRegistry(csv_path).lookup(spelling)
    assert got.found and got.plate == "BH1234AB"


def test_records_are_frozen_and_results_consistent() -> None:
    rec = OwnerRecord("BH1AB")
    with pytest.raises(AttributeError):
        rec.owner_name = "x"  # type: ignore[misc]
    with pytest.raises(ValueError):
        LookupResult("BH1AB", FOUND)  # found without a record
    with pytest.raises(ValueError):
        LookupResult("BH1AB", NOT_FOUND, rec)


def test_bad_registry_files_are_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("plate,vehicle_type\nBH1AB,hovercraft\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.csv:2: unknown vehicle_type 'hovercraft'"):
        CsvRegistry(bad)
    bad.write_text("nomor,owner\nBH1AB,x\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="needs a 'plate' column"):
        CsvRegistry(bad)
    bad.write_text("plate,valid_until\nBH1AB,soon\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="valid_until 'soon'"):
        CsvRegistry(bad)
    with pytest.raises(ConfigError, match="missing.csv"):
        CsvRegistry(tmp_path / "missing.csv")
    with pytest.raises(ConfigError, match="not a .csv file"):
        open_registry(tmp_path / "registry.txt")
    with pytest.raises(ConfigError, match="no vehicle registry given"):
        open_registry("")
    with pytest.raises(ConfigError, match="must not carry credentials"):
        open_registry("https://user:secret@registry.example/api")


def test_the_same_csv_serves_the_invalid_plate_rule(csv_path: Path) -> None:
    from etle.rules.plates import CsvPlateRegistry

    for path in (csv_path, TRIAL_REGISTRY):
        rule_view = CsvPlateRegistry(path)
        owners = CsvRegistry(path)
        assert len(rule_view) == len(owners)
    assert CsvPlateRegistry(csv_path).lookup("BH5555ZZ").status == "stolen"


def test_trial_registry_ships_fictitious_owners() -> None:
    reg = open_registry("trial")
    assert isinstance(reg, CsvRegistry) and len(reg) >= 5
    rows = [reg.lookup(p).record for p in ("BH1234AB", "BH1001AB", "B1234XY")]
    assert all(r is not None and "Fiktif" in r.owner_name and "fiktif" in r.owner_address for r in rows)


def test_sqlite_registry(tmp_path: Path, csv_path: Path) -> None:
    path = tmp_path / "registry.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE vehicles (plate TEXT, owner_name TEXT, owner_address TEXT, vehicle_type TEXT,"
                 " make TEXT, vehicle_colour TEXT, colour TEXT, valid_until TEXT, status TEXT)")
    conn.execute("INSERT INTO vehicles VALUES ('BH 1234 AB', 'Budi Contoh', 'Jl. Contoh 1, Jambi', 'motorcycle',"
                 " 'Honda Beat', 'Hitam', 'black', '2028-03-31', 'active')")
    conn.commit()
    conn.close()
    for spec in (f"sqlite:///{path}", str(path)):
        reg = open_registry(spec)
        assert isinstance(reg, SqliteRegistry)
        assert reg.lookup("bh1234ab").record == CsvRegistry(csv_path).lookup("BH1234AB").record
        assert reg.lookup("BH1AB").status == NOT_FOUND
    with pytest.raises(ConfigError, match="cannot read table"):
        SqliteRegistry(path, table="owners")
    with pytest.raises(ConfigError, match="no such file"):
        open_registry(f"sqlite:///{tmp_path / 'none.db'}")


# -- mismatch -------------------------------------------------------------------------------------------


def test_vehicle_mismatch() -> None:
    moto = OwnerRecord("BH1234AB", vehicle_type="motorcycle", plate_colour="black")
    assert vehicle_mismatch(moto, "motorcycle", "black") is None
    assert vehicle_mismatch(moto, "car") == "vehicle_type: registry motorcycle, camera car"
    assert vehicle_mismatch(moto, "motorcycle", "white") is None  # white and black are both private plates
    assert vehicle_mismatch(moto, "", None) is None  # the camera's view unknown: no flag on a guess
    assert vehicle_mismatch(moto, "motorcycle", "yellow") == "plate_colour: registry black, camera yellow"
    assert vehicle_mismatch(moto, "car", "red") == (
        "vehicle_type: registry motorcycle, camera car; plate_colour: registry black, camera red")
    car = OwnerRecord("BH1001AB", vehicle_type="car", plate_colour="white")
    assert vehicle_mismatch(car, "truck") is None  # a pick-up: the detector's car/truck confusion
    assert vehicle_mismatch(car, "bus") == "vehicle_type: registry car, camera bus"
    assert vehicle_mismatch(car, "car", "white_blue") is None  # an electric car's plate
    assert vehicle_mismatch(OwnerRecord("X1"), "car", "yellow") is None  # registry knows neither
    stolen = OwnerRecord("BH5555ZZ", vehicle_type="truck", status="Stolen")
    assert vehicle_mismatch(stolen, "truck") == "registry_status: stolen"


# -- HTTP registry against a real local server ----------------------------------------------------------

RECORD = {"plate": "BH1234AB", "owner_name": "Budi Contoh", "owner_address": "Jl. Contoh 1, Jambi",
          "vehicle_type": "motorcycle", "make": "Honda Beat", "vehicle_colour": "Hitam", "colour": "black",
          "valid_until": "2028-03-31", "status": "active"}


class FakeRegistryServer:
    """``GET /vehicles/<plate>`` on 127.0.0.1: counts every request per plate.

    BH1234AB -> the record; FLAKY1 -> 500 on the first request, then a record; DOWN1 -> 503
    always; SLOW1 -> answers after 1 s; BADJSON1 -> 200 with a body that is not JSON; AUTH1 ->
    the record only with the bearer token; anything else -> 404."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.headers: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, code: int, body: bytes, kind: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass

            def do_GET(self) -> None:  # noqa: N802
                plate = self.path.rsplit("/", 1)[-1]
                server.requests[plate] += 1
                server.headers.append(dict(self.headers))
                n = server.requests[plate]
                if not self.path.startswith("/api/vehicles/"):
                    self._send(404, b"{}")
                elif plate == "BH1234AB":
                    self._send(200, json.dumps(RECORD).encode())
                elif plate == "FLAKY1":
                    if n == 1:
                        self._send(500, b'{"error": "boom"}')
                    else:
                        self._send(200, json.dumps({**RECORD, "plate": "FLAKY1"}).encode())
                elif plate == "DOWN1":
                    self._send(503, b"{}")
                elif plate == "SLOW1":
                    time.sleep(1.0)
                    self._send(200, json.dumps({**RECORD, "plate": "SLOW1"}).encode())
                elif plate == "BADJSON1":
                    self._send(200, b"<html>maintenance</html>", "text/html")
                elif plate == "AUTH1":
                    if self.headers.get("Authorization") == "Bearer s3cret":
                        self._send(200, json.dumps({**RECORD, "plate": "AUTH1"}).encode())
                    else:
                        self._send(401, b"{}")
                else:
                    self._send(404, b'{"error": "not registered"}')

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[FakeRegistryServer]:
    s = FakeRegistryServer()
    yield s
    s.close()


def _client(url: str, **kw: object) -> tuple[HttpRegistry, list[float]]:
    sleeps: list[float] = []
    kw.setdefault("timeout_s", 2.0)
    return HttpRegistry(url, sleep=sleeps.append, **kw), sleeps  # type: ignore[arg-type]


def test_http_found_and_not_found(server: FakeRegistryServer) -> None:
    reg, sleeps = _client(server.url)
    got = reg.lookup("bh 1234 ab")
    assert got.found and got.record == OwnerRecord(
        plate="BH1234AB", owner_name="Budi Contoh", owner_address="Jl. Contoh 1, Jambi", vehicle_type="motorcycle",
        make="Honda Beat", vehicle_colour="Hitam", plate_colour="black", valid_until=date(2028, 3, 31), status="active")
    assert got.source.startswith("http:127.0.0.1:") and not got.cached
    missing = reg.lookup("BH9XX")
    assert missing.status == NOT_FOUND and missing.reason == ""
    assert server.requests == Counter({"BH1234AB": 1, "BH9XX": 1}) and sleeps == []
    assert server.headers[0]["Accept"] == "application/json" and "Authorization" not in server.headers[0]


def test_http_retries_a_server_error_then_succeeds(server: FakeRegistryServer) -> None:
    reg, sleeps = _client(server.url, retries=2, backoff_s=0.25)
    got = reg.lookup("FLAKY1")
    assert got.found and got.record.plate == "FLAKY1"
    assert server.requests["FLAKY1"] == 2 and sleeps == [0.25]


def test_http_gives_up_after_bounded_retries_with_backoff(server: FakeRegistryServer) -> None:
    reg, sleeps = _client(server.url, retries=3, backoff_s=0.5)
    got = reg.lookup("DOWN1")
    assert got.status == UNAVAILABLE and got.reason == "HTTP 503" and got.record is None
    assert server.requests["DOWN1"] == 4 and sleeps == [0.5, 1.0, 2.0]
    reg.lookup("DOWN1")  # 'unavailable' is never cached: the next lookup asks again
    assert server.requests["DOWN1"] == 8


def test_http_timeout_is_unavailable_not_an_exception(server: FakeRegistryServer) -> None:
    reg, sleeps = _client(server.url, timeout_s=0.2, retries=1, backoff_s=0.0)
    started = time.monotonic()
    got = reg.lookup("SLOW1")
    assert got.status == UNAVAILABLE and "no answer within 0.2 s" in got.reason
    assert server.requests["SLOW1"] == 2 and len(sleeps) == 1
    assert time.monotonic() - started < 1.5


def test_http_unreachable_and_malformed_answers(server: FakeRegistryServer) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    reg, sleeps = _client(f"http://127.0.0.1:{port}", retries=1)
    got = reg.lookup("BH1234AB")
    assert got.status == UNAVAILABLE and got.reason.startswith("cannot connect") and len(sleeps) == 1
    reg, sleeps = _client(server.url, retries=3)
    bad = reg.lookup("BADJSON1")
    assert bad.status == UNAVAILABLE and bad.reason == "the answer is not JSON"
    assert server.requests["BADJSON1"] == 1 and sleeps == []  # another try would not fix it
    refused = reg.lookup("AUTH1")
    assert refused.status == UNAVAILABLE and refused.reason == "HTTP 401" and server.requests["AUTH1"] == 1


def test_http_token_is_sent_and_never_shown(server: FakeRegistryServer) -> None:
    reg, _ = _client(server.url, token="s3cret")
    got = reg.lookup("AUTH1")
    assert got.found and server.headers[-1]["Authorization"] == "Bearer s3cret"
    assert "s3cret" not in repr(reg) + reg.source + repr(got)


def test_http_cache_serves_repeats_until_the_ttl(server: FakeRegistryServer) -> None:
    now = [1000.0]
    reg, _ = _client(server.url, cache_ttl_s=60.0, clock=lambda: now[0])
    first = reg.lookup("BH1234AB")
    second = reg.lookup("BH 1234 AB")
    assert second.cached and not first.cached and second.record == first.record
    assert reg.lookup("BH9XX").status == NOT_FOUND and reg.lookup("bh9xx").cached  # not_found is cached too
    assert server.requests == Counter({"BH1234AB": 1, "BH9XX": 1})
    now[0] += 61.0
    assert not reg.lookup("BH1234AB").cached
    assert server.requests["BH1234AB"] == 2
    reg.clear_cache()
    reg.lookup("BH1234AB")
    assert server.requests["BH1234AB"] == 3


def test_open_registry_picks_http(server: FakeRegistryServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETLE_REGISTRY_TOKEN", "s3cret")
    reg = open_registry(server.url + "/", retries=0)
    assert isinstance(reg, HttpRegistry) and reg.lookup("AUTH1").found


# -- the owner on the ticket ----------------------------------------------------------------------------


def ticket(track: int = 1, **kw: object) -> TicketIn:
    values: dict = dict(camera_id="jbi-01", rule="no_helmet", track_id=track, occurred_at=T0 + timedelta(minutes=track),
                        source="rtsp://cam/1", run_id="run-1", vehicle_label="motorcycle", plate_text="BH1234AB",
                        plate_confidence=0.9, plate_colour="black", plate_category="private")
    values.update(kw)
    return TicketIn(**values)


def approved(store: TicketStore, t: TicketIn) -> int:
    tid = store.add(t)
    store.transition(tid, "approve", actor="officer1")
    return tid


def test_owner_columns_round_trip(db_url: str, csv_path: Path) -> None:
    reg = CsvRegistry(csv_path)
    with TicketStore(db_url) as store:
        store.add_user("officer1")
        tid = approved(store, ticket(1))
        before = store.get(tid)
        assert (before.registry_status, before.owner_name, before.registry_checked_at) == ("", "", None)
        assert [t.id for t in store.awaiting_owner()] == [tid]
        result, mismatch = lookup_ticket(store, reg, tid)
        assert result.found and mismatch is None
        view = store.get(tid)
        assert view.status == "approved"
        assert (view.owner_name, view.owner_address, view.vehicle_make, view.vehicle_colour) == (
            "Budi Contoh", "Jl. Contoh 1, Jambi", "Honda Beat", "Hitam")
        assert view.registry_status == "found" and view.registry_mismatch == "" and not view.needs_owner_review
        assert view.registry_checked_at is not None and view.registry_checked_at.tzinfo is not None
        assert abs((view.registry_checked_at - result.checked_at).total_seconds()) < 1e-3
        assert store.awaiting_owner() == [] and [t.id for t in store.awaiting_owner(again=True)] == [tid]
        last = store.actions(tid)[-1]
        assert (last.action, last.actor, last.from_status, last.to_status) == (
            "registry_lookup", "system:registry", "approved", "approved")
        assert last.data["status"] == "found" and last.data["registry"] == "csv:registry.csv"
        assert last.data["owner"]["owner_name"] == "Budi Contoh" and last.data["owner"]["valid_until"] == "2028-03-31"
        # the registry is down later: the owner found before stays
        down = LookupResult("BH1234AB", UNAVAILABLE, reason="HTTP 503", source="http:x")
        store.record_owner_lookup(tid, status=down.status, reason=down.reason, source=down.source, actor="system:registry")
        kept = store.get(tid)
        assert (kept.registry_status, kept.owner_name) == ("found", "Budi Contoh")
        assert store.actions(tid)[-1].data == {"status": "unavailable", "registry": "http:x", "reason": "HTTP 503"}
        # the plate is corrected elsewhere and no longer registered: the owner goes
        store.record_owner_lookup(tid, status="not_found", source="csv:registry.csv", actor="system:registry")
        gone = store.get(tid)
        assert (gone.registry_status, gone.owner_name, gone.vehicle_make) == ("not_found", "", "")
        assert gone.needs_owner_review


def test_mismatch_is_a_review_flag_never_an_automatic_notice(db_url: str, csv_path: Path) -> None:
    reg = CsvRegistry(csv_path)
    with TicketStore(db_url) as store:
        store.add_user("officer1")
        car = approved(store, ticket(1, vehicle_label="car"))  # a motorcycle's plate on a car
        fine = approved(store, ticket(2, plate_text="BH1001AB", vehicle_label="car", plate_colour="white"))
        result, mismatch = lookup_ticket(store, reg, car)
        assert result.found and mismatch == "vehicle_type: registry motorcycle, camera car"
        view = store.get(car)
        assert view.status == "approved" and view.registry_mismatch == mismatch and view.needs_owner_review
        assert store.actions(car)[-1].reason == mismatch and store.actions(car)[-1].data["mismatch"] == mismatch
        with pytest.raises(TransitionError, match="flagged by the registry lookup.*a person must send"):
            store.transition(car, "send_notice", actor="system:notices")
        assert store.get(car).status == "approved"
        # an officer who looked may send it; an unflagged ticket goes out automatically
        assert store.transition(car, "send_notice", actor="officer1").status == "notice_sent"
        lookup_ticket(store, reg, fine)
        assert store.transition(fine, "send_notice", actor="system:notices").status == "notice_sent"
        # a ticket whose plate the registry does not know is not sent automatically either
        ghost = approved(store, ticket(3, plate_text="BH9999XX"))
        assert lookup_ticket(store, reg, ghost)[0].status == NOT_FOUND
        with pytest.raises(TransitionError, match="plate not in the vehicle registry"):
            store.transition(ghost, "send_notice", actor="system:notices")


def test_owner_is_exported_with_the_ticket(tmp_path: Path, csv_path: Path) -> None:
    import csv
    import io

    from etle.store.export import write_export

    with TicketStore(f"sqlite:///{tmp_path / 'etle.db'}") as store:
        tid = approved_system(store, ticket(1, vehicle_label="car"))
        lookup_ticket(store, CsvRegistry(csv_path), tid)
        buf = io.StringIO()
        assert write_export(store.records(), buf, "csv") == 1
        row = next(csv.DictReader(io.StringIO(buf.getvalue())))
        assert (row["owner_name"], row["vehicle_make"], row["registry_status"]) == ("Budi Contoh", "Honda Beat", "found")
        assert row["registry_mismatch"].startswith("vehicle_type") and row["last_action"] == "registry_lookup"
        assert datetime.fromisoformat(row["registry_checked_at"]).tzinfo is not None
        buf = io.StringIO()
        write_export(store.records(), buf, "json")
        assert json.loads(buf.getvalue())[0]["owner_address"] == "Jl. Contoh 1, Jambi"


def test_lookups_only_after_approval(tmp_path: Path, csv_path: Path) -> None:
    from etle.errors import StoreError

    with TicketStore(f"sqlite:///{tmp_path / 'etle.db'}") as store:
        tid = store.add(ticket(1))
        with pytest.raises(TransitionError, match="after approval only"):
            lookup_ticket(store, CsvRegistry(csv_path), tid)
        assert store.get(tid).registry_status == "" and len(store.actions(tid)) == 1
        nameless = store.add(ticket(2, plate_text=""))
        # a ticket showing '?' cannot be approved before its plate is corrected ...
        with pytest.raises(TransitionError, match="no confirmed plate"):
            store.transition(nameless, "approve", actor="system:test")
        with pytest.raises(StoreError, match="no plate to look up"):  # ... nor looked up
            lookup_ticket(store, CsvRegistry(csv_path), nameless)
        assert store.awaiting_owner() == []  # no plate: nothing to look up


def test_lookups_travel_with_sync(tmp_path: Path, csv_path: Path) -> None:
    reg = CsvRegistry(csv_path)
    with TicketStore(f"sqlite:///{tmp_path / 'edge.db'}") as edge, \
            TicketStore(f"sqlite:///{tmp_path / 'central.db'}") as central:
        early = approved_system(edge, ticket(1))
        late = approved_system(edge, ticket(2, vehicle_label="car"))
        lookup_ticket(edge, reg, early)
        central.import_record(edge.record(early))  # the record carries the owner columns
        central.import_record(edge.record(late))
        mark = max(a.id for a in edge.actions_after(0))
        lookup_ticket(edge, reg, late)  # looked up after the ticket was synced: replayed from the audit log
        assert central.import_actions(edge.actions_after(mark)) == (1, 0)
        for tid in (early, late):
            here, there = edge.get(tid), central.get(edge.get(tid).uid)
            for name in ("owner_name", "owner_address", "vehicle_make", "vehicle_colour", "registry_status",
                         "registry_checked_at", "registry_mismatch", "status"):
                assert getattr(here, name) == getattr(there, name), name
        assert central.get(edge.get(late).uid).registry_mismatch.startswith("vehicle_type")


def approved_system(store: TicketStore, t: TicketIn) -> int:
    tid = store.add(t)
    store.transition(tid, "approve", actor="system:test")
    return tid


# -- CLI ------------------------------------------------------------------------------------------------


def etle(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full = {k: v for k, v in os.environ.items() if not k.startswith("ETLE_REGISTRY")}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "etle.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=full)


def test_cli_registry_lookup(tmp_path: Path, csv_path: Path) -> None:
    r = etle("registry", "lookup", "bh 1234 ab", "--registry", str(csv_path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "BH1234AB: Budi Contoh, Jl. Contoh 1, Jambi" in r.stdout and "[csv:registry.csv]" in r.stdout
    r = etle("registry", "lookup", "BH1234AB", "--json", cwd=tmp_path, env={"ETLE_REGISTRY": "trial"})
    assert r.returncode == 0 and json.loads(r.stdout)["record"]["make"] == "Honda Beat"
    r = etle("registry", "lookup", "BH9XX", "--registry", "trial", cwd=tmp_path)
    assert r.returncode == 1 and "BH9XX: not in the registry" in r.stdout
    r = etle("registry", "lookup", "BH1AB", "--registry", "nowhere.txt", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("error: vehicle registry 'nowhere.txt'")
    assert len(r.stderr.strip().splitlines()) == 1
    r = etle("registry", "lookup", "BH1AB", cwd=tmp_path)
    assert r.returncode == 2 and "no vehicle registry given" in r.stderr


def test_cli_registry_lookup_unavailable(tmp_path: Path, server: FakeRegistryServer) -> None:
    r = etle("registry", "lookup", "DOWN1", "--registry", server.url, "--retries", "1", cwd=tmp_path)
    assert r.returncode == 6 and server.requests["DOWN1"] == 2
    assert r.stderr.strip().splitlines()[-1].startswith("error: registry http:127.0.0.1:") and "HTTP 503" in r.stderr


def test_cli_tickets_lookup_owners(tmp_path: Path, csv_path: Path, server: FakeRegistryServer) -> None:
    db = f"sqlite:///{tmp_path / 'etle.db'}"
    with TicketStore(db) as store:
        ok = approved_system(store, ticket(1))
        flagged = approved_system(store, ticket(2, vehicle_label="car"))
        unknown = approved_system(store, ticket(3, plate_text="BH9999XX"))
        pending = store.add(ticket(4))
        refs = {tid: store.get(tid).reference for tid in (ok, flagged, unknown)}
    r = etle("tickets", "lookup-owners", "--db", db, "--registry", str(csv_path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("ETLE-")]
    assert len(lines) == 3
    assert f"{refs[ok]}  BH1234AB    found        Budi Contoh (Honda Beat, Hitam)" in lines
    assert any(ln.startswith(refs[flagged]) and "MISMATCH, to review: vehicle_type" in ln for ln in lines)
    assert any(ln.startswith(refs[unknown]) and "not_found" in ln for ln in lines)
    assert "3 ticket(s): 2 found (1 mismatched), 1 not found, 0 unavailable (csv:registry.csv)" in r.stdout
    # nothing left to look up; the pending ticket is never looked up
    r = etle("tickets", "lookup-owners", "--db", db, "--registry", str(csv_path), cwd=tmp_path)
    assert r.returncode == 0 and "0 ticket(s)" in r.stdout
    with TicketStore(db) as store:
        assert store.get(pending).registry_status == "" and store.get(flagged).status == "approved"
        new = approved_system(store, ticket(5, plate_text="DOWN1"))
    # the registry is down: the ticket waits (status unavailable) and the exit code says so
    r = etle("tickets", "lookup-owners", "--db", db, "--registry", server.url, "--retries", "0", cwd=tmp_path)
    assert r.returncode == 6, r.stdout + r.stderr
    assert "registry unavailable: HTTP 503" in r.stdout and "1 unavailable" in r.stdout
    with TicketStore(db) as store:
        assert store.get(new).registry_status == "unavailable"
        assert [t.id for t in store.awaiting_owner()] == [new]
    r = etle("tickets", "lookup-owners", "--db", db, "--registry", "trial", "--status", "nonsense", cwd=tmp_path)
    assert r.returncode == 2 and "nonsense" in r.stderr
