"""Manifest chains per camera and Ed25519 signatures: keys init, signing, chain links under a lock,
revert on a failed ticket, crash recovery, and record_violation keeping ticket and chain in step."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path

import pytest

from etle.errors import StoreError
from etle.evidence import EvidenceWriter, record_violation, verify_bundle
from etle.evidence.chain import GENESIS, HEAD_NAME, PENDING_NAME, ManifestChain, camera_folder
from etle.evidence.signing import (
    ManifestSigner,
    init_keys,
    key_id_of,
    load_signer,
    load_signer_if_present,
    signature_problem,
    trusted_keys,
)
from etle.store import TicketStore


def test_keys_init_creates_a_private_key_and_trusts_old_ones(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    assert load_signer_if_present(keys) is None
    info = init_keys(keys)
    assert stat.S_IMODE(os.stat(info.private_path).st_mode) == 0o600
    signer = load_signer(keys)
    assert signer.key_id == info.key_id == key_id_of(signer.public_key)
    with pytest.raises(StoreError, match="exists.*--force"):
        init_keys(keys)
    second = init_keys(keys, force=True)
    assert second.key_id != info.key_id and load_signer(keys).key_id == second.key_id
    assert set(trusted_keys(keys)) == {info.key_id, second.key_id}  # old manifests still verify
    assert (keys / "retired" / f"{info.key_id}.key").is_file()


def test_passphrase_protected_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETLE_KEY_PASSPHRASE", "s3cret")
    init_keys(tmp_path)
    assert b"ENCRYPTED" in (tmp_path / "site.key").read_bytes()
    assert load_signer(tmp_path).key_id
    monkeypatch.setenv("ETLE_KEY_PASSPHRASE", "wrong")
    with pytest.raises(StoreError, match="unreadable"):
        load_signer(tmp_path)
    monkeypatch.delenv("ETLE_KEY_PASSPHRASE")
    with pytest.raises(StoreError, match="no site key"):
        load_signer(tmp_path / "none")


def test_signatures() -> None:
    signer, other = ManifestSigner.generate(), ManifestSigner.generate()
    keys = {signer.key_id: signer.public_key}
    sig = signer.sign(b"manifest")
    assert signature_problem(b"manifest", sig, keys) is None
    assert "does not match" in signature_problem(b"manifest!", sig, keys)
    assert "unknown key" in signature_problem(b"manifest", other.sign(b"manifest"), keys)
    assert "unparsable" in signature_problem(b"manifest", b"{", keys)
    body = json.loads(sig)
    body["signature"] = body["signature"][:-4] + "AAA="
    assert signature_problem(b"manifest", json.dumps(body).encode(), keys) is not None
    # a key registered in a database with a wrong id is not trusted
    assert trusted_keys(Path("/nonexistent"), {"0" * 16: signer.public_key_b64}) == {}
    assert set(trusted_keys(Path("/nonexistent"), {signer.key_id: signer.public_key_b64})) == {signer.key_id}


def test_bundles_are_chained_and_signed(tmp_path: Path, make_evidence_request) -> None:
    signer = ManifestSigner.generate()
    writer = EvidenceWriter(tmp_path, signer=signer)
    bundles = [writer.write(make_evidence_request(i)) for i in range(1, 4)]
    other_camera = writer.write(make_evidence_request(9, camera="jbi-02"))
    manifests = [json.loads(b.manifest_path.read_bytes()) for b in bundles]
    assert [m["chain"]["seq"] for m in manifests] == [1, 2, 3]
    assert manifests[0]["chain"]["prev_manifest_sha256"] == GENESIS
    assert [m["chain"]["prev_manifest_sha256"] for m in manifests[1:]] == [b.manifest_sha256 for b in bundles[:2]]
    assert json.loads(other_camera.manifest_path.read_bytes())["chain"]["seq"] == 1
    head = ManifestChain(tmp_path).head("jbi-01")
    assert (head.seq, head.manifest_sha256, head.bundle) == (3, bundles[2].manifest_sha256, bundles[2].relpath)
    for b in bundles:
        sig = (b.path / "manifest.sig").read_bytes()
        assert signature_problem(b.manifest_path.read_bytes(), sig, {signer.key_id: signer.public_key}) is None
        assert verify_bundle(b.path, manifest_sha256=b.manifest_sha256) == []
        assert set(b.all_files()) == set(b.files) | {"manifest.json", "manifest.sig"}
    assert manifests[0]["signing"] == {"alg": "Ed25519", "key_id": signer.key_id}


def test_chain_lock_serialises_writers(tmp_path: Path, make_evidence_request) -> None:
    writers = [EvidenceWriter(tmp_path) for _ in range(3)]  # three writers, one root: like three processes
    threads = [threading.Thread(target=lambda w=w, k=k: [w.write(make_evidence_request(10 * k + i, clip=False))
                                                          for i in range(4)]) for k, w in enumerate(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seqs = sorted(json.loads(p.read_bytes())["chain"]["seq"] for p in tmp_path.glob("jbi-01/*/*/manifest.json"))
    assert seqs == list(range(1, 13))
    assert ManifestChain(tmp_path).head("jbi-01").seq == 12


def test_failed_ticket_moves_the_head_back(tmp_path: Path, make_evidence_request, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = EvidenceWriter(tmp_path / "ev")
    with TicketStore(f"sqlite:///{tmp_path / 'etle.db'}") as store:
        first = record_violation(writer, store, make_evidence_request(1))
        assert store.get(first.ticket_id).chain_seq == 1

        def broken(ticket, **kw):
            raise StoreError("database is locked")

        monkeypatch.setattr(store, "add_or_get", broken)
        with pytest.raises(StoreError):
            record_violation(writer, store, make_evidence_request(2))
        assert writer.chain.head("jbi-01").seq == 1
        monkeypatch.undo()
        second = record_violation(writer, store, make_evidence_request(2))
        view = store.get(second.ticket_id)
        assert view.chain_seq == 2 and view.evidence_key == second.bundle.relpath
        assert {f.name for f in view.evidence_files} == set(second.bundle.all_files())
        # a duplicate found only at insert time (a racing writer) also moves the head back
        real, calls = store.find_duplicate, []
        monkeypatch.setattr(store, "find_duplicate", lambda t: None if not calls.append(1) and len(calls) == 1 else real(t))
        again = record_violation(writer, store, make_evidence_request(2))
        assert not again.created and writer.chain.head("jbi-01").seq == 2


def test_crash_between_rename_and_head_is_recovered(tmp_path: Path, make_evidence_request) -> None:
    writer = EvidenceWriter(tmp_path)
    writer.write(make_evidence_request(1))
    chain = ManifestChain(tmp_path)
    # simulate: the bundle of seq 2 renamed into place, then the process died before the head moved
    with chain.extend("jbi-01") as link:
        orphan = writer.write(make_evidence_request(2), link=link)
        link.mark_pending(orphan.relpath)
        (tmp_path / camera_folder("jbi-01") / PENDING_NAME).rename(tmp_path / "saved-pending")
    (tmp_path / "saved-pending").rename(tmp_path / camera_folder("jbi-01") / PENDING_NAME)
    assert orphan.path.is_dir() and chain.head("jbi-01").seq == 1
    third = writer.write(make_evidence_request(3))
    assert not orphan.path.exists()  # never chained, never ticketed: removed
    assert json.loads(third.manifest_path.read_bytes())["chain"]["seq"] == 2
    assert not (tmp_path / camera_folder("jbi-01") / PENDING_NAME).exists()
    assert (tmp_path / camera_folder("jbi-01") / HEAD_NAME).is_file()


def test_unchained_writer(tmp_path: Path, make_evidence_request) -> None:
    bundle = EvidenceWriter(tmp_path, chained=False).write(make_evidence_request(1))
    assert json.loads(bundle.manifest_path.read_bytes())["chain"] is None and bundle.chain_seq is None
    assert not (tmp_path / "jbi-01" / HEAD_NAME).exists()
