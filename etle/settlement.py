"""After the letter: the owner's confirmation, payments and blocking (the rest of the lifecycle).

E-TLE's workflow after the letter is posted (DOMAIN.md, "The workflow after capture"): the owner
confirms (online with the reference code and plate, or in person) and may name the actual
driver; a payment code is issued; no confirmation by the deadline printed on the letter (day 8)
blocks the registration until the fine is paid.  This module drives those steps through the
lifecycle (:mod:`etle.store.lifecycle`), each audited with who, when and what was said:

- :func:`record_confirmation`: notice_sent -> confirmed, with whether the owner drove or the
  driver's name, and how the confirmation came (``online``, ``in_person``, ``post``).
- Payment codes: a random code (:func:`etle.store.repository.new_payment_code`, 12 characters,
  not derived from the reference) is stored on the ticket when it is confirmed or blocked,
  and kept in that audit entry.
- :func:`import_payments`: a CSV of payment records (columns ``payment_code, amount, paid_at``)
  moves the tickets it pays confirmed/blocked -> paid.  Unknown codes, amounts below the fine,
  second payments of a paid ticket and malformed rows are refused and listed; rows imported
  before (same code, amount and paid_at) are recognised and skipped, so a file can be imported
  again.  The accepted rows of a file are applied in one transaction (all or nothing).
- :func:`block_overdue`: every notice_sent ticket whose confirmation deadline (the notice
  register's, in the camera's time zone) is past at ``now`` is blocked.  ``now`` is always
  given: nothing here reads the clock.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

from etle.errors import EtleError
from etle.letters import zone_of
from etle.store import lifecycle
from etle.store.repository import NoticeView, TicketStore, TicketView, normalise_payment_code

VIA: Final = ("online", "in_person", "post")
"""How an owner's confirmation came: the confirmation page, at the counter, by letter."""
CSV_COLUMNS: Final = ("payment_code", "amount", "paid_at")
DEFAULT_ACTOR: Final = "system:settlement"
MAX_NAME: Final = 200
MAX_ADDRESS: Final = 300
MAX_ID_NUMBER: Final = 20
"""A driver's ID number: the 16-digit NIK, or a passport or driving-licence number."""


class SettlementInputError(EtleError):
    """Bad input to a settlement step (a malformed payment file, a confirmation that says
    nothing): one line and exit 2 on the command line, 400 in the web app."""

    exit_code = 2


# -- confirmation -------------------------------------------------------------------------------


def record_confirmation(
    store: TicketStore,
    ticket: int | str,
    *,
    driver_is_owner: bool,
    named_driver: str | None = None,
    via: str = "online",
    actor: str,
    at: datetime | None = None,
    driver_address: str = "",
    driver_id_number: str = "",
) -> TicketView:
    """Record the owner's confirmation of ``ticket`` (notice_sent -> confirmed) and issue its
    payment code.  Either the owner drove (``driver_is_owner``) or ``named_driver`` names who
    did, optionally with the driver's ``driver_address`` and ID number (NIK); the audit entry
    keeps them and ``via``.  :class:`SettlementInputError` for a confirmation that says
    neither (or both), or details of a driver who is not named; :class:`etle.store.TransitionError`
    when the ticket is not waiting for a confirmation."""
    if via not in VIA:
        raise SettlementInputError(f"confirmation via {via!r}: one of {', '.join(VIA)}")
    name = " ".join((named_driver or "").split())
    if len(name) > MAX_NAME:
        raise SettlementInputError(f"the driver's name is longer than {MAX_NAME} characters")
    if driver_is_owner and name:
        raise SettlementInputError("either the owner drove or another driver is named, not both")
    if not driver_is_owner and not name:
        raise SettlementInputError("a confirmation says the owner drove or names the driver")
    address = " ".join((driver_address or "").split())
    id_number = "".join((driver_id_number or "").split())
    if (address or id_number) and not name:
        raise SettlementInputError("a driver's address or ID number goes with the driver's name")
    if len(address) > MAX_ADDRESS:
        raise SettlementInputError(f"the driver's address is longer than {MAX_ADDRESS} characters")
    if id_number and not (id_number.isascii() and id_number.isalnum() and len(id_number) <= MAX_ID_NUMBER):
        raise SettlementInputError(f"the driver's ID number is letters and digits, at most {MAX_ID_NUMBER}")
    reason = "the owner was driving" if driver_is_owner else f"driver named: {name}"
    data: dict[str, Any] = {"driver_is_owner": driver_is_owner, "named_driver": name or None, "via": via}
    if address:
        data["driver_address"] = address
    if id_number:
        data["driver_id_number"] = id_number
    return store.transition(ticket, "confirm", actor=actor, reason=reason, data=data, at=at)


