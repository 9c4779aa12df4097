"""Registries read from a file: a CSV export or a SQLite database (trials, offline sites).

Both are read once at open, so a lookup is a dictionary access and cannot be "unavailable";
a bad file is a configuration error (:class:`etle.errors.ConfigError` naming the file and line)
raised when it is opened, not a surprise in the middle of a batch.
"""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

from etle.errors import ConfigError
from etle.registry.base import FOUND, NOT_FOUND, LookupResult, OwnerRecord, normalise_plate, record_from_mapping

__all__ = ["CsvRegistry", "SqliteRegistry"]


class _InMemory:
    source: str
    _rows: dict[str, OwnerRecord]

    def __len__(self) -> int:
        return len(self._rows)

    def lookup(self, plate: str) -> LookupResult:
        key = normalise_plate(plate)
        rec = self._rows.get(key)
        if rec is None:
            return LookupResult(key, NOT_FOUND, source=self.source)
        return LookupResult(key, FOUND, rec, source=self.source)


class CsvRegistry(_InMemory):
    """A registry CSV: the ``invalid_plate`` rule's columns (``plate``, ``vehicle_type``,
    ``colour`` = plate colour, ``status``) plus ``owner_name``, ``owner_address``, ``make``,
    ``vehicle_colour`` and ``valid_until`` (all but ``plate`` optional)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.source = f"csv:{self.path.name}"
        self._rows = {}
        try:
            with self.path.open(encoding="utf-8-sig", newline="") as f:
                reader = csv.DictReader(f)
                fields = {(c or "").strip().lower() for c in (reader.fieldnames or [])}
                if "plate" not in fields:
                    raise ConfigError(f"vehicle registry {self.path}: needs a 'plate' column (has {sorted(fields)})")
                for line, row in enumerate(reader, start=2):
                    rec = record_from_mapping(row, f"{self.path}:{line}")
                    self._rows[rec.plate] = rec
        except OSError as exc:
            raise ConfigError(f"vehicle registry {self.path}: {exc.strerror or exc}") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ConfigError(f"vehicle registry {self.path}: not a readable CSV file: {exc}") from None


class SqliteRegistry(_InMemory):
    """A registry in a SQLite file: table ``vehicles`` (or ``table``) with the CSV's columns."""

    def __init__(self, path: str | Path, *, table: str = "vehicles") -> None:
        self.path = Path(path)
        self.source = f"sqlite:{self.path.name}"
        self._rows = {}
        if not table.isidentifier():
            raise ConfigError(f"vehicle registry {self.path}: invalid table name {table!r}")
        if not self.path.is_file():
            raise ConfigError(f"vehicle registry {self.path}: no such file")
        try:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise ConfigError(f"vehicle registry {self.path}: {exc}") from None
        try:
            conn.row_factory = sqlite3.Row
            rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()  # noqa: S608 - identifier checked
        except sqlite3.Error as exc:
            raise ConfigError(f"vehicle registry {self.path}: cannot read table {table!r}: {exc}") from None
        finally:
            conn.close()
        for n, row in enumerate(rows, start=1):
            rec = record_from_mapping(dict(row), f"{self.path}:{table} row {n}")
            self._rows[rec.plate] = rec
