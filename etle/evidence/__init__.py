"""etle.evidence stage: what a reviewer and a court see of a violation.

- :mod:`etle.evidence.ring`: the recent frames a clip is cut from (:class:`FrameRing`).
- :mod:`etle.evidence.annotate`: pure drawing functions (overview, close-up, zones).
- :mod:`etle.evidence.builder`: atomic, hashed evidence bundles (:class:`EvidenceWriter`,
  :func:`verify_bundle`, :func:`cleanup_partial`).
- :mod:`etle.evidence.commit`: :func:`record_violation`, bundle and ticket together.
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
from etle.evidence.commit import Recorded, record_violation, ticket_from_request
from etle.evidence.ring import FrameRing

__all__ = [
    "CameraMeta",
    "EvidenceBundle",
    "EvidenceRequest",
    "EvidenceWriter",
    "FileDigest",
    "FrameRing",
    "Recorded",
    "cleanup_partial",
    "discard_bundle",
    "record_violation",
    "ticket_from_request",
    "verify_bundle",
]
