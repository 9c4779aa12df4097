"""The synthetic TNKB plate renderer (etle.train.synth): determinism and valid labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from etle.train import synth
from etle.plate.tnkb import get_format, is_tnkb, parse_validity, regions


def test_same_seed_same_samples() -> None:
    a = [synth.render_sample(np.random.default_rng(7)) for _ in range(2)]
    b = [synth.render_validity(np.random.default_rng(8)) for _ in range(2)]
    assert a[0].text == a[1].text and np.array_equal(a[0].image, a[1].image)
    assert b[0].text == b[1].text and np.array_equal(b[0].image, b[1].image)


def test_different_seeds_differ() -> None:
    a = synth.render_sample(np.random.default_rng(1))
    b = synth.render_sample(np.random.default_rng(2))
    assert a.text != b.text or a.image.shape != b.image.shape or not np.array_equal(a.image, b.image)


def test_labels_are_valid_tnkb_with_known_prefixes() -> None:
    rng = np.random.default_rng(3)
    fmt = get_format("id")
    texts = [synth.random_registration(rng) for _ in range(2000)]
    assert all(is_tnkb(t) and fmt.is_plausible(t) for t in texts)
    parts = [synth.re_split(t) for t in texts]
    assert all(p[0] in regions() for p in parts)
    assert all(not p[1].startswith("0") and 1 <= len(p[1]) <= 4 for p in parts)
    # every digit count and suffix length of the grammar occurs
    assert {len(p[1]) for p in parts} == {1, 2, 3, 4}
    assert {len(p[2]) if len(p) > 2 else 0 for p in parts} == {0, 1, 2, 3}


def test_samples_are_images_with_valid_labels() -> None:
    rng = np.random.default_rng(4)
    for _ in range(20):
        s = synth.render_sample(rng)
        assert s.image.dtype == np.uint8 and s.image.ndim == 3 and s.image.shape[2] == 3
        assert min(s.image.shape[:2]) >= 8
        assert is_tnkb(s.text) and parse_validity(s.validity) == s.validity
        v = synth.render_validity(rng)
        assert len(v.text) == 4 and v.text.isdigit() and parse_validity(v.text) == v.validity


def test_split_groups() -> None:
    assert synth.re_split("B9140BCD") == ["B", "9140", "BCD"]
    assert synth.re_split("AB1") == ["AB", "1"]


def test_missing_fonts_say_what_to_install(tmp_path: Path) -> None:
    synth.find_fonts.cache_clear()
    with pytest.raises(synth.FontNotFoundError, match="fonts-dejavu"):
        synth.find_fonts((tmp_path,))
    synth.find_fonts.cache_clear()


def test_distant_plates_are_small_tilted_crops_with_valid_labels() -> None:
    rng = np.random.default_rng(5)
    widths = []
    for _ in range(30):
        s = synth.render_distant(rng)
        assert s.image.dtype == np.uint8 and s.image.ndim == 3
        assert is_tnkb(s.text) and parse_validity(s.validity) == s.validity
        widths.append(s.image.shape[1])
    # drawn 30-100 px wide; some are scaled up afterwards as a crop tool would (at most 4x)
    assert min(widths) >= 30 and max(widths) <= 400
    assert np.median(widths) < 160  # most are far smaller than the ordinary crops (44-220 px, then scaled)
