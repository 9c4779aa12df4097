"""``etle tickets export``: tickets as CSV (one flat row each) or JSON (each with its plate reads,
evidence files and audit log), streamed so a large database does not fill memory."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterable
from dataclasses import asdict
from datetime import datetime
from typing import IO, Any, Literal

from etle.store.repository import TicketRecord

log = logging.getLogger(__name__)

Format = Literal["csv", "json"]
FORMATS: tuple[str, ...] = ("csv", "json")

CSV_COLUMNS: tuple[str, ...] = (
    "id", "uid", "reference", "status", "status_changed_at", "camera_id", "camera_name", "location",
    "occurred_at", "local_time", "rule", "article", "fine", "vehicle_label", "track_id", "plate_text",
    "plate_confidence", "plate_colour", "plate_category", "plate_candidates", "source", "run_id", "frame_index", "evidence_key", "evidence_path",
    "bundle_id", "manifest_sha256", "chain_seq", "owner_name", "owner_address", "vehicle_make", "vehicle_colour",
    "registry_status", "registry_checked_at", "registry_mismatch", "created_at", "synced_at", "last_action", "last_actor",
    "last_action_at",
)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def record_dict(record: TicketRecord) -> dict[str, Any]:
    """A ticket record as JSON-ready data."""
    ticket = _plain(asdict(record.ticket))
    ticket["plate_reads"] = [_plain(asdict(p)) for p in record.plate_reads]
    ticket["actions"] = [_plain({**asdict(a), "data": dict(a.data)}) for a in record.actions]
    return ticket


def _csv_row(record: TicketRecord) -> dict[str, Any]:
    t = record.ticket
    row: dict[str, Any] = {}
    for name in CSV_COLUMNS:
        if hasattr(t, name):
            value = getattr(t, name)
            row[name] = value.isoformat() if isinstance(value, datetime) else ("" if value is None else value)
    row["plate_candidates"] = json.dumps([c.as_dict() for c in t.plate_candidates])
    last = record.actions[-1] if record.actions else None
    row["last_action"] = last.action if last else ""
    row["last_actor"] = last.actor if last else ""
    row["last_action_at"] = last.at.isoformat() if last else ""
    return row


def write_export(records: Iterable[TicketRecord], out: IO[str], fmt: Format) -> int:
    """Write ``records`` to ``out`` as ``fmt``; return how many were written."""
    n = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
        writer.writeheader()
        for record in records:
            writer.writerow(_csv_row(record))
            n += 1
    elif fmt == "json":
        out.write("[")
        for record in records:
            out.write(",\n" if n else "\n")
            out.write(json.dumps(record_dict(record), ensure_ascii=False, sort_keys=True))
            n += 1
        out.write("\n]\n" if n else "]\n")
    else:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    log.info("exported %d tickets as %s", n, fmt)
    return n
