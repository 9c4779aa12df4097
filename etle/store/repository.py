"""The ticket repository: add, find, review, export and sync tickets in any SQLAlchemy database.

:class:`TicketStore` is the only writer of the ticket tables.  Adding is idempotent on the dedupe
key (camera, source, run, track, rule) and on the ticket's stable ``uid``: the same track and
rule of one run never yields two tickets, even when two writers race, and a sync retry never
duplicates.  Every change of a ticket writes an entry to the append-only audit log
(``review_actions``) in the same transaction.  The schema is migrated to the newest revision
when a store opens (:mod:`etle.store.migrate`).

SQLite (the embedded default) runs in WAL mode with foreign keys, and every transaction starts
with ``BEGIN IMMEDIATE`` so DDL is transactional and writers queue on ``busy_timeout`` rather
than failing on lock upgrades.  PostgreSQL serves a central deployment.  Database failures
surface as :class:`etle.errors.StoreError` with a one-line message; the URL's password is never
shown.

:class:`TicketStore` is composed of one mixin per concern, all on the engine and transaction
handling of :class:`etle.store.base.StoreBase`: :mod:`etle.store.tickets` (adding and reading
tickets, cameras), :mod:`etle.store.users`, :mod:`etle.store.audit` (review transitions, plate
corrections, the audit log), :mod:`etle.store.keys` (site signing keys),
:mod:`etle.store.notices` (owner lookups, notices, approvals, payments),
:mod:`etle.store.retention` and :mod:`etle.store.sync` (store-and-forward).  The records it
takes and returns are in :mod:`etle.store.views`; this module re-exports them.
"""

from __future__ import annotations

from etle.store.audit import AuditMixin
from etle.store.base import (
    DEFAULT_URL,
    PAYMENT_CODE_LENGTH,
    PIPELINE_ACTOR,
    REFERENCE_ALPHABET,
    REFERENCE_LENGTH,
    StoreBase,
    new_payment_code,
    new_reference,
    new_uid,
    normalise_payment_code,
)
from etle.store.keys import SiteKeysMixin
from etle.store.notices import NoticesMixin
from etle.store.retention import RetentionMixin
from etle.store.sync import SyncMixin
from etle.store.tickets import TicketsMixin
from etle.store.users import UsersMixin
from etle.store.views import (
    REGISTRY_FOUND,
    REGISTRY_NOT_FOUND,
    REGISTRY_STATUSES,
    REGISTRY_UNAVAILABLE,
    ActionView,
    Approval,
    CameraIn,
    EvidenceFileIn,
    NoticeIn,
    NoticeView,
    PlateCandidate,
    PlateReadView,
    TicketIn,
    TicketRecord,
    TicketView,
    UserView,
)


class TicketStore(NoticesMixin, AuditMixin, TicketsMixin, UsersMixin, SiteKeysMixin, RetentionMixin, SyncMixin):
    """Tickets in the database at ``url`` (any SQLAlchemy URL; SQLite gets WAL and foreign keys).

    The schema is migrated to the newest revision when needed (``create=False`` only checks that
    it is current).  Raises :class:`StoreError` when the URL is invalid, its driver is missing,
    or the database cannot be reached or migrated.
    """


__all__ = [
    "DEFAULT_URL",
    "PAYMENT_CODE_LENGTH",
    "PIPELINE_ACTOR",
    "REFERENCE_ALPHABET",
    "REFERENCE_LENGTH",
    "REGISTRY_FOUND",
    "REGISTRY_NOT_FOUND",
    "REGISTRY_STATUSES",
    "REGISTRY_UNAVAILABLE",
    "ActionView",
    "Approval",
    "AuditMixin",
    "CameraIn",
    "EvidenceFileIn",
    "NoticeIn",
    "NoticeView",
    "NoticesMixin",
    "PlateCandidate",
    "PlateReadView",
    "RetentionMixin",
    "SiteKeysMixin",
    "StoreBase",
    "SyncMixin",
    "TicketIn",
    "TicketRecord",
    "TicketStore",
    "TicketView",
    "TicketsMixin",
    "UserView",
    "UsersMixin",
    "new_payment_code",
    "new_reference",
    "new_uid",
    "normalise_payment_code",
]
