"""Tamper tests: every way of altering the record that the issue names is caught by verification.

A small site (two cameras, five signed and chained bundles with their tickets in SQLite, one ticket
approved, one corrected) is built once; each case alters a copy and must make ``verify`` fail:

- a single byte flipped in any file of any bundle (manifest, signature and media) and in the
  chain heads: the first, middle, last and a random byte of each file in the fast suite; every
  byte of a signature, a head and a manifest (two ways, on a site of that camera's chain alone),
  and 13 positions of every file, in the slow one (a flipped byte anywhere in a hashed file
  changes its SHA-256 alike, so media positions are sampled; the small JSON files are where a
  parser could forgive a change);
- any file deleted, a bundle deleted, the newest bundle deleted with its ticket, a chain head
  deleted, a file added;
- a ticket deleted (with or without its bundle and audit log), a ticket's plate, fine or status
  changed behind the audit log;
- manifests reordered (swapped between bundles, bundle folders swapped, tickets pointed at each
  other's bundles) and a chain re-signed with a key that is not trusted.

The last test drives ``etle verify`` through the CLI: exit 0 on the intact site, 1 on a tampered one.
"""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from etle.evidence import EvidenceWriter, record_violation
from etle.evidence.signing import ManifestSigner, init_keys, load_signer, trusted_keys
from etle.evidence.storage import LocalEvidenceStorage
from etle.evidence.verify import VerifyReport, verify_evidence
from etle.store import TicketStore


SITE = {"jbi-01": (1, 2, 3), "jbi-02": (4, 5)}
"""The tracks recorded by each camera of the site, in this order."""


def build_site(root: Path, make_request, tracks: dict[str, tuple[int, ...]] = SITE) -> None:
    info = init_keys(root / "keys")
    writer = EvidenceWriter(root / "ev", signer=load_signer(root / "keys"))
    with TicketStore(f"sqlite:///{root / 'etle.db'}") as store:
        store.register_site_key(info.key_id, info.public_key_b64)
        store.add_user("officer1")
        ids = [record_violation(writer, store, make_request(i, camera=camera), {"run_id": "r1"}).ticket_id
               for camera, numbers in tracks.items() for i in numbers]
        store.correct_plate(ids[0], "BH1284AB", actor="officer1", reason="8 read as 3")
        store.transition(ids[0], "approve", actor="officer1")


def run_verify(root: Path, **kw) -> VerifyReport:
    with TicketStore(f"sqlite:///{root / 'etle.db'}", create=False) as store:
        keys = trusted_keys(root / "keys", store.site_keys())
        return verify_evidence(LocalEvidenceStorage(root / "ev"), store=store, keys=keys, **kw)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, make_evidence_request) -> Path:
    root = tmp_path_factory.mktemp("site")
    build_site(root, make_evidence_request)
    return root


@pytest.fixture
def site(template: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "site"
    shutil.copytree(template, copy)
    return copy


def evidence_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "ev").rglob("*") if p.is_file() and not p.name.startswith("."))


def bundles(root: Path, camera: str = "jbi-01") -> list[Path]:
    return sorted((root / "ev" / camera).glob("*/*"), key=lambda p: json.loads((p / "manifest.json").read_bytes())["chain"]["seq"])


def sql(root: Path, *statements: str) -> None:
    with sqlite3.connect(root / "etle.db") as conn:
        conn.execute("PRAGMA foreign_keys=OFF")
        for s in statements:
            conn.execute(s)


def test_intact_site_verifies(site: Path) -> None:
    report = run_verify(site)
    assert report.findings == () and report.ok
    assert (report.cameras, report.bundles, report.tickets) == (2, 5, 5)
    assert report.files == 5 * 5  # overview, original, closeup, plate, clip per bundle


def flip_bytes(site: Path, positions_of: Callable[[Path, int], list[int]], flips: tuple[int, ...]) -> tuple[int, int]:
    """Flip bytes of every evidence file one at a time; return (tried, missed)."""
    tried = missed = 0
    with TicketStore(f"sqlite:///{site / 'etle.db'}", create=False) as store:
        keys = trusted_keys(site / "keys", store.site_keys())
        storage = LocalEvidenceStorage(site / "ev")
        for path in evidence_files(site):
            data = path.read_bytes()
            for pos in positions_of(path, len(data)):
                for flip in flips:
                    altered = bytearray(data)
                    altered[pos] ^= flip
                    path.write_bytes(bytes(altered))
                    tried += 1
                    if verify_evidence(storage, store=store, keys=keys).ok:
                        missed += 1
                        print(f"MISSED: {path.relative_to(site)} byte {pos} ^ {flip:#x}")
            path.write_bytes(data)
    return tried, missed


