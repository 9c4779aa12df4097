"""Plate text formats: normalisation, grammar, OCR-confusion fixes and display.

A :class:`PlateFormat` is what the readers and the consensus need to know about a country's
plates.  Two formats ship:

* ``id`` -- Indonesian TNKB: registration line ``^[A-Z]{1,2}[0-9]{1,4}[A-Z]{0,3}$`` with a
  region prefix from the public table in ``data/regions_id.csv``, and a second, smaller validity
  line ``MM.YY`` that is not part of the registration.
* ``generic`` -- any country: upper-case alphanumerics, no grammar, no fixes.

The confusion fixes are hand-written because they are domain knowledge, not something a library
offers: an OCR model confuses 0/O/D/Q, 1/I, 8/B, 5/S, 2/Z, 6/G, and the grammar says which class
(letter or digit) each position must hold.  :meth:`IndonesiaFormat.fix` searches every split of
the text into prefix/number/suffix and picks the one that needs the cheapest substitutions,
preferring known region prefixes.  A text that is already valid with a known prefix is never
changed.  The same grammar is also offered as a small automaton (:meth:`IndonesiaFormat.automaton`)
that the CTC decoder in :mod:`etle.plate.ctc` follows, so a reader can pick the most probable
*valid* plate from the recogniser's per-step probabilities instead of repairing its best guess.
"""

from __future__ import annotations

import csv
import itertools
import logging
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Protocol, runtime_checkable

import numpy as np

log = logging.getLogger(__name__)

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
"""The symbols a registration may hold, in the order the CTC decoder indexes them (from 1)."""

LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
DIGITS = frozenset("0123456789")

TNKB_RE = re.compile(r"^([A-Z]{1,2})([0-9]{1,4})([A-Z]{0,3})$")
VALIDITY_RE = re.compile(r"^(0[1-9]|1[0-2])([0-9]{2})$")

_REGIONS_CSV = Path(__file__).resolve().parent / "data" / "regions_id.csv"

# Cost of reading the observed character as the required class.  Lower = more usual confusion.
_TO_LETTER: Mapping[str, tuple[tuple[str, float], ...]] = MappingProxyType(
    {
        "0": (("O", 0.4), ("D", 0.6), ("Q", 0.7)),
        "1": (("I", 0.4), ("L", 0.8), ("T", 0.9)),
        "2": (("Z", 0.4),),
        "4": (("A", 0.6),),
        "5": (("S", 0.4),),
        "6": (("G", 0.4),),
        "7": (("T", 0.6),),
        "8": (("B", 0.4),),
    }
)
_TO_DIGIT: Mapping[str, tuple[tuple[str, float], ...]] = MappingProxyType(
    {
        "O": (("0", 0.3),),
        "D": (("0", 0.6),),
        "Q": (("0", 0.6),),
        "U": (("0", 0.8),),
        "I": (("1", 0.4),),
        "L": (("1", 0.7),),
        "J": (("1", 0.8),),
        "T": (("7", 0.6),),
        "Z": (("2", 0.4),),
        "A": (("4", 0.6),),
        "S": (("5", 0.4),),
        "G": (("6", 0.4),),
        "B": (("8", 0.4),),
    }
)
# Letter-for-letter slips; only used to turn an unknown region prefix into a known one.
_LETTER_SWAP: Mapping[str, tuple[tuple[str, float], ...]] = MappingProxyType(
    {
        "C": (("G", 0.6),),
        "G": (("C", 0.6),),
        "O": (("D", 0.5), ("Q", 0.7)),
        "Q": (("O", 0.5), ("D", 0.6)),
        "U": (("D", 0.8),),
        "I": (("L", 0.8), ("T", 0.8)),
        "P": (("R", 0.8),),
        "F": (("E", 0.8),),
        "E": (("F", 0.8),),
    }
)
_EDGE_DELETABLE = frozenset("I1LJ")  # a plate bolt or frame edge read as a stroke
_EDGE_DELETE_COST = 0.8
_UNKNOWN_PREFIX_COST = 1.0
_MAX_FIX_COST = 2.0


# ----------------------------------------------------------------------------------------------
# helpers shared by the formats


def normalise(text: str) -> str:
    """Upper-case ``text`` and keep only ``A-Z0-9``; accents and full-width forms fold first."""
    folded = unicodedata.normalize("NFKD", text)
    out = [c for c in folded.upper() if c in LETTERS or c in DIGITS]
    return "".join(out)


def is_tnkb(text: str) -> bool:
    """Whether ``text`` (normalised) matches the TNKB registration grammar."""
    return TNKB_RE.match(text) is not None


