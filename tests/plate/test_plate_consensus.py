"""Per-track plate consensus and crop quality."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from etle.plate.consensus import PlateConsensus, crop_quality
from etle.types import NO_PLATE, PlateRead


def read(text: str, conf: float = 0.9, frame: int = 0, crop: np.ndarray | None = None) -> PlateRead:
    return PlateRead(text=text, confidence=conf, raw=text, frame_index=frame, crop=crop)


def test_empty_track_has_no_plate() -> None:
    c = PlateConsensus()
    assert c.result(1) is NO_PLATE
    c.add(1, read(""), 1.0)
    assert c.result(1) is NO_PLATE


def test_weighted_vote_picks_the_majority() -> None:
    c = PlateConsensus()
    for i, t in enumerate(["R5154WP", "R5154WP", "R5164WP", "R5154WP"]):
        c.add(7, read(t, frame=i), 0.8)
    res = c.result(7)
    assert res.text == "R5154WP"
    assert 0 < res.confidence <= 1
    assert [r.frame_index for r in res.candidates] == [0, 1, 2, 3]
    assert res.best is not None and res.best.text == "R5154WP"


def test_quality_and_confidence_weigh() -> None:
    c = PlateConsensus()
    c.add(1, read("B1234AB", 0.9), 1.0)
    c.add(1, read("B1284AB", 0.5), 0.2)
    c.add(1, read("B1284AB", 0.5), 0.2)
    assert c.result(1).text == "B1234AB"


def test_grammar_valid_reads_outvote_invalid_ones() -> None:
    c = PlateConsensus("id")
    for _ in range(3):
        c.add(1, read("9840VU", 0.95), 1.0)  # invalid (no region letters)
    c.add(1, read("B9840VU", 0.5), 0.5)
    assert c.result(1).text == "B9840VU"
    g = PlateConsensus("generic")
    for _ in range(3):
        g.add(1, read("9840VU", 0.95), 1.0)
    g.add(1, read("B9840VU", 0.5), 0.5)
    assert g.result(1).text == "9840VU"


def test_per_character_vote_composes_a_better_text() -> None:
    c = PlateConsensus()
    # each read has one different error; the per-position vote recovers the plate
    for t in ["B1234XY", "B1284XY", "B1234XV", "B7234XY", "B1234KY"]:
        c.add(1, read(t, 0.8), 1.0)
    assert c.result(1).text == "B1234XY"
    d = PlateConsensus()
    for t in ["B1284XY", "B1234XV", "B7234XY"]:
        d.add(1, read(t, 0.8), 1.0)
    assert d.result(1).text == "B1234XY"  # no read had it whole


def test_best_crop_is_kept_from_the_heaviest_winning_read() -> None:
    small = np.zeros((10, 30, 3), np.uint8)
    big = np.full((40, 120, 3), 255, np.uint8)
    c = PlateConsensus()
    c.add(1, read("B1AB", 0.9, crop=small), 0.3)
    c.add(1, read("B1AB", 0.9, crop=big), 0.9)
    best = c.result(1).best
    assert best is not None and best.crop is big


def test_state_is_bounded() -> None:
    c = PlateConsensus(max_reads=4, max_tracks=3)
    for i in range(10):
        c.add(1, read("B1AB", 0.5 + i / 100, frame=i), 1.0)
    assert c.count(1) == 4
    assert min(r.frame_index for r in c.result(1).candidates) == 6  # the lightest went first
    for t in (2, 3, 4):
        c.add(t, read("D1"), 1.0)
    assert len(c) == 3 and 1 not in c.tracks()  # least recently updated dropped
    c.forget(2)
    assert c.result(2) is NO_PLATE and len(c) == 2
    with pytest.raises(ValueError):
        PlateConsensus(max_reads=0)


def test_inputs_are_not_mutated() -> None:
    crop = np.zeros((10, 30, 3), np.uint8)
    r = read("B1AB", crop=crop)
    c = PlateConsensus()
    c.add(1, r, 1.0)
    c.result(1)
    assert r.text == "B1AB" and r.crop is crop and not crop.any()


def test_crop_quality_prefers_large_sharp_crops() -> None:
    rng = np.random.default_rng(0)
    sharp = np.zeros((60, 180, 3), np.uint8)
    cv2.putText(sharp, "B 1234 AB", (5, 45), cv2.FONT_HERSHEY_SIMPLEX, 1.4, (255, 255, 255), 3)
    blurred = cv2.GaussianBlur(sharp, (15, 15), 6)
    tiny = cv2.resize(sharp, (45, 15), interpolation=cv2.INTER_AREA)
    q_sharp, q_blur, q_tiny = crop_quality(sharp), crop_quality(blurred), crop_quality(tiny)
    assert 0 <= q_blur < q_sharp <= 1
    assert q_tiny < q_sharp
    assert crop_quality(None) == 0.0 and crop_quality(np.zeros((0, 0, 3), np.uint8)) == 0.0
    assert 0 <= crop_quality(rng.integers(0, 255, (30, 90), dtype=np.uint8)) <= 1


def test_reads_of_other_lengths_vote_through_alignment() -> None:
    # a distant plate: each read drops or adds a character somewhere; no two reads agree exactly
    c = PlateConsensus()
    for t in ["R4752PE", "R752PE", "R4752P", "R47752PE", "R4752PF"]:
        c.add(1, read(t, 0.7), 1.0)
    res = c.result(1)
    assert res.text == "R4752PE"
    assert res.best is not None and res.best.text == "R4752PE"


def test_composed_text_can_be_one_no_read_had() -> None:
    c = PlateConsensus()
    for t in ["B1234X", "B234XY", "B1284XY"]:
        c.add(1, read(t, 0.8), 1.0)
    res = c.result(1)
    assert res.text == "B1234XY"
    assert res.best is not None and res.best.text == "B1234XY" and res.best.crop is None


def test_scattered_reads_are_less_confident_than_consistent_ones() -> None:
    same, scattered, junk = PlateConsensus(), PlateConsensus(), PlateConsensus()
    for _ in range(4):
        same.add(1, read("R4752PE", 0.7), 1.0)
    for t in ["R4752PE", "R752PE", "R4762PM", "R2782PM"]:
        scattered.add(1, read(t, 0.7), 1.0)
    for t in ["R4752PE", "L0", "F0RR", "T2"]:
        junk.add(1, read(t, 0.7), 1.0)
    a, b, c = same.result(1).confidence, scattered.result(1).confidence, junk.result(1).confidence
    assert a == pytest.approx(0.7)
    assert c < b < a


def test_character_agreement_is_the_weakest_characters_share_of_the_reads_covering_it() -> None:
    from etle.plate.consensus import character_agreement

    reads = [read(t) for t in ("R2333RK", "R2333RK", "R2333RK", "R2333XX", "R233XK")]
    # R233XK (one shorter) aligns as R233[3->X][R dropped]K: the weakest place is the 'R', where
    # three reads say R, R2333XX says X and R233XK, having dropped it, does not count
    assert character_agreement("R2333RK", reads) == pytest.approx(3 / 4)
    split = [read(t) for t in ("R5154VP", "R5154VP", "R5154WP", "R5154MP", "R5154UP")]
    assert character_agreement("R5154VP", split) == pytest.approx(2 / 5)
    assert character_agreement("R5154WP", [read("R5154WP")]) == 1.0


def test_character_agreement_leaves_out_partial_reads_and_dropped_characters() -> None:
    from etle.plate.consensus import character_agreement

    # 'B4' and 'K40' are reads of a crop too small for the whole plate: they say nothing of it
    reads = [read(t) for t in ("R4782PK", "R4782PK", "B4", "K40")]
    assert character_agreement("R4782PK", reads) == 1.0
    # a read one character short covers the others: R4782K drops the P, which is not held against it
    assert character_agreement("R4782PK", [read("R4782PK"), read("R4782K")]) == 1.0
    assert character_agreement("", reads) == 0.0
    assert character_agreement("R4782PK", [read("B4")]) == 0.0  # no read covers it


def test_character_agreement_counts_reads_that_say_the_plate_is_longer() -> None:
    from etle.plate.consensus import character_agreement

    # the Cilacap no-helmet plate in footage upscaled 2x, read in pieces: Z333 lines up with most
    # reads character by character, but three of the four reads at least as long have 5 characters
    pieces = [read(t) for t in ("T1M", "E3328", "Z33", "Z2333", "Z333", "Z333X", "W33")]
    assert character_agreement("Z333", pieces) == pytest.approx(1 / 4)
    # a suffix letter read by half the views, dropped by the others: not settled
    split = [read(t) for t in ("L1840AA", "L1840A", "L1840AI", "L1840AA", "L1840A", "L1840AA", "L1840A", "L1840A")]
    assert character_agreement("L1840A", split) == pytest.approx(4 / 8)
    assert character_agreement("L1840AA", split) == pytest.approx(3 / 4)  # the 'A' at the end: 3 of the 4 covering reads


def test_character_confidences_average_the_recognisers_probability_over_agreeing_reads() -> None:
    from etle.plate.consensus import character_confidences, needs_a_look
    from etle.types import PlateRead

    def cread(text: str, conf: tuple[float, ...]) -> PlateRead:
        return PlateRead(text, 0.9, char_conf=conf)

    # every read agrees on the B, each unsure of it: the vote cannot see it, the probabilities can
    reads = [cread("L1438EB", (0.9,) * 6 + (0.1,)), cread("L1438EB", (0.9,) * 6 + (0.3,)), cread("L1438E8", (0.9,) * 7)]
    confs = character_confidences("L1438EB", reads)
    assert confs is not None and confs[:6] == pytest.approx((0.9,) * 6) and confs[6] == pytest.approx(0.2)
    assert needs_a_look("L1438EB", reads) and not needs_a_look("L1438EB", reads, threshold=0.15)
    # a read shorter by one covers the characters it aligns to; a position no rated read agrees on is None
    short = character_confidences("B1AB", [cread("B1A", (0.5, 0.6, 0.7))])
    assert short is not None and short[:3] == pytest.approx((0.5, 0.6, 0.7)) and short[3] is None
    assert needs_a_look("B1AB", [cread("B1A", (0.99, 0.99, 0.99))])
    # reads without probabilities (EasyOCR) give nothing to judge by; reads of a mismatched length are left out
    assert character_confidences("B1AB", [read("B1AB")]) is None and not needs_a_look("B1AB", [read("B1AB")])
    assert character_confidences("B1AB", [cread("B1AB", (0.9,))]) is None


def test_character_votes_show_how_the_reads_spell_each_character() -> None:
    from etle.plate.consensus import character_votes

    reads = [read(t) for t in ("R5154VP", "R5154WP", "R5154VP", "R5154MP", "R515P", "")]
    votes = character_votes("R5154VP", reads)
    assert len(votes) == 7
    assert votes[0] == (("R", 4),)  # R515P (two short) and the empty read do not count
    assert votes[5] == (("V", 2), ("M", 1), ("W", 1))
    # a tie puts the text's own character first
    assert character_votes("B1AB", [read("B1AB"), read("B1AR")])[3] == (("B", 1), ("R", 1))
    assert character_votes("", reads) == ()