# -- payments -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PaymentRow:
    """One row of a payment file as read (``line``: its line number, the header is line 1)."""

    line: int
    payment_code: str
    amount: int
    paid_at: str


@dataclass(frozen=True, slots=True)
class PaymentProblem:
    """A row that was refused or skipped: ``kind`` is ``bad_row``, ``duplicate_in_file``,
    ``unknown_code``, ``short``, ``already_paid``, ``not_payable`` (refused) or
    ``already_imported`` (skipped: the same payment was imported before)."""

    line: int
    payment_code: str
    kind: str
    reason: str
    reference: str = ""


@dataclass(slots=True)
class PaymentImport:
    """What :func:`import_payments` did with a file."""

    source: str
    sha256: str
    rows: int = 0
    paid: list[tuple[PaymentRow, TicketView]] = field(default_factory=list)
    skipped: list[PaymentProblem] = field(default_factory=list)
    refused: list[PaymentProblem] = field(default_factory=list)
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        """No row was refused."""
        return not self.refused


def _amount(text: str) -> int:
    value = text.strip()
    if not value.isdigit():
        raise ValueError(f"amount {text!r} is not whole rupiah (digits only)")
    return int(value)


def _paid_at(text: str) -> str:
    value = text.strip()
    if len(value) == 10:
        return date.fromisoformat(value).isoformat()
    moment = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    if moment.tzinfo is None:
        raise ValueError(f"paid_at {text!r} has no UTC offset (e.g. 2026-12-03T10:15:00+07:00)")
    return moment.isoformat()


def read_payment_rows(text: str, source: str = "payments") -> tuple[list[PaymentRow], list[PaymentProblem]]:
    """The rows of a payment CSV and the malformed ones (as ``bad_row`` problems).

    The header must name ``payment_code``, ``amount`` and ``paid_at`` (any order, any case;
    other columns are ignored); :class:`SettlementInputError` otherwise.
    """
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = next(reader)
    except StopIteration:
        raise SettlementInputError(f"{source}: empty payment file (expected a header {', '.join(CSV_COLUMNS)})") from None
    except csv.Error as exc:
        raise SettlementInputError(f"{source}: not a CSV file: {exc}") from None
    names = [h.strip().lower() for h in header]
    missing = [c for c in CSV_COLUMNS if c not in names]
    if missing:
        raise SettlementInputError(f"{source}: the header lacks {', '.join(missing)} (needs {', '.join(CSV_COLUMNS)})")
    at = {c: names.index(c) for c in CSV_COLUMNS}
    rows: list[PaymentRow] = []
    bad: list[PaymentProblem] = []
    try:
        for number, cells in enumerate(reader, start=2):
            if not any(c.strip() for c in cells):
                continue
            if len(cells) < len(names):
                cells = cells + [""] * (len(names) - len(cells))
            code = normalise_payment_code(cells[at["payment_code"]])
            try:
                if not code:
                    raise ValueError("no payment code")
                rows.append(PaymentRow(number, code, _amount(cells[at["amount"]]), _paid_at(cells[at["paid_at"]])))
            except ValueError as exc:
                bad.append(PaymentProblem(number, code, "bad_row", str(exc)))
    except csv.Error as exc:
        raise SettlementInputError(f"{source}: not a CSV file: {exc}") from None
    return rows, bad


def _same_payment(store: TicketStore, t: TicketView, row: PaymentRow) -> bool:
    for a in reversed(store.actions(t.id)):
        if a.action == "pay":
            return (str(a.data.get("payment_code")) == row.payment_code and a.data.get("amount") == row.amount
                    and str(a.data.get("paid_at")) == row.paid_at)
    return False


