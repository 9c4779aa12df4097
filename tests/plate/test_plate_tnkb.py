"""TNKB grammar, normalisation, confusion fixes and validity parsing."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etle.plate.tnkb import (
    ALPHABET,
    GenericFormat,
    IndonesiaFormat,
    PlateFormat,
    available_formats,
    format_plate,
    get_format,
    is_tnkb,
    normalise,
    parse_validity,
    region_of,
    regions,
    split_tnkb,
)

ID = IndonesiaFormat()
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@st.composite
def tnkb_plates(draw: st.DrawFn, known: bool = True) -> str:
    if known:
        prefix = draw(st.sampled_from(sorted(regions())))
    else:
        prefix = draw(st.text(LETTERS, min_size=1, max_size=2))
    digits = draw(st.text("0123456789", min_size=1, max_size=4))
    suffix = draw(st.text(LETTERS, min_size=0, max_size=3))
    return prefix + digits + suffix


def test_normalise_strips_separators_and_folds_case() -> None:
    assert normalise("r 5154-wp") == "R5154WP"
    assert normalise("H·8518·NA") == "H8518NA"
    assert normalise("Ｂ１２３") == "B123"  # full-width forms
    assert normalise("S 1208 Bǐ") == "S1208BI"  # accents fold
    assert normalise("") == ""


def test_grammar() -> None:
    for ok in ("B1RI", "BH1234AB", "R5154WP", "D1", "AB1234ABC"):
        assert is_tnkb(ok), ok
    for bad in ("", "1234", "ABC123", "B12345", "B1234ABCD", "B 1234", "b1234"):
        assert not is_tnkb(bad), bad
    assert split_tnkb("R5154WP") == ("R", "5154", "WP")
    assert split_tnkb("B1") == ("B", "1", "")
    assert split_tnkb("XX") is None


def test_format_plate() -> None:
    assert format_plate("R5154WP") == "R 5154 WP"
    assert format_plate("B1") == "B 1"
    assert format_plate("bh 1234 ab") == "BH 1234 AB"
    assert format_plate("ABC123") == "ABC123"  # not TNKB: unspaced


@pytest.mark.parametrize(
    "raw, want",
    [("08.27", "08.27"), ("08-27", "08.27"), ("0827", "08.27"), ("O8.2T", "08.27"), ("12·24", "12.24"), ("1·25", None), ("13.25", None), ("00.25", None), ("", None), ("SUN MOTOR", None)],
)
def test_parse_validity(raw: str, want: str | None) -> None:
    assert parse_validity(raw) == want


@pytest.mark.parametrize(
    "raw, want",
    [
        ("B 1730 JL0", "B1730JLO"),  # digit in the suffix -> letter
        ("L1438 E0", "L1438EO"),
        ("W 1825 0Z", "W1825OZ"),
        ("62474X2", "G2474XZ"),  # 6 -> G in the prefix, 2 -> Z in the suffix
        ("8 1234 AB", "B1234AB"),
        ("B 12O4 AB", "B1204AB"),  # letter in the number -> digit
        ("BI234AB", "B1234AB"),  # unknown prefix 'BI' -> B + 1234
        ("C1264CM", "G1264CM"),  # unknown prefix C -> G
        ("ID8609N", "D8609N"),  # frame edge read as I before the prefix
        ("R5154WP", "R5154WP"),  # valid: unchanged
    ],
)
def test_fix(raw: str, want: str) -> None:
    fix = ID.fix(raw)
    assert fix.text == want
    assert fix.valid


def test_fix_leaves_hopeless_text_alone() -> None:
    fix = ID.fix("9840VU")  # region letters cut off: nothing cheap makes it valid
    assert fix.text == "9840VU" and not fix.valid and fix.cost == 0


def test_regions_table() -> None:
    table = regions()
    assert len(table) >= 60
    for p in ("B", "BH", "D", "L", "AB", "DK", "BK", "R", "DA"):
        assert p in table, p
    assert all(re.fullmatch(r"[A-Z]{1,2}", p) for p in table)
    assert region_of("BH 1234 AB").province == "Jambi"  # type: ignore[union-attr]
    assert region_of("XX1") is None


def test_formats_registry() -> None:
    assert set(available_formats()) == {"id", "generic"}
    assert isinstance(get_format("id"), PlateFormat)
    assert isinstance(get_format("generic"), PlateFormat)
    g = GenericFormat()
    assert get_format(g) is g
    with pytest.raises(ValueError):
        get_format("zz")


def test_generic_applies_no_grammar() -> None:
    g = get_format("generic")
    assert g.fix("ab 054-ji").text == "AB054JI"
    assert g.is_valid("AB054JI") and g.is_valid("ABC123")
    assert g.automaton() is None
    assert g.parse_validity("08.27") is None


@settings(max_examples=300, deadline=None)
@given(tnkb_plates(known=True))
def test_valid_known_plates_never_change(plate: str) -> None:
    assert is_tnkb(plate)
    assert normalise(plate) == plate
    assert normalise(format_plate(plate)) == plate
    fix = ID.fix(plate)
    assert fix.text == plate and fix.valid and fix.cost == 0


@settings(max_examples=300, deadline=None)
@given(tnkb_plates(known=False))
def test_fix_never_makes_valid_text_invalid(plate: str) -> None:
    assert ID.fix(plate).valid


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=ALPHABET + " .-·", max_size=12))
def test_fix_output_is_valid_or_the_normalised_input(text: str) -> None:
    fix = ID.fix(text)
    assert fix.text == normalise(text) or is_tnkb(fix.text)
    assert fix.valid == is_tnkb(fix.text)


@settings(max_examples=300, deadline=None)
@given(st.one_of(tnkb_plates(known=True), tnkb_plates(known=False), st.text(alphabet=ALPHABET, max_size=10)))
def test_automata_match_the_grammar(text: str) -> None:
    loose, strict = ID.automaton(strict=False), ID.automaton(strict=True)
    assert loose.accepts(text) == is_tnkb(text)
    assert strict.accepts(text) == (is_tnkb(text) and ID.known_prefix(text))


@given(st.sampled_from(["B", "BH", "R", "L", "AB"]), st.integers(0, 999), st.sampled_from(["", "A", "WP", "RKS"]))
def test_numbers_with_a_leading_zero_match_the_grammar_but_are_not_plausible(region: str, n: int, suffix: str) -> None:
    fmt = get_format("id")
    padded = f"{region}0{n}{suffix}"  # 2-4 digits, the first a 0
    assert fmt.is_valid(padded)
    assert not fmt.is_plausible(padded)
    if n > 0:
        assert fmt.is_plausible(f"{region}{n}{suffix}")
