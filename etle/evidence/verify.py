"""``etle verify``: prove that evidence and tickets are what was recorded, or say what is not.

Written by hand for the legal record: every check names the item and the reason, and nothing is
trusted that can be recomputed.  :func:`verify_evidence` reads an evidence storage (a folder or
S3, :mod:`etle.evidence.storage`) and, when given, the ticket database, and checks:

- every bundle: the manifest parses; every file it lists exists with its size and SHA-256; no
  unlisted file is present; ``manifest.sig`` is a valid Ed25519 signature by a trusted key;
- every camera's chain: sequence numbers 1..n each exactly once, each manifest holding the
  SHA-256 of the previous one, and the chain head (``chain-head.json``) naming the last;
- every ticket: its bundle exists, has the manifest hash, chain place and file digests the
  ticket recorded, agrees with the ticket on camera, rule, track, time, article and fine (and on
  the plate unless a reviewer corrected it), and its status is the one its audit log reached;
- no bundle without a ticket, no audit entries of a ticket that is gone;
- the public (blurred) copies in a bundle's ``public/`` folder (:mod:`etle.privacy`): derived
  files outside the signed manifest, checked against their own ``public/manifest.json`` (each
  file's SHA-256 and size, the original it came from still the one the signed manifest lists,
  nothing unlisted, no public copy of pruned media);
- media removed by retention only where a ``pruned.json`` lists it and the database confirms
  the ticket was rejected and pruned;
- media an edge box removed to free disk space (:mod:`etle.evidence.offload`) only where an
  ``offloaded.json`` lists it with the digest the manifest holds and the database confirms the
  ticket was synced to the central store and offloaded.

Findings are ``error`` (something is broken, missing or altered: exit code 1) or ``warning``
(e.g. a bundle newer than the chain head while a write or a sync is in progress).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from etle.errors import StoreError
from etle.evidence.builder import MANIFEST_NAME, OFFLOADED_NAME, PRUNED_NAME, PUBLIC_DIR, PUBLIC_MANIFEST, SIDE_FILES, SIGNATURE_NAME
from etle.evidence.chain import GENESIS, HEAD_NAME, PENDING_NAME, ChainHead, camera_folder
from etle.evidence.signing import signature_problem
from etle.evidence.storage import EvidenceStorage

log = logging.getLogger(__name__)

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: ``kind`` is altered, missing, extra, unreadable, signature, unsigned, chain,
    head, ticket, audit, pruned, offloaded or public."""

    severity: str
    kind: str
    camera: str
    item: str
    detail: str

    def line(self) -> str:
        return f"{self.severity}: {self.kind}: {self.item}: {self.detail}"


@dataclass(frozen=True, slots=True)
class VerifyReport:
    cameras: int
    bundles: int
    files: int
    tickets: int
    pruned_files: int
    findings: tuple[Finding, ...]
    #: media files removed here because the central store holds them (edge boxes)
    offloaded_files: int = 0

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == ERROR)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == WARNING)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class _Bundle:
    prefix: str
    folder: str
    objects: dict[str, int]
    manifest_sha256: str | None = None
    manifest: dict[str, Any] | None = None
    seq: int | None = None
    prev: str | None = None
    camera_id: str | None = None
    utc: datetime | None = None
    pruned: set[str] = field(default_factory=set)
    offloaded: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    public: dict[str, int] = field(default_factory=dict)
    claimed: bool = False
    in_window: bool = True