def import_payments_text(
    store: TicketStore, text: str, *, source: str, actor: str, dry_run: bool = False, at: datetime | None = None,
) -> PaymentImport:
    """:func:`import_payments` of a file's text (the web app's upload); ``source`` names it."""
    result = PaymentImport(source=source, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(), dry_run=dry_run)
    rows, bad = read_payment_rows(text, source)
    result.rows = len(rows) + len(bad)
    result.refused.extend(bad)
    tickets = store.by_payment_codes(r.payment_code for r in rows)
    seen: set[str] = set()
    moves: list[tuple[int | str, str, str, dict[str, Any]]] = []
    accepted: list[tuple[PaymentRow, TicketView]] = []
    for row in rows:
        t = tickets.get(row.payment_code)
        if row.payment_code in seen:
            result.refused.append(PaymentProblem(row.line, row.payment_code, "duplicate_in_file",
                                                 "the code is paid twice in this file", t.reference if t else ""))
            continue
        seen.add(row.payment_code)
        if t is None:
            result.refused.append(PaymentProblem(row.line, row.payment_code, "unknown_code", "no ticket has this payment code"))
            continue
        if t.status == lifecycle.PAID:
            if _same_payment(store, t, row):
                result.skipped.append(PaymentProblem(row.line, row.payment_code, "already_imported",
                                                     "this payment was imported before", t.reference))
            else:
                result.refused.append(PaymentProblem(row.line, row.payment_code, "already_paid",
                                                     "the ticket is paid already (a second payment?)", t.reference))
            continue
        if t.status not in (lifecycle.CONFIRMED, lifecycle.BLOCKED):
            result.refused.append(PaymentProblem(row.line, row.payment_code, "not_payable",
                                                 f"the ticket is {t.status}", t.reference))
            continue
        if t.fine is not None and row.amount < t.fine:
            result.refused.append(PaymentProblem(row.line, row.payment_code, "short",
                                                 f"amount {row.amount} is less than the fine {t.fine}", t.reference))
            continue
        data = {"payment_code": row.payment_code, "amount": row.amount, "paid_at": row.paid_at,
                "fine": t.fine, "file": source, "file_sha256": result.sha256, "line": row.line}
        moves.append((t.id, "pay", f"paid {row.amount} on {row.paid_at} ({source} line {row.line})", data))
        accepted.append((row, t))
    result.refused.sort(key=lambda p: p.line)
    if dry_run or not moves:
        result.paid = accepted
        return result
    views = store.transition_many(moves, actor=actor, at=at)
    result.paid = [(row, v) for (row, _), v in zip(accepted, views, strict=True)]
    return result


def import_payments(
    store: TicketStore, csv_path: str | Path, actor: str, *, dry_run: bool = False, at: datetime | None = None,
) -> PaymentImport:
    """Import a payment file: a UTF-8 CSV with the header ``payment_code,amount,paid_at``.

    ``payment_code`` is the code the ticket got at confirmation (spaces, dashes and case are
    ignored); ``amount`` whole rupiah, digits only; ``paid_at`` an ISO 8601 date-time with its
    UTC offset (``2026-12-03T10:15:00+07:00``) or a date (``2026-12-03``).  Each ticket paid
    moves to ``paid`` with an audit entry by ``actor`` keeping the code, amount, time, file name,
    file SHA-256 and line.  See the module docstring for refused and skipped rows.  With
    ``dry_run`` nothing is written.
    """
    path = Path(csv_path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise SettlementInputError(f"cannot read payment file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SettlementInputError(f"{path}: not UTF-8 text") from None
    return import_payments_text(store, text, source=path.name, actor=actor, dry_run=dry_run, at=at)


# -- blocking -----------------------------------------------------------------------------------


@dataclass(slots=True)
class BlockResult:
    """What :func:`block_overdue` did at ``now``: tickets blocked (with their notice), tickets
    still within their deadline, notice_sent tickets without a register row (no deadline known:
    left alone and listed), and tickets that moved meanwhile (``lost``: reference, why)."""

    now: datetime
    blocked: list[tuple[TicketView, NoticeView]] = field(default_factory=list)
    waiting: int = 0
    no_notice: list[TicketView] = field(default_factory=list)
    lost: list[tuple[str, str]] = field(default_factory=list)
    dry_run: bool = False


def is_overdue(store: TicketStore, t: TicketView, notice: NoticeView, now: datetime) -> bool:
    """Whether ``notice``'s deadline is past at ``now``: the deadline day (printed on the letter,
    in the camera's calendar) counts whole, so blocking starts the day after it."""
    return now.astimezone(zone_of(store, t)).date() > notice.deadline


def block_overdue(
    store: TicketStore,
    now: datetime,
    actor: str,
    *,
    dry_run: bool = False,
    on_ticket: Callable[[int, int], None] | None = None,
) -> BlockResult:
    """Block every notice_sent ticket whose confirmation deadline is past at ``now`` (timezone-
    aware; also the time of the audit entries), each audited with its deadline and notice date.
    ``on_ticket(done, total)`` reports progress."""
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware, got {now.isoformat()}")
    result = BlockResult(now=now, dry_run=dry_run)
    waiting = store.awaiting_confirmation()
    for done, (t, notice) in enumerate(waiting, start=1):
        if notice is None:
            result.no_notice.append(t)
        elif not is_overdue(store, t, notice, now):
            result.waiting += 1
        elif dry_run:
            result.blocked.append((t, notice))
        else:
            try:
                view = store.transition(
                    t.id, "block", actor=actor, at=now,
                    reason=f"no confirmation by {notice.deadline.isoformat()}",
                    data={"deadline": notice.deadline.isoformat(), "notice_date": notice.notice_date.isoformat(),
                          "now": now.isoformat()})
                result.blocked.append((view, notice))
            except lifecycle.TransitionError as exc:  # confirmed (or moved) meanwhile
                result.lost.append((t.reference, str(exc)))
        if on_ticket is not None:
            on_ticket(done, len(waiting))
    return result