def split_tnkb(text: str) -> tuple[str, str, str] | None:
    """``"R5154WP"`` -> ``("R", "5154", "WP")``; ``None`` when ``text`` is not valid TNKB."""
    m = TNKB_RE.match(text)
    return (m.group(1), m.group(2), m.group(3)) if m else None


def format_plate(text: str) -> str:
    """Display form with spaces between the groups: ``"R5154WP"`` -> ``"R 5154 WP"``.

    Text that is not valid TNKB is returned normalised and unspaced.
    """
    norm = normalise(text)
    parts = split_tnkb(norm)
    if parts is None:
        return norm
    return " ".join(p for p in parts if p)


_VALIDITY_DIGIT = MappingProxyType({"O": "0", "D": "0", "Q": "0", "I": "1", "L": "1", "Z": "2", "S": "5", "G": "6", "B": "8", "T": "7"})


def parse_validity(text: str) -> str | None:
    """Parse the validity line of an Indonesian plate into ``"MM.YY"``, or ``None``.

    Accepts OCR output such as ``"08.27"``, ``"08-27"``, ``"0827"`` or ``"O8.2T"`` (letters that
    look like digits are read as those digits).  The month must be 01-12.
    """
    chars = [_VALIDITY_DIGIT.get(c, c) for c in normalise(text)]
    digits = "".join(c for c in chars if c in DIGITS)
    if len(digits) != 4 or len(chars) - len(digits) > 1:
        return None
    m = VALIDITY_RE.match(digits)
    return f"{m.group(1)}.{m.group(2)}" if m else None


@dataclass(frozen=True, slots=True)
class Region:
    prefix: str
    area: str
    province: str
    note: str = ""


