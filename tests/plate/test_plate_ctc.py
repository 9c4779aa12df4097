"""CTC decoding on hand-made probability matrices."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from etle.plate import ctc
from etle.plate.tnkb import ALPHABET, IndonesiaFormat, is_tnkb

from fixtures.ctc import K1, frames  # noqa: F401


def test_greedy_merges_repeats_and_drops_blanks() -> None:
    p = frames("B", "B", "-", "1", "-", "1", "A", "A")
    d = ctc.greedy(p)
    assert d.text == "B11A"
    assert len(d.char_conf) == 4 and d.confidence > 0.99


def test_constrained_decoder_returns_the_best_valid_plate() -> None:
    # the model prefers "B12345" (5 digits: invalid); the best valid reading reads the last 5 as S
    p = frames("B", "-", "1", "2", "3", "4", {"5": 0.6, "S": 0.4}, "-")
    auto = IndonesiaFormat().automaton()
    assert ctc.greedy(p).text == "B12345"
    got = ctc.constrained_best_path(p, auto)
    assert got is not None and got.text == "B1234S"
    assert got.logp <= ctc.greedy(p).logp


def test_constrained_equals_greedy_when_greedy_is_valid() -> None:
    p = frames("R", "-", "5", "1", "5", "4", "-", "W", "P")
    got = ctc.constrained_best_path(p, IndonesiaFormat().automaton())
    assert got is not None and got.text == "R5154WP"
    assert abs(got.logp - ctc.greedy(p).logp) < 1e-9


def test_repeated_letters_need_a_blank() -> None:
    p = frames("D", "K", "-", "1", "-", "A", "-", "A", "B")
    got = ctc.constrained_best_path(p, IndonesiaFormat().automaton())
    assert got is not None and got.text == "DK1AAB"


def test_align_scores_given_texts() -> None:
    p = frames("B", "1", "2", "3", "-", "A")
    good, bad = ctc.align(p, "B123A"), ctc.align(p, "B128A")
    assert good is not None and bad is not None and good.logp > bad.logp
    assert ctc.align(p, "") is None
    assert ctc.align(p, "B1234567890AB") is None  # longer than the steps can hold


def test_collapse_folds_case_lookalikes_and_other_symbols() -> None:
    chars = ["blank", "a", "A", "∠", "中", "·", " ", "О"]  # last: Cyrillic O
    idx = ctc.collapse_index(chars)
    assert idx.tolist() == [0, ALPHABET.index("A") + 1, ALPHABET.index("A") + 1, ALPHABET.index("4") + 1, 0, 0, 0, ALPHABET.index("O") + 1]
    probs = np.array([[0.1, 0.2, 0.3, 0.0, 0.2, 0.1, 0.1, 0.0]])
    out = ctc.collapse(probs, idx)
    assert out.shape == (1, K1)
    assert abs(out[0, ALPHABET.index("A") + 1] - 0.5) < 1e-9
    assert abs(out[0, 0] - 0.5) < 1e-9  # blank + CJK + separators
    assert abs(out.sum() - 1.0) < 1e-9


def test_squeeze_keeps_one_step_of_each_blank_run() -> None:
    p = frames("-", "-", "-", "A", "-", "-", "A", "-", floor=1e-6)
    sq = ctc.squeeze_blanks(p)
    assert ctc.greedy(sq).text == ctc.greedy(p).text == "AA"
    assert len(sq) < len(p)


def test_smoothing_makes_lookalikes_cheap() -> None:
    p = frames("B", "1", "2", "3", "-", {"0": 0.98, "O": 0.02})
    sm = ctc.smooth_confusions(p)
    a_raw, a_sm = ctc.align(p, "B123O"), ctc.align(sm, "B123O")
    assert a_raw is not None and a_sm is not None and a_sm.logp > a_raw.logp


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.floats(0.0, 1.0), min_size=K1, max_size=K1), min_size=1, max_size=16))
def test_constrained_results_are_always_valid(rows: list[list[float]]) -> None:
    p = np.asarray(rows) + 1e-6
    p = p / p.sum(axis=1, keepdims=True)
    got = ctc.constrained_best_path(p, IndonesiaFormat().automaton(strict=False))
    if got is not None:
        assert is_tnkb(got.text)
        assert got.logp <= ctc.greedy(p).logp + 1e-9
