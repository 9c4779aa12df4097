"""Offloading on an edge box (etle.evidence.offload): the media of synced tickets go, oldest first,
until a free-space target is reached; never those of a ticket the central store lacks; what stays
still verifies, and a removal the records do not back is caught."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from etle.commands.store_cmds import register
from etle.errors import EtleError
from etle.evidence import EvidenceWriter, record_violation
from etle.evidence.offload import OFFLOADED_NAME, offload_synced, offloaded_names
from etle.evidence.signing import init_keys, load_signer, trusted_keys
from etle.evidence.storage import LocalEvidenceStorage
from etle.evidence.verify import verify_evidence
from etle.store import TicketStore

MEDIA = {"overview.jpg", "original.png", "closeup.jpg", "plate.jpg", "clip.mp4"}


@pytest.fixture
def site(tmp_path: Path, make_evidence_request) -> Path:
    """Four signed tickets of one camera; the first three synced to a central store."""
    info = init_keys(tmp_path / "keys")
    writer = EvidenceWriter(tmp_path / "ev", signer=load_signer(tmp_path / "keys"))
    with TicketStore(f"sqlite:///{tmp_path / 'etle.db'}") as store:
        store.register_site_key(info.key_id, info.public_key_b64)
        ids = [record_violation(writer, store, make_evidence_request(i), {"run_id": "r1"}).ticket_id for i in (1, 2, 3, 4)]
        store.mark_synced(ids[:3])
    return tmp_path


def open_store(root: Path) -> TicketStore:
    return TicketStore(f"sqlite:///{root / 'etle.db'}", create=False)


def verify(root: Path):
    with open_store(root) as store:
        return verify_evidence(LocalEvidenceStorage(root / "ev"), store=store,
                               keys=trusted_keys(root / "keys", store.site_keys()))


def folders(root: Path) -> list[Path]:
    with open_store(root) as store:
        return [root / "ev" / t.evidence_key for t in sorted(store.list(), key=lambda t: t.id)]


def media_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.name in MEDIA)


class Disk:
    """A disk of ``capacity`` bytes holding the evidence folder: free space grows as files go."""

    def __init__(self, root: Path, capacity: int) -> None:
        self.root, self.capacity = root, capacity

    def free(self) -> int:
        return self.capacity - sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())


def test_every_synced_ticket_loses_its_media_and_still_verifies(site: Path) -> None:
    before = folders(site)
    sizes = [media_bytes(f) for f in before]
    with open_store(site) as store:
        report = offload_synced(store, LocalEvidenceStorage(site / "ev"), central="s3://central/etle", now=None)
        views = sorted(store.list(), key=lambda t: t.id)
    assert report.tickets == 3 and report.bytes == sum(sizes[:3]) and report.reached
    assert [v.offloaded_at is not None for v in views] == [True, True, True, False]
    for folder in before[:3]:
        assert {p.name for p in folder.iterdir()} == {"manifest.json", "manifest.sig", OFFLOADED_NAME}
        tomb = json.loads((folder / OFFLOADED_NAME).read_text())
        manifest = json.loads((folder / "manifest.json").read_text())
        assert set(tomb["files"]) == MEDIA == offloaded_names(folder) and tomb["central"] == "s3://central/etle"
        assert all(tomb["files"][n]["sha256"] == manifest["files"][n]["sha256"] for n in MEDIA)
    assert MEDIA <= {p.name for p in before[3].iterdir()}  # not synced: the only copy stays
    result = verify(site)
    assert result.ok, [f.line() for f in result.findings]
    assert result.offloaded_files == 3 * len(MEDIA) and result.bundles == 4
    with open_store(site) as store:  # a second run has nothing left to remove
        assert offload_synced(store, LocalEvidenceStorage(site / "ev")).tickets == 0


def test_oldest_first_until_the_target_and_no_further(site: Path) -> None:
    sizes = [media_bytes(f) for f in folders(site)]
    disk = Disk(site / "ev", capacity=10_000_000)
    start = disk.free()
    target = start + sizes[0] + sizes[1] // 2  # more than the oldest frees, less than two
    with open_store(site) as store:
        dry = offload_synced(store, LocalEvidenceStorage(site / "ev"), free_target=target, free_bytes=disk.free, dry_run=True)
        assert disk.free() == start and all(v.offloaded_at is None for v in store.list())
        report = offload_synced(store, LocalEvidenceStorage(site / "ev"), free_target=target, free_bytes=disk.free)
        offloaded = [v.track_id for v in sorted(store.list(), key=lambda t: t.id) if v.offloaded_at is not None]
    assert dry.tickets == report.tickets == 2 and dry.references == report.references
    assert offloaded == [1, 2] and report.reached and report.free_bytes == disk.free() >= target
    assert dry.free_bytes == start + sizes[0] + sizes[1]


def test_a_target_out_of_reach_never_touches_an_unsynced_ticket(site: Path) -> None:
    disk = Disk(site / "ev", capacity=10_000_000)
    with open_store(site) as store:
        report = offload_synced(store, LocalEvidenceStorage(site / "ev"), free_target=disk.capacity, free_bytes=disk.free)
    assert report.tickets == 3 and not report.reached and report.free_bytes == disk.free() < disk.capacity
    assert MEDIA <= {p.name for p in folders(site)[3].iterdir()}


def test_removals_the_records_do_not_back_are_errors(site: Path) -> None:
    unsynced = folders(site)[3]
    manifest = json.loads((unsynced / "manifest.json").read_text())
    # media of the unsynced ticket deleted, with a tombstone written to excuse it
    (unsynced / OFFLOADED_NAME).write_text(json.dumps(
        {"files": {n: {"sha256": manifest["files"][n]["sha256"]} for n in ("clip.mp4",)}}))
    (unsynced / "clip.mp4").unlink()
    # a synced ticket's file deleted under a tombstone that names another digest
    synced = folders(site)[0]
    (synced / OFFLOADED_NAME).write_text(json.dumps({"files": {"overview.jpg": {"sha256": "0" * 64}}}))
    (synced / "overview.jpg").unlink()
    found = {(f.kind, Path(f.item).name): f.detail for f in verify(site).errors}
    assert "no sync and no offload" in found[("missing", "clip.mp4")]
    assert "missing" in found[("missing", "overview.jpg")]


def test_a_run_cut_short_is_finished_by_the_next(site: Path, monkeypatch) -> None:
    with open_store(site) as store:
        calls = {"n": 0}

        def crash(ticket_id, **kw):
            calls["n"] += 1
            raise EtleError("power cut")

        monkeypatch.setattr(store, "mark_offloaded", crash)
        with pytest.raises(EtleError):
            offload_synced(store, LocalEvidenceStorage(site / "ev"))
        assert calls["n"] == 1
    report = verify(site)  # files gone, tombstone written, the database not told: reported meanwhile
    assert not report.ok and {f.kind for f in report.errors} == {"missing"}
    with open_store(site) as store:
        again = offload_synced(store, LocalEvidenceStorage(site / "ev"))
    assert again.tickets == 3 and verify(site).ok


def test_the_offload_command(site: Path, monkeypatch) -> None:
    monkeypatch.delenv("ETLE_CENTRAL_DB", raising=False)
    monkeypatch.delenv("ETLE_CENTRAL_EVIDENCE", raising=False)
    app, tickets = typer.Typer(), typer.Typer()
    app.add_typer(tickets, name="tickets")
    register(app, tickets)
    base = ["evidence", "offload", "--db", f"sqlite:///{site / 'etle.db'}", "--evidence", str(site / "ev")]
    run = CliRunner().invoke
    assert run(app, ["evidence", "offload", "--help"]).exit_code == 0
    for extra in ([], ["--all", "--free-gb", "1"]):
        res = run(app, base + extra)
        assert isinstance(res.exception, EtleError) and "--free-gb N" in str(res.exception)
    res = run(app, base + ["--all", "--dry-run"])
    assert res.exit_code == 0 and "would remove 15 file(s)" in res.output and "of 3 synced ticket(s)" in res.output
    assert all(MEDIA <= {p.name for p in f.iterdir()} for f in folders(site))
    res = run(app, base + ["--all"])
    assert res.exit_code == 0 and "removed 15 file(s)" in res.output
    res = run(app, ["verify", "--evidence", str(site / "ev"), "--db", f"sqlite:///{site / 'etle.db'}",
                    "--keys", str(site / "keys")])
    assert res.exit_code == 0 and "15 offloaded file(s)" in res.output, res.output
