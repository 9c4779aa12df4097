"""The words of the review app and of the letters in each language (``etle/web/i18n/*.json``).

Below the web app and the letters batch, which both translate; neither imports the other for it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

CATALOGUES = Path(__file__).resolve().parent / "web" / "i18n"
LANGS = ("id", "en")


@lru_cache(maxsize=2)
def catalogue(lang: str) -> dict[str, str]:
    """The catalogue of ``lang`` (key -> text)."""
    return json.loads((CATALOGUES / f"{lang}.json").read_text(encoding="utf-8"))


def translator(lang: str) -> Callable[[str], str]:
    """``key -> text`` in ``lang`` (Indonesian for an unknown language; the key where a text is missing)."""
    cat = catalogue(lang if lang in LANGS else "id")
    return lambda key: cat.get(key, key)