@lru_cache(maxsize=1)
def regions() -> Mapping[str, Region]:
    """The Indonesian region-prefix table (``data/regions_id.csv``), keyed by prefix."""
    out: dict[str, Region] = {}
    with open(_REGIONS_CSV, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            p = row["prefix"].strip().upper()
            out[p] = Region(p, row["area"].strip(), row["province"].strip(), (row.get("note") or "").strip())
    return MappingProxyType(out)


def region_of(text: str) -> Region | None:
    """The region of a normalised TNKB registration, when its prefix is in the table."""
    parts = split_tnkb(normalise(text))
    return regions().get(parts[0]) if parts else None


# ----------------------------------------------------------------------------------------------
# the automaton the constrained CTC decoder follows


@dataclass(frozen=True, slots=True)
class Automaton:
    """A deterministic automaton over :data:`ALPHABET`.

    ``table[state, i]`` is the next state after symbol ``ALPHABET[i]`` or -1 where the symbol is
    not allowed; ``accept`` holds the states in which a complete registration may end.
    """

    table: np.ndarray
    start: int
    accept: frozenset[int]

    @property
    def n_states(self) -> int:
        return int(self.table.shape[0])

    def accepts(self, text: str) -> bool:
        q = self.start
        for c in text:
            i = ALPHABET.find(c)
            if i < 0:
                return False
            q = int(self.table[q, i])
            if q < 0:
                return False
        return q in self.accept


def _tnkb_automaton(prefixes: frozenset[str] | None) -> Automaton:
    """Build the TNKB automaton; ``prefixes`` restricts the region letters (None: any 1-2)."""
    letters = sorted(LETTERS)
    # states: 0 start | 1..26 first letter X | 27 two-letter prefix | 28..31 digits 1-4 | 32..34 suffix 1-3
    first = {c: 1 + i for i, c in enumerate(letters)}
    p2, d0, s0 = 27, 28, 32
    table = np.full((35, len(ALPHABET)), -1, dtype=np.int32)
    li = {c: ALPHABET.index(c) for c in letters}
    di = [ALPHABET.index(c) for c in sorted(DIGITS)]
    for c in letters:
        ok_single = prefixes is None or c in prefixes
        ok_start = ok_single or prefixes is None or any(p.startswith(c) and len(p) == 2 for p in prefixes)
        if ok_start:
            table[0, li[c]] = first[c]
        if ok_single:
            table[first[c], di] = d0
        for c2 in letters:
            if prefixes is None or (c + c2) in prefixes:
                table[first[c], li[c2]] = p2
    table[p2, di] = d0
    for k in range(4):
        if k < 3:
            table[d0 + k, di] = d0 + k + 1
        table[d0 + k, [li[c] for c in letters]] = s0
    for k in range(2):
        table[s0 + k, [li[c] for c in letters]] = s0 + k + 1
    accept = frozenset(range(d0, d0 + 4)) | frozenset(range(s0, s0 + 3))
    return Automaton(table=table, start=0, accept=accept)


# ----------------------------------------------------------------------------------------------
# formats


@dataclass(frozen=True, slots=True)
class Fix:
    """The outcome of fitting OCR text to a format."""

    text: str
    valid: bool
    cost: float = 0.0  # sum of substitution/deletion costs; 0 = unchanged
    known_prefix: bool = False

    @property
    def changed(self) -> bool:
        return self.cost > 0


@runtime_checkable
class PlateFormat(Protocol):
    """What the plate stage needs to know about one country's plates."""

    @property
    def name(self) -> str: ...

    def normalise(self, text: str) -> str: ...

    def is_valid(self, text: str) -> bool: ...

    def is_plausible(self, text: str) -> bool: ...

    def fix(self, text: str) -> Fix: ...

    def display(self, text: str) -> str: ...

    def parse_validity(self, text: str) -> str | None: ...

    def automaton(self, strict: bool = True) -> Automaton | None: ...


@dataclass(frozen=True)
class GenericFormat:
    """Any country: upper-case alphanumerics, 2-10 of them; no grammar, no fixes."""

    name: str = "generic"
    min_len: int = 2
    max_len: int = 10

    def normalise(self, text: str) -> str:
        return normalise(text)

    def is_valid(self, text: str) -> bool:
        return self.min_len <= len(text) <= self.max_len and text == normalise(text)

    def is_plausible(self, text: str) -> bool:
        return self.is_valid(text)

    def fix(self, text: str) -> Fix:
        norm = normalise(text)
        return Fix(norm, self.is_valid(norm), 0.0, False)

    def display(self, text: str) -> str:
        return normalise(text)

    def parse_validity(self, text: str) -> str | None:
        return None

    def automaton(self, strict: bool = True) -> Automaton | None:
        return None


def _prefix_options(chars: str) -> list[tuple[str, float]]:
    """Letter readings of the prefix characters with their cost (the letters themselves first)."""
    per_pos: list[list[tuple[str, float]]] = []
    for c in chars:
        opts: list[tuple[str, float]] = []
        if c in LETTERS:
            opts.append((c, 0.0))
            opts.extend(_LETTER_SWAP.get(c, ()))
        else:
            opts.extend(_TO_LETTER.get(c, ()))
        if not opts:
            return []
        per_pos.append(opts)
    return [("".join(o[0] for o in combo), sum(o[1] for o in combo)) for combo in itertools.product(*per_pos)]


def _class_cost(chars: str, want: frozenset[str], table: Mapping[str, tuple[tuple[str, float], ...]]) -> tuple[str, float] | None:
    out, cost = [], 0.0
    for c in chars:
        if c in want:
            out.append(c)
            continue
        opts = table.get(c)
        if not opts:
            return None
        out.append(opts[0][0])
        cost += opts[0][1]
    return "".join(out), cost


@dataclass(frozen=True)
class IndonesiaFormat:
    """Indonesian TNKB plates (see the module docstring)."""

    name: str = "id"
    max_cost: float = _MAX_FIX_COST

    def normalise(self, text: str) -> str:
        return normalise(text)

    def is_valid(self, text: str) -> bool:
        """The registration grammar ``^[A-Z]{1,2}[0-9]{1,4}[A-Z]{0,3}$``."""
        return is_tnkb(text)

    def is_plausible(self, text: str) -> bool:
        """Valid, with a region prefix from the table and a number that does not start with 0
        (registration numbers run from 1 to 9999): what a real plate reads."""
        parts = split_tnkb(text)
        return parts is not None and parts[0] in regions() and not parts[1].startswith("0")

    def known_prefix(self, text: str) -> bool:
        parts = split_tnkb(text)
        return parts is not None and parts[0] in regions()

    def display(self, text: str) -> str:
        return format_plate(text)

    def parse_validity(self, text: str) -> str | None:
        return parse_validity(text)

    def automaton(self, strict: bool = True) -> Automaton:
        return _automaton_cached(strict)

    def fix(self, text: str) -> Fix:
        """Fit OCR text to the grammar with the cheapest position-aware substitutions.

        Valid text with a known region prefix is returned unchanged; valid text is never made
        invalid.  Text that cannot be fitted within ``max_cost`` comes back normalised, with
        ``valid`` telling whether it matches the grammar as it is.
        """
        norm = normalise(text)
        if is_tnkb(norm) and self.known_prefix(norm):
            return Fix(norm, True, 0.0, True)
        best = _best_fit(norm)
        if best is not None and best[1] <= self.max_cost:
            out, cost, known = best
            return Fix(out, True, round(cost, 6), known)
        return Fix(norm, is_tnkb(norm), 0.0, self.known_prefix(norm))


@lru_cache(maxsize=2)
def _automaton_cached(strict: bool) -> Automaton:
    return _tnkb_automaton(frozenset(regions()) if strict else None)


@lru_cache(maxsize=4096)
def _best_fit(norm: str) -> tuple[str, float, bool] | None:
    """Cheapest TNKB reading of ``norm``: (text, cost, known prefix) or None."""
    known = regions()
    best: tuple[float, int, str, bool] | None = None
    n = len(norm)
    for lead, trail in ((0, 0), (1, 0), (0, 1), (1, 1)):
        if lead and (n == 0 or norm[0] not in _EDGE_DELETABLE):
            continue
        if trail and (n == 0 or norm[-1] not in _EDGE_DELETABLE):
            continue
        core = norm[lead : n - trail]
        base = _EDGE_DELETE_COST * (lead + trail)
        for p in (1, 2):
            for d in range(1, 5):
                s = len(core) - p - d
                if s < 0 or s > 3:
                    continue
                digits = _class_cost(core[p : p + d], DIGITS, _TO_DIGIT)
                suffix = _class_cost(core[p + d :], LETTERS, _TO_LETTER)
                if digits is None or suffix is None:
                    continue
                pref_best: tuple[float, str, bool] | None = None
                for pref, pc in _prefix_options(core[:p]):
                    is_known = pref in known
                    c = pc + (0.0 if is_known else _UNKNOWN_PREFIX_COST)
                    if pref_best is None or c < pref_best[0]:
                        pref_best = (c, pref, is_known)
                if pref_best is None:
                    continue
                cost = base + pref_best[0] + digits[1] + suffix[1]
                cand = pref_best[1] + digits[0] + suffix[0]
                key = (cost, lead + trail, cand, pref_best[2])
                if best is None or key[:2] < best[:2]:
                    best = key
    if best is None:
        return None
    cost, _, text, is_known = best
    # the unknown-prefix penalty is a preference, not a substitution: report only real edits
    real_cost = cost - (0.0 if is_known else _UNKNOWN_PREFIX_COST)
    return text, real_cost, is_known


_FORMATS: dict[str, PlateFormat] = {"id": IndonesiaFormat(), "generic": GenericFormat()}


def get_format(name: str | PlateFormat = "id") -> PlateFormat:
    """The plate format called ``name`` (``id`` or ``generic``); a format object passes through."""
    if not isinstance(name, str):
        return name
    try:
        return _FORMATS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown plate format '{name}'; known: {', '.join(sorted(_FORMATS))}") from None


def available_formats() -> tuple[str, ...]:
    return tuple(sorted(_FORMATS))


# ----------------------------------------------------------------------------------------------
# plate colours -> vehicle categories (data/categories_id.yaml)

_CATEGORIES_YAML = Path(__file__).resolve().parent / "data" / "categories_id.yaml"


@dataclass(frozen=True, slots=True)
class PlateCategory:
    """What a plate's background colour (or special series) says about the vehicle."""

    key: str  # the colour name (or the series letters)
    category: str
    text: str = ""
    odd_even_exempt: bool = False
    note: str = ""


@lru_cache(maxsize=1)
def _category_tables() -> tuple[Mapping[str, PlateCategory], Mapping[str, PlateCategory]]:
    import yaml

    with open(_CATEGORIES_YAML, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}

    def table(section: str) -> Mapping[str, PlateCategory]:
        out: dict[str, PlateCategory] = {}
        for key, v in (data.get(section) or {}).items():
            v = v or {}
            out[str(key)] = PlateCategory(
                str(key), str(v["category"]), str(v.get("text", "")), bool(v.get("odd_even_exempt", False)),
                " ".join(str(v.get("note", "")).split()),
            )
        return MappingProxyType(out)

    return table("colours"), table("series")


def plate_categories() -> Mapping[str, PlateCategory]:
    """Plate background colour -> :class:`PlateCategory` (``data/categories_id.yaml``)."""
    return _category_tables()[0]


def special_series() -> Mapping[str, PlateCategory]:
    """Special series letters (RI, CD, CC) -> :class:`PlateCategory`."""
    return _category_tables()[1]


def category_of(colour: str | None, text: str | None = None) -> str | None:
    """The vehicle category a plate colour stands for (``None`` for an unknown colour).

    A special series in the registration ``text`` (suffix ``RI``, prefix ``CD`` / ``CC``) wins
    over the colour.
    """
    if text:
        parts = split_tnkb(normalise(text))
        if parts is not None:
            series = special_series()
            for letters in (parts[2], parts[0]):
                if letters and letters in series:
                    return series[letters].category
    if not colour:
        return None
    cat = plate_categories().get(colour)
    return cat.category if cat else None