def test_a_flipped_byte_in_any_file_is_detected(site: Path) -> None:
    rng = random.Random(5)
    names = {p.name for p in evidence_files(site)}
    assert names >= {"manifest.json", "manifest.sig", "chain-head.json", "clip.mp4", "plate.jpg", "original.png"}
    tried, missed = flip_bytes(site, lambda p, n: sorted({0, n // 2, n - 1, rng.randrange(n)}), (0x01,))
    print(f"byte flips tried: {tried}, missed: {missed}")
    assert missed == 0 and tried >= 4 * 32
    assert run_verify(site).ok  # restored


@pytest.mark.slow
def test_every_byte_of_a_signature_a_head_and_a_manifest(site: Path, tmp_path: Path, make_evidence_request) -> None:  # type: ignore[no-untyped-def]
    """Every byte of one signature, one chain head and one manifest, two ways (the files a JSON
    parser could forgive a change in); 13 positions of every file of the site.

    The exhaustive flips are verified on a site holding just what those three files take part in
    (built as the site is): camera jbi-01's chain of two bundles, the first with its approved
    ticket whose plate a reviewer corrected, the second linking to it, and the chain head; each
    flip is a whole ``verify`` run, and this site verifies in about 60 % of the full one's time."""
    chain = tmp_path / "chain"
    build_site(chain, make_evidence_request, {"jbi-01": SITE["jbi-01"][:2]})
    intact = run_verify(chain)
    assert intact.ok and (intact.cameras, intact.bundles, intact.tickets, intact.files) == (1, 2, 2, 2 * 5)
    first = bundles(chain)[0]
    exhaustive = {first / "manifest.json", first / "manifest.sig", chain / "ev" / "jbi-01" / "chain-head.json"}
    tried, missed = flip_bytes(chain, lambda path, n: list(range(n)) if path in exhaustive else [], (0x01, 0xFF))
    print(f"every byte: flips tried: {tried}, missed: {missed}")
    assert tried == 2 * sum(p.stat().st_size for p in exhaustive) > 2 * 2500
    assert missed == 0
    assert run_verify(chain).ok  # restored

    rng = random.Random(7)
    tried, missed = flip_bytes(site, lambda path, n: sorted({0, n // 2, n - 1, *(rng.randrange(n) for _ in range(10))}),
                               (0x01, 0xFF))
    print(f"13 positions of every file: flips tried: {tried}, missed: {missed}")
    assert tried >= 2 * 4 * len(evidence_files(site)) and missed == 0


def _delete(rel: Callable[[Path], Path]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        target = rel(root)
        shutil.rmtree(target) if target.is_dir() else target.unlink()

    return apply


def _swap(a: Path, b: Path) -> None:
    tmp = a.with_name(a.name + ".swap")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)


def _swap_manifests(root: Path) -> None:
    first, second = bundles(root)[:2]
    for name in ("manifest.json", "manifest.sig"):
        _swap(first / name, second / name)


def _swap_folders(root: Path) -> None:
    first, second = bundles(root)[:2]
    _swap(first, second)


def _delete_newest_with_ticket(root: Path) -> None:
    newest = bundles(root)[-1]
    sql(root, "DROP TRIGGER review_actions_no_delete",
        f"DELETE FROM review_actions WHERE ticket_id = (SELECT id FROM tickets WHERE evidence_key LIKE '%{newest.name}')",
        f"DELETE FROM evidence_files WHERE ticket_id = (SELECT id FROM tickets WHERE evidence_key LIKE '%{newest.name}')",
        f"DELETE FROM plate_reads WHERE ticket_id = (SELECT id FROM tickets WHERE evidence_key LIKE '%{newest.name}')",
        f"DELETE FROM tickets WHERE evidence_key LIKE '%{newest.name}'")
    shutil.rmtree(newest)


def _resign_with_untrusted_key(root: Path) -> None:
    rogue = ManifestSigner.generate()
    for b in bundles(root):
        (b / "manifest.sig").write_bytes(rogue.sign((b / "manifest.json").read_bytes()))


def _forge_pruning(root: Path) -> None:
    b = bundles(root)[0]  # the approved ticket
    (b / "pruned.json").write_text(json.dumps({"files": ["clip.mp4"]}))
    (b / "clip.mp4").unlink()


CASES: dict[str, Callable[[Path], None]] = {
    **{f"delete {name} of a bundle": _delete(lambda r, n=name: bundles(r)[1] / n)
       for name in ("manifest.json", "manifest.sig", "overview.jpg", "original.png", "closeup.jpg", "plate.jpg", "clip.mp4")},
    "delete a middle bundle": _delete(lambda r: bundles(r)[1]),
    "delete the first bundle": _delete(lambda r: bundles(r)[0]),
    "delete the newest bundle": _delete(lambda r: bundles(r)[-1]),
    "delete the newest bundle and its ticket and audit log": _delete_newest_with_ticket,
    "delete a chain head": _delete(lambda r: r / "ev" / "jbi-02" / "chain-head.json"),
    "add a file to a bundle": lambda r: (bundles(r)[0] / "notes.txt").write_text("x"),
    "delete a ticket": lambda r: sql(r, "DELETE FROM tickets WHERE id = 2"),
    "delete a ticket with its children": lambda r: sql(
        r, "DELETE FROM evidence_files WHERE ticket_id = 2", "DELETE FROM plate_reads WHERE ticket_id = 2",
        "DELETE FROM tickets WHERE id = 2"),
    "delete a ticket and its audit log": lambda r: sql(
        r, "DROP TRIGGER review_actions_no_delete", "DELETE FROM review_actions WHERE ticket_id = 3",
        "DELETE FROM tickets WHERE id = 3"),
    "reorder: swap two manifests": _swap_manifests,
    "reorder: swap two bundle folders": _swap_folders,
    "reorder: swap tickets' bundles": lambda r: sql(
        r, "UPDATE tickets SET evidence_key = 'x' WHERE id = 1",
        "UPDATE tickets SET evidence_key = (SELECT evidence_key FROM tickets WHERE id = 2) WHERE id = 1"),
    "reorder: swap tickets' manifest hashes": lambda r: sql(
        r, "UPDATE tickets SET manifest_sha256 = (SELECT manifest_sha256 FROM tickets WHERE id = 3) WHERE id = 2"),
    "change a ticket's plate behind the audit log": lambda r: sql(r, "UPDATE tickets SET plate_text = 'B1RI' WHERE id = 2"),
    "change a ticket's fine": lambda r: sql(r, "UPDATE tickets SET fine = 1 WHERE id = 2"),
    "change a ticket's status behind the audit log": lambda r: sql(r, "UPDATE tickets SET status = 'paid' WHERE id = 2"),
    "change a recorded file digest": lambda r: sql(r, "UPDATE evidence_files SET sha256 = 'ff' WHERE id = 3"),
    "re-sign the chain with an untrusted key": _resign_with_untrusted_key,
    "forge a retention record": _forge_pruning,
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_tampering_is_detected(site: Path, case: str) -> None:
    CASES[case](site)
    report = run_verify(site)
    assert not report.ok, case
    for f in report.errors:
        assert f.item and f.detail


def test_verify_filters_and_unsigned(site: Path) -> None:
    from datetime import datetime, timezone

    assert run_verify(site, camera="jbi-02").tickets == 2
    later = run_verify(site, since=datetime(2026, 11, 28, 1, 0, 3, tzinfo=timezone.utc))
    assert later.ok and later.tickets == 3 and later.files == 15
    for sig in (site / "ev").rglob("manifest.sig"):
        sig.unlink()
    report = run_verify(site)
    assert {f.kind for f in report.errors} == {"unsigned", "altered"}  # and the tickets recorded a signature
    assert len([f for f in report.errors if f.kind == "unsigned"]) == 5
    alone = verify_evidence(LocalEvidenceStorage(site / "ev"), keys={}, require_signatures=False)
    assert alone.ok and alone.tickets == 0


def test_retention_keeps_the_record_verifiable(site: Path) -> None:
    from datetime import timedelta

    from etle.evidence.retention import prune_rejected

    with TicketStore(f"sqlite:///{site / 'etle.db'}") as store:
        store.transition(4, "reject", actor="officer1", reason="emergency vehicle")
        storage = LocalEvidenceStorage(site / "ev")
        assert prune_rejected(store, storage, older_than=timedelta(days=90)).tickets == 0  # too recent
        dry = prune_rejected(store, storage, older_than=timedelta(0), dry_run=True)
        assert (dry.tickets, dry.files) == (1, 5)
        done = prune_rejected(store, storage, older_than=timedelta(0))
        assert (done.tickets, done.files) == (1, 5) and done.bytes > 0
        assert prune_rejected(store, storage, older_than=timedelta(0)).tickets == 0  # idempotent
        folder = site / "ev" / store.get(4).evidence_key
        assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "manifest.sig", "pruned.json"]
        assert store.actions(4)[-1].action == "prune_evidence"
    report = run_verify(site)
    assert report.ok and report.pruned_files == 5
    # a pruned file of a ticket that was not rejected, or an edited tombstone, is not accepted
    tomb = folder / "pruned.json"
    tomb.write_bytes(tomb.read_bytes().replace(b"\n", b"\r\n", 1))
    assert not run_verify(site).ok


def test_cli_verify_exit_codes(site: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from etle.commands.store_cmds import register

    app, tickets = typer.Typer(), typer.Typer()
    app.add_typer(tickets, name="tickets")
    register(app, tickets)
    args = ["verify", "--evidence", str(site / "ev"), "--db", f"sqlite:///{site / 'etle.db'}", "--keys", str(site / "keys")]
    ok = CliRunner().invoke(app, args)
    assert ok.exit_code == 0, ok.output
    assert "verify OK: 2 camera(s), 5 bundle(s), 25 file(s) hashed, 5 ticket(s)" in ok.output
    _swap_manifests(site)
    bad = CliRunner().invoke(app, [*args, "--json"])
    assert bad.exit_code == 1
    body = json.loads(bad.output)
    assert body["ok"] is False and {f["kind"] for f in body["findings"]} >= {"altered", "chain"}
