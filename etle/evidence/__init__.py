"""etle.evidence stage: what a reviewer and a court see of a violation.

- :mod:`etle.evidence.ring`: the recent frames a clip is cut from (:class:`FrameRing`).
- :mod:`etle.evidence.annotate`: pure drawing functions (overview, close-up, zones).
- :mod:`etle.evidence.builder`: atomic, hashed evidence bundles (:class:`EvidenceWriter`,
  :func:`verify_bundle`, :func:`cleanup_partial`).
- :mod:`etle.evidence.commit`: :func:`record_violation`, bundle and ticket together.
- :mod:`etle.evidence.chain`: per-camera manifest chains (:class:`ManifestChain`).
- :mod:`etle.evidence.signing`: Ed25519 site keys and manifest signatures (:class:`ManifestSigner`).
- :mod:`etle.evidence.storage`: a folder or S3 (:func:`open_evidence_storage`).
- :mod:`etle.evidence.verify`: :func:`verify_evidence`, what ``etle verify`` runs.
- :mod:`etle.evidence.retention`: :func:`prune_rejected`.
"""

from etle.evidence.builder import (
    CameraMeta,
    EvidenceBundle,
    EvidenceRequest,
    EvidenceWriter,
    FileDigest,
    cleanup_partial,
    discard_bundle,
    verify_bundle,
)
from etle.evidence.chain import ManifestChain
from etle.evidence.commit import Recorded, record_violation, ticket_from_request
from etle.evidence.retention import prune_rejected
from etle.evidence.ring import FrameRing
from etle.evidence.signing import ManifestSigner, init_keys, load_signer, trusted_keys
from etle.evidence.storage import EvidenceStorage, LocalEvidenceStorage, open_evidence_storage
from etle.evidence.verify import Finding, VerifyReport, verify_evidence

__all__ = [
    "CameraMeta",
    "EvidenceBundle",
    "EvidenceRequest",
    "EvidenceWriter",
    "FileDigest",
    "EvidenceStorage",
    "Finding",
    "FrameRing",
    "LocalEvidenceStorage",
    "ManifestChain",
    "ManifestSigner",
    "Recorded",
    "VerifyReport",
    "cleanup_partial",
    "discard_bundle",
    "init_keys",
    "load_signer",
    "open_evidence_storage",
    "prune_rejected",
    "record_violation",
    "ticket_from_request",
    "trusted_keys",
    "verify_bundle",
    "verify_evidence",
]