def _parse_utc(text: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _ranges(numbers: Iterable[int]) -> str:
    nums = sorted(numbers)
    parts: list[str] = []
    start = prev = nums[0]
    for n in nums[1:] + [None]:  # type: ignore[list-item]
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(parts)


class _Verifier:
    def __init__(self, storage: EvidenceStorage, store: Any, keys: Mapping[str, Any], camera: str | None,
                 since: datetime | None, require_signatures: bool) -> None:
        self.storage = storage
        self.store = store
        self.keys = keys
        self.camera_folder = camera_folder(camera) if camera else None
        self.camera = camera
        self.since = since.astimezone(timezone.utc) if since else None
        self.require_signatures = require_signatures
        self.findings: list[Finding] = []
        self.files = 0
        self.pruned_files = 0
        self.offloaded_files = 0
        self.tickets = 0

    def add(self, severity: str, kind: str, camera: str, item: str, detail: str) -> None:
        self.findings.append(Finding(severity, kind, camera, item, detail))

    # -- bundles -----------------------------------------------------------------------------

    def collect(self) -> tuple[dict[str, _Bundle], dict[str, dict[str, int]]]:
        bundles: dict[str, _Bundle] = {}
        folders: dict[str, dict[str, int]] = defaultdict(dict)  # camera folder -> its own files
        for obj in self.storage.list(""):
            parts = obj.key.split("/")
            if self.camera_folder is not None and parts[0] != self.camera_folder:
                continue
            if len(parts) == 4:
                prefix = "/".join(parts[:3])
                bundle = bundles.setdefault(prefix, _Bundle(prefix, parts[0], {}))
                bundle.objects[parts[3]] = obj.bytes
            elif len(parts) == 5 and parts[3] == PUBLIC_DIR:
                prefix = "/".join(parts[:3])
                bundle = bundles.setdefault(prefix, _Bundle(prefix, parts[0], {}))
                bundle.public[parts[4]] = obj.bytes
            elif len(parts) == 2:
                folders[parts[0]][parts[1]] = obj.bytes
            else:
                self.add(WARNING, "extra", parts[0], obj.key, "file outside the evidence layout")
        return bundles, folders

    def check_bundle(self, b: _Bundle) -> None:
        if MANIFEST_NAME not in b.objects:
            self.add(ERROR, "missing", b.folder, f"{b.prefix}/{MANIFEST_NAME}", "manifest missing")
            b.in_window = self.since is None
            return
        raw = self.storage.read_bytes(f"{b.prefix}/{MANIFEST_NAME}")
        b.manifest_sha256 = hashlib.sha256(raw).hexdigest()
        try:
            manifest = json.loads(raw)
            listed = manifest["files"]
            if not isinstance(listed, dict):
                raise TypeError("'files' is not an object")
        except (ValueError, KeyError, TypeError) as exc:
            self.add(ERROR, "altered", b.folder, f"{b.prefix}/{MANIFEST_NAME}", f"manifest unparsable ({exc})")
            b.in_window = self.since is None
            return
        b.manifest = manifest
        bundle_id = str(manifest.get("bundle_id", ""))
        if not bundle_id or not b.prefix.endswith(f"_{bundle_id[:8]}"):
            self.add(ERROR, "chain", b.folder, b.prefix, f"holds the manifest of another bundle ({bundle_id[:8] or '?'}): moved or swapped")
        chain = manifest.get("chain") or None
        if isinstance(chain, dict):
            try:
                b.seq, b.prev, b.camera_id = int(chain["seq"]), str(chain["prev_manifest_sha256"]), str(chain["camera_id"])
            except (KeyError, TypeError, ValueError):
                self.add(ERROR, "altered", b.folder, f"{b.prefix}/{MANIFEST_NAME}", "chain entry unparsable")
        b.utc = _parse_utc((manifest.get("time") or {}).get("utc"))
        b.in_window = self.since is None or (b.utc is not None and b.utc >= self.since)
        self.check_signature(b, raw)
        if not b.in_window:
            return
        pruned: set[str] = set()
        if PRUNED_NAME in b.objects:
            try:
                pruned = {str(n) for n in json.loads(self.storage.read_bytes(f"{b.prefix}/{PRUNED_NAME}"))["files"]}
            except (ValueError, KeyError, TypeError) as exc:
                self.add(ERROR, "altered", b.folder, f"{b.prefix}/{PRUNED_NAME}", f"retention record unparsable ({exc})")
        offloaded: dict[str, str] = {}
        if OFFLOADED_NAME in b.objects:
            try:
                entries = json.loads(self.storage.read_bytes(f"{b.prefix}/{OFFLOADED_NAME}"))["files"]
                offloaded = {str(n): str(e["sha256"]) for n, e in entries.items()}
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                self.add(ERROR, "altered", b.folder, f"{b.prefix}/{OFFLOADED_NAME}", f"offload record unparsable ({exc})")
        for name, entry in sorted(listed.items()):
            key = f"{b.prefix}/{name}"
            try:
                size, digest = int(entry["bytes"]), str(entry["sha256"])
            except (KeyError, TypeError, ValueError):
                self.add(ERROR, "altered", b.folder, key, "manifest entry unparsable")
                continue
            if name not in b.objects:
                if name in pruned:
                    b.pruned.add(name)
                elif name in offloaded and offloaded[name] == str((entry or {}).get("sha256")):
                    b.offloaded.add(name)
                else:
                    b.missing.add(name)
                    self.add(ERROR, "missing", b.folder, key, "file listed in the manifest is missing")
                continue
            self.files += 1
            if b.objects[name] != size:
                self.add(ERROR, "altered", b.folder, key, f"size {b.objects[name]} != {size} in the manifest")
            elif self.storage.sha256(key) != digest:
                self.add(ERROR, "altered", b.folder, key, "sha256 differs from the manifest")
        for name in sorted(set(b.objects) - set(listed) - {MANIFEST_NAME} - SIDE_FILES):
            self.add(ERROR, "extra", b.folder, f"{b.prefix}/{name}", "file not listed in the manifest")
        if b.public:
            self.check_public(b, listed, pruned)

    def check_public(self, b: _Bundle, listed: Mapping[str, Any], pruned: set[str]) -> None:
        """The bundle's public copies against their own record (see the module doc)."""
        base = f"{b.prefix}/{PUBLIC_DIR}"
        if PUBLIC_MANIFEST not in b.public:
            self.add(ERROR, "public", b.folder, f"{base}/{PUBLIC_MANIFEST}", "public copies without their record")
            return
        try:
            record = json.loads(self.storage.read_bytes(f"{base}/{PUBLIC_MANIFEST}"))
            files = record["files"]
            if not isinstance(files, dict):
                raise TypeError("'files' is not an object")
        except (ValueError, KeyError, TypeError) as exc:
            self.add(ERROR, "public", b.folder, f"{base}/{PUBLIC_MANIFEST}", f"record unparsable ({exc})")
            return
        for name, entry in sorted(files.items()):
            key = f"{base}/{name}"
            try:
                size, digest = int(entry["bytes"]), str(entry["sha256"])
                source, source_sha = str(entry["source"]), str(entry["source_sha256"])
            except (KeyError, TypeError, ValueError):
                self.add(ERROR, "public", b.folder, key, "record entry unparsable")
                continue
            if source in pruned:
                self.add(ERROR, "public", b.folder, key, f"public copy of {source}, which retention removed")
            elif (listed.get(source) or {}).get("sha256") != source_sha:
                self.add(ERROR, "public", b.folder, key, f"derived from another {source} than the signed manifest lists")
            if name not in b.public:
                self.add(ERROR, "public", b.folder, key, "public copy listed in its record is missing")
                continue
            self.files += 1
            if b.public[name] != size:
                self.add(ERROR, "public", b.folder, key, f"size {b.public[name]} != {size} in its record")
            elif self.storage.sha256(key) != digest:
                self.add(ERROR, "public", b.folder, key, "sha256 differs from its record")
        for name in sorted(set(b.public) - set(files) - {PUBLIC_MANIFEST}):
            self.add(ERROR, "public", b.folder, f"{base}/{name}", "file not listed in the public record")

    def check_signature(self, b: _Bundle, raw: bytes) -> None:
        key = f"{b.prefix}/{SIGNATURE_NAME}"
        if SIGNATURE_NAME not in b.objects:
            if self.require_signatures:
                self.add(ERROR, "unsigned", b.folder, key, "manifest has no signature")
            return
        problem = signature_problem(raw, self.storage.read_bytes(key), self.keys)
        if problem is not None:
            self.add(ERROR, "signature", b.folder, key, problem)

    # -- chains ------------------------------------------------------------------------------

    def check_chains(self, bundles: dict[str, _Bundle], folders: dict[str, dict[str, int]]) -> None:
        by_folder: dict[str, list[_Bundle]] = defaultdict(list)
        for b in bundles.values():
            by_folder[b.folder].append(b)
        for folder in sorted(set(by_folder) | set(folders)):
            self.check_chain(folder, by_folder.get(folder, []), folders.get(folder, {}))

    def check_chain(self, folder: str, members: list[_Bundle], own_files: Mapping[str, int]) -> None:
        chained: dict[int, list[_Bundle]] = defaultdict(list)
        for b in members:
            if b.manifest is None:
                continue
            if b.seq is None:
                self.add(WARNING, "chain", folder, b.prefix, "manifest is not chained (written before chaining)")
                continue
            if b.camera_id is not None and camera_folder(b.camera_id) != folder:
                self.add(ERROR, "chain", folder, b.prefix, f"manifest belongs to camera {b.camera_id}, not to this folder")
            chained[b.seq].append(b)
        owners = sorted({b.camera_id for claims in chained.values() for b in claims if b.camera_id is not None})
        if len(owners) > 1:
            self.add(ERROR, "chain", folder, folder, f"manifests of several cameras in one chain: {owners}")
        for seq, claims in sorted(chained.items()):
            if len(claims) > 1:
                self.add(ERROR, "chain", folder, f"{folder} seq {seq}",
                         "claimed by several bundles: " + ", ".join(sorted(c.prefix for c in claims)))
        top = max(chained) if chained else 0
        head: ChainHead | None = None
        if HEAD_NAME in own_files:
            try:
                head = ChainHead.parse(self.storage.read_bytes(f"{folder}/{HEAD_NAME}"))
            except ValueError as exc:
                self.add(ERROR, "head", folder, f"{folder}/{HEAD_NAME}", f"unparsable ({exc})")
        elif chained:
            self.add(ERROR, "head", folder, f"{folder}/{HEAD_NAME}", "chain head missing")
        if PENDING_NAME in own_files:
            self.add(WARNING, "chain", folder, f"{folder}/{PENDING_NAME}", "an interrupted or running write")
        end = max(top, head.seq if head is not None else 0)
        absent = [s for s in range(1, end + 1) if s not in chained]
        if absent:
            self.add(ERROR, "chain", folder, f"{folder} seq {_ranges(absent)}",
                     "bundles missing from the chain (deleted, or their manifest is unreadable)")
        for seq, claims in sorted(chained.items()):
            b = claims[0]
            if seq == 1:
                if b.prev != GENESIS:
                    self.add(ERROR, "chain", folder, b.prefix, "first manifest does not start the chain")
                continue
            before = chained.get(seq - 1)
            if before and b.prev != before[0].manifest_sha256:
                self.add(ERROR, "chain", folder, b.prefix,
                         f"link {seq - 1} -> {seq} broken: the previous manifest was altered, replaced or reordered")
        if head is not None:
            at_head = chained.get(head.seq)
            if at_head and (at_head[0].manifest_sha256 != head.manifest_sha256 or at_head[0].prefix != head.bundle):
                self.add(ERROR, "head", folder, f"{folder}/{HEAD_NAME}",
                         f"chain head names another manifest for seq {head.seq}")
            owners = {b.camera_id for claims in chained.values() for b in claims if b.camera_id is not None}
            if camera_folder(head.camera_id) != folder or (owners and head.camera_id not in owners):
                self.add(ERROR, "head", folder, f"{folder}/{HEAD_NAME}", f"chain head names camera {head.camera_id!r}")
            for seq in sorted(s for s in chained if s > head.seq):
                self.add(WARNING, "chain", folder, chained[seq][0].prefix,
                         f"seq {seq} is newer than the chain head ({head.seq}): a write or sync in progress")

    # -- tickets -----------------------------------------------------------------------------

    def check_tickets(self, bundles: dict[str, _Bundle]) -> None:
        since = self.since
        by_sha = {b.manifest_sha256: b for b in bundles.values() if b.manifest_sha256}
        for record in self.store.records(camera=self.camera, since=since):
            self.tickets += 1
            t = record.ticket
            ref = f"ticket {t.reference}"
            folder = camera_folder(t.camera_id)
            self.check_audit(t, record.actions, ref, folder)
            b = bundles.get(t.evidence_key) if t.evidence_key else by_sha.get(t.manifest_sha256)
            if b is None:
                self.add(ERROR, "missing", folder, ref, f"its evidence bundle {t.evidence_key or '?'} is missing")
                continue
            b.claimed = True
            if b.manifest is None:
                continue
            if b.manifest_sha256 != t.manifest_sha256:
                self.add(ERROR, "altered", folder, ref, f"manifest of {b.prefix} differs from the one the ticket recorded")
                continue
            if t.chain_seq is not None and b.seq != t.chain_seq:
                self.add(ERROR, "chain", folder, ref, f"recorded chain seq {t.chain_seq}, bundle has {b.seq}")
            self.check_ticket_fields(t, b, record.actions, ref, folder)
            prunes = [a for a in record.actions if a.action == "prune_evidence"]
            if PRUNED_NAME in b.objects:
                expected_tomb = str(prunes[-1].data.get("tombstone_sha256", "")) if prunes else None
                if expected_tomb != self.storage.sha256(f"{b.prefix}/{PRUNED_NAME}"):
                    self.add(ERROR, "pruned", folder, f"{b.prefix}/{PRUNED_NAME}",
                             "retention record is not the one the audit log recorded")
            listed = b.manifest.get("files", {})
            for f in t.evidence_files:
                if f.name == MANIFEST_NAME:
                    expected = b.manifest_sha256
                elif f.name == SIGNATURE_NAME:
                    expected = self.storage.sha256(f"{b.prefix}/{SIGNATURE_NAME}") if SIGNATURE_NAME in b.objects else None
                else:
                    expected = (listed.get(f.name) or {}).get("sha256")
                if expected != f.sha256:
                    self.add(ERROR, "altered", folder, f"{ref} {f.name}", "file digest differs between ticket and bundle")
                if f.name in b.pruned:
                    if f.pruned_at is None or t.status != "rejected":
                        self.add(ERROR, "missing", folder, f"{b.prefix}/{f.name}",
                                 f"removed as 'pruned' but the ticket is {t.status} and no pruning is recorded")
                    else:
                        self.pruned_files += 1
                    b.pruned.discard(f.name)
                if f.name in b.offloaded:
                    if t.offloaded_at is None or t.synced_at is None:
                        self.add(ERROR, "missing", folder, f"{b.prefix}/{f.name}",
                                 "removed as 'offloaded' but the database records no sync and no offload of the ticket")
                    else:
                        self.offloaded_files += 1
                    b.offloaded.discard(f.name)
        for b in sorted(bundles.values(), key=lambda x: x.prefix):
            if b.in_window and not b.claimed and b.manifest is not None:
                self.add(ERROR, "ticket", b.folder, b.prefix, "evidence bundle has no ticket (ticket deleted?)")
            for name in sorted(b.pruned):
                self.add(ERROR, "missing", b.folder, f"{b.prefix}/{name}", "removed as 'pruned' with no ticket recording it")
            for name in sorted(b.offloaded):
                self.add(ERROR, "missing", b.folder, f"{b.prefix}/{name}", "removed as 'offloaded' with no ticket recording it")
        for ticket_id in self.store.orphan_audit_ticket_ids():
            self.add(ERROR, "ticket", "", f"ticket id {ticket_id}", "audit log names a ticket that is gone (deleted)")

    def check_ticket_fields(self, t: Any, b: _Bundle, actions: Iterable[Any], ref: str, folder: str) -> None:
        m = b.manifest or {}
        v = m.get("violation") or {}
        pairs = [
            ("camera", t.camera_id, (m.get("camera") or {}).get("id")),
            ("rule", t.rule, v.get("rule")),
            ("track", t.track_id, v.get("track_id")),
            ("article", t.article, v.get("article")),
            ("fine", t.fine, v.get("fine")),
            ("time", t.occurred_at, _parse_utc((m.get("time") or {}).get("utc"))),
        ]
        corrected = any(a.action == "correct_plate" for a in actions)
        if not corrected:
            pairs.append(("plate", t.plate_text, (m.get("plate") or {}).get("text")))
        for name, ticket_value, manifest_value in pairs:
            if name == "time" and ticket_value is not None and manifest_value is not None:
                if abs((ticket_value - manifest_value).total_seconds()) > 0.001:
                    self.add(ERROR, "ticket", folder, ref, f"time differs from its evidence ({manifest_value.isoformat()})")
            elif ticket_value != manifest_value:
                self.add(ERROR, "ticket", folder, ref, f"{name} {ticket_value!r} differs from its evidence ({manifest_value!r})")

    def check_audit(self, t: Any, actions: tuple[Any, ...], ref: str, folder: str) -> None:
        from etle.store.lifecycle import NON_TRANSITION_ACTIONS, TRANSITIONS

        if not actions:
            self.add(ERROR, "audit", folder, ref, "no audit entries")
            return
        if actions[0].action != "create":
            self.add(ERROR, "audit", folder, ref, f"audit log starts with {actions[0].action!r}, not 'create'")
        status = actions[0].to_status
        for a in actions[1:]:
            if a.action in NON_TRANSITION_ACTIONS:
                continue
            if TRANSITIONS.get(status or "", {}).get(a.action) != a.to_status or a.from_status != status:
                self.add(ERROR, "audit", folder, ref, f"audit entry {a.uid}: {a.action} {a.from_status}->{a.to_status} "
                         f"does not follow from {status}")
            status = a.to_status
        if status != t.status:
            self.add(ERROR, "audit", folder, ref, f"status {t.status!r} is not the one its audit log reached ({status!r})")

    def run(self) -> VerifyReport:
        bundles, folders = self.collect()
        for prefix in sorted(bundles):
            self.check_bundle(bundles[prefix])
        self.check_chains(bundles, folders)
        if self.store is not None:
            self.check_tickets(bundles)
        else:
            for b in bundles.values():
                for name in sorted(b.pruned):
                    self.pruned_files += 1
                    self.add(WARNING, "pruned", b.folder, f"{b.prefix}/{name}",
                             "removed by retention (not confirmed: no ticket database given)")
                for name in sorted(b.offloaded):
                    self.offloaded_files += 1
                    self.add(WARNING, "offloaded", b.folder, f"{b.prefix}/{name}",
                             "removed here, the central store holding it (not confirmed: no ticket database given)")
        cameras = {b.folder for b in bundles.values()} | set(folders)
        return VerifyReport(
            cameras=len(cameras), bundles=len(bundles), files=self.files, tickets=self.tickets,
            pruned_files=self.pruned_files, findings=tuple(self.findings), offloaded_files=self.offloaded_files,
        )


def verify_evidence(
    storage: EvidenceStorage,
    *,
    store: Any = None,
    keys: Mapping[str, Any] | None = None,
    camera: str | None = None,
    since: datetime | None = None,
    require_signatures: bool = True,
) -> VerifyReport:
    """Check the evidence in ``storage`` (and the tickets of ``store``, a TicketStore) as the
    module doc says.  ``keys`` are the trusted public keys (``{key_id: Ed25519PublicKey}``,
    see :func:`etle.evidence.signing.trusted_keys`).  ``camera`` and ``since`` (timezone-aware)
    limit which bundles' files are hashed and which tickets are checked; chains are always
    checked whole.  Raises :class:`StoreError` only when the storage or database cannot be read.
    """
    if since is not None and since.tzinfo is None:
        raise ValueError("since must be timezone-aware")
    verifier = _Verifier(storage, store, keys or {}, camera, since, require_signatures)
    try:
        report = verifier.run()
    except OSError as exc:  # pragma: no cover - storages wrap their errors
        raise StoreError(f"cannot read evidence in {storage.location}: {exc}") from exc
    log.info("verified %d bundles, %d files, %d tickets: %d errors, %d warnings", report.bundles, report.files,
             report.tickets, len(report.errors), len(report.warnings))
    return report
