"""The ticket store's records: the frozen dataclasses :class:`etle.store.repository.TicketStore`
takes and returns, and the converters from table rows to them.

:class:`TicketIn`, :class:`CameraIn` and :class:`NoticeIn` go in; :class:`TicketView`,
:class:`ActionView`, :class:`PlateReadView`, :class:`UserView`, :class:`TicketRecord`,
:class:`NoticeView` and :class:`Approval` come out.  Also the registry-lookup statuses and the
ticket columns the views map to.  No database access here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timezone
from typing import Any

from etle.store.models import PENDING_REVIEW, Notice, ReviewAction, Ticket


def _utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {moment.isoformat()}")
    return moment.astimezone(timezone.utc)


@dataclass(frozen=True, slots=True)
class PlateCandidate:
    """One plate read kept with the ticket."""

    text: str
    confidence: float
    frame_index: int = -1
    #: per character of ``text``, the recogniser's probability (empty where the reader gave none)
    char_conf: tuple[float, ...] = ()

    @classmethod
    def coerce(cls, value: PlateCandidate | Mapping[str, Any]) -> PlateCandidate:
        if isinstance(value, PlateCandidate):
            return value
        return cls(
            text=str(value["text"]),
            confidence=float(value["confidence"]),
            frame_index=int(value.get("frame_index", -1)),
            char_conf=tuple(float(c) for c in value.get("char_conf") or ()),
        )

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text, "confidence": self.confidence, "frame_index": self.frame_index}
        if self.char_conf:
            out["char_conf"] = [round(float(c), 4) for c in self.char_conf]
        return out


@dataclass(frozen=True, slots=True)
class EvidenceFileIn:
    """One file of an evidence bundle (``role``: overview, original, closeup, plate, clip, manifest)."""

    name: str
    sha256: str
    bytes: int
    role: str = ""
    pruned_at: datetime | None = None

    @classmethod
    def coerce(cls, value: EvidenceFileIn | Mapping[str, Any]) -> EvidenceFileIn:
        if isinstance(value, EvidenceFileIn):
            return value
        pruned = value.get("pruned_at")
        return cls(
            name=str(value["name"]), sha256=str(value["sha256"]), bytes=int(value["bytes"]),
            role=str(value.get("role", "")),
            pruned_at=datetime.fromisoformat(pruned) if isinstance(pruned, str) else pruned,
        )


@dataclass(frozen=True, slots=True)
class TicketIn:
    """A ticket to add.  ``occurred_at`` must be timezone-aware (it is stored as UTC).

    ``local_time`` is the camera-local ISO 8601 time with offset; its date dates the reference
    code (the UTC date of ``occurred_at`` where it does not parse).  ``evidence_path`` is where
    the bundle lies for this store; ``evidence_key`` is its path relative to the evidence root
    (what sync and verify use).  ``uid`` is the stable identity (generated when empty);
    ``chain_seq`` the bundle's place in the camera's manifest chain.  ``plate_colour`` and
    ``plate_category`` are the plate's background colour and the vehicle category it stands for
    (empty where unknown).  ``plate_candidates``
    accepts mappings with ``text``, ``confidence`` and ``frame_index``; ``evidence_files``
    mappings with ``name``, ``sha256``, ``bytes`` and ``role``.
    """

    camera_id: str
    rule: str
    track_id: int
    occurred_at: datetime
    source: str = ""
    run_id: str = ""
    camera_name: str = ""
    location: str = ""
    local_time: str = ""
    article: str | None = None
    fine: int | None = None
    vehicle_label: str = ""
    frame_index: int = -1
    plate_text: str = ""
    plate_confidence: float = 0.0
    plate_candidates: tuple[PlateCandidate, ...] = ()
    evidence_path: str = ""
    manifest_sha256: str = ""
    uid: str = ""
    bundle_id: str = ""
    evidence_key: str = ""
    chain_seq: int | None = None
    evidence_files: tuple[EvidenceFileIn, ...] = ()
    plate_colour: str = ""
    plate_category: str = ""

    def __post_init__(self) -> None:
        if not self.camera_id or not self.rule:
            raise ValueError("a ticket needs a camera_id and a rule")
        object.__setattr__(self, "occurred_at", _utc(self.occurred_at, "occurred_at"))
        object.__setattr__(
            self, "plate_candidates", tuple(PlateCandidate.coerce(c) for c in self.plate_candidates)
        )
        object.__setattr__(self, "evidence_files", tuple(EvidenceFileIn.coerce(f) for f in self.evidence_files))

    @property
    def dedupe_key(self) -> tuple[str, str, str, int, str]:
        return (self.camera_id, self.source, self.run_id, self.track_id, self.rule)

    @property
    def reference_day(self) -> date:
        try:
            return datetime.fromisoformat(self.local_time).date()
        except ValueError:
            return self.occurred_at.date()


@dataclass(frozen=True, slots=True, kw_only=True)
class TicketView(TicketIn):
    """A stored ticket: what was added plus its id, reference code, status and times.

    The owner fields come from the vehicle-registry lookup after approval
    (:meth:`TicketStore.record_owner_lookup`): ``registry_status`` is ``''`` before any lookup,
    then ``found``, ``not_found`` or ``unavailable``; ``registry_mismatch`` is a review flag
    (why the registered vehicle disagrees with the camera's), empty when there is none.
    """

    id: int
    reference: str
    status: str = PENDING_REVIEW
    created_at: datetime
    status_changed_at: datetime | None = None
    synced_at: datetime | None = None
    owner_name: str = ""
    owner_address: str = ""
    vehicle_make: str = ""
    vehicle_colour: str = ""
    registry_status: str = ""
    registry_checked_at: datetime | None = None
    registry_mismatch: str = ""
    payment_code: str = ""
    #: when this store's copy of the media was removed, the central store holding them (edge boxes)
    offloaded_at: datetime | None = None

    @property
    def needs_owner_review(self) -> bool:
        """Whether a person must look before a notice goes out (no automatic issuing): the
        registered vehicle disagrees with the camera's, or the registry does not know the plate."""
        return bool(self.registry_mismatch) or self.registry_status == REGISTRY_NOT_FOUND


@dataclass(frozen=True, slots=True)
class SiteStatusView:
    """An edge box's last report to the central store (``data``: see :mod:`etle.edge.upkeep`)."""

    site: str
    reported_at: datetime
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ActionView:
    """One audit-log entry of a ticket (``ticket_uid`` identifies the ticket across stores)."""

    id: int
    uid: str
    ticket_id: int
    ticket_uid: str
    action: str
    from_status: str | None
    to_status: str | None
    actor: str
    at: datetime
    reason: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PlateReadView:
    rank: int
    text: str
    confidence: float
    frame_index: int
    source: str
    chosen: bool
    actor: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class UserView:
    id: int
    username: str
    display_name: str
    role: str
    active: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CameraIn:
    id: str
    name: str = ""
    location: str = ""
    lat: float | None = None
    lon: float | None = None
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class TicketRecord:
    """A ticket with everything recorded about it: what export writes and sync transfers."""

    ticket: TicketView
    plate_reads: tuple[PlateReadView, ...]
    actions: tuple[ActionView, ...]
    camera: CameraIn | None = None


@dataclass(frozen=True, slots=True)
class NoticeIn:
    """A confirmation letter put into a batch for the post (see :meth:`TicketStore.send_notices`).

    ``addressee_name`` and ``addressee_address`` are what the letter prints, kept verbatim so the
    register shows where the letter went even if a later lookup changes the ticket's owner.
    """

    ticket_id: int
    notice_date: date
    deadline: date
    batch_file: str
    batch_sha256: str
    addressee_name: str
    addressee_address: str


@dataclass(frozen=True, slots=True)
class NoticeView:
    """One row of the notice register."""

    id: int
    ticket_id: int
    reference: str
    notice_date: date
    deadline: date
    batch_file: str
    batch_sha256: str
    addressee_name: str
    addressee_address: str
    created_at: datetime
    actor: str


@dataclass(frozen=True, slots=True)
class Approval:
    """A ticket with its latest approval: when and by whom (what a day's letters are made from)."""

    ticket: TicketView
    approved_at: datetime
    approver: str


def _notice_view(row: Notice) -> NoticeView:
    return NoticeView(
        id=row.id, ticket_id=row.ticket_id, reference=row.reference, notice_date=row.notice_date,
        deadline=row.deadline, batch_file=row.batch_file, batch_sha256=row.batch_sha256,
        addressee_name=row.addressee_name, addressee_address=row.addressee_address,
        created_at=row.created_at, actor=row.actor,
    )


_IN_FIELDS = tuple(f.name for f in fields(TicketIn))
_COLUMN_FIELDS = tuple(n for n in _IN_FIELDS if n != "evidence_files")
_OWNER_FIELDS = ("owner_name", "owner_address", "vehicle_make", "vehicle_colour", "registry_status",
                 "registry_checked_at", "registry_mismatch")
"""Ticket columns written by the registry lookup (revision 0004), not by the pipeline."""

REGISTRY_FOUND, REGISTRY_NOT_FOUND, REGISTRY_UNAVAILABLE = "found", "not_found", "unavailable"
REGISTRY_STATUSES = (REGISTRY_FOUND, REGISTRY_NOT_FOUND, REGISTRY_UNAVAILABLE)


def _to_view(row: Ticket) -> TicketView:
    values: dict[str, Any] = {name: getattr(row, name) for name in _COLUMN_FIELDS}
    values["plate_candidates"] = tuple(row.plate_candidates or ())
    values["uid"] = row.uid or ""
    values["evidence_files"] = tuple(
        EvidenceFileIn(name=f.name, sha256=f.sha256, bytes=f.bytes, role=f.role, pruned_at=f.pruned_at)
        for f in row.files
    )
    owner: dict[str, Any] = {name: getattr(row, name) for name in _OWNER_FIELDS}
    for name in _OWNER_FIELDS:
        if owner[name] is None and name != "registry_checked_at":
            owner[name] = ""
    return TicketView(
        **values, id=row.id, reference=row.reference, status=row.status, created_at=row.created_at,
        status_changed_at=row.status_changed_at, synced_at=row.synced_at, **owner,
        payment_code=row.payment_code or "", offloaded_at=row.offloaded_at,
    )


def _action_view(row: ReviewAction, ticket_uid: str) -> ActionView:
    return ActionView(
        id=row.id, uid=row.uid, ticket_id=row.ticket_id, ticket_uid=ticket_uid, action=row.action,
        from_status=row.from_status, to_status=row.to_status, actor=row.actor, at=row.at, reason=row.reason,
        data=dict(row.data or {}),
    )
