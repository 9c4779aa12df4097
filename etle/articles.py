"""Articles of law and maximum fines per rule, loaded from data (``etle/data/articles.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from etle.config.settings import settings
from etle.errors import ConfigError

DEFAULT_TABLE = Path(__file__).resolve().parent / "data" / "articles.yaml"


@dataclass(frozen=True)
class Article:
    rule: str
    article: str
    max_fine_idr: int
    title_id: str = ""
    title_en: str = ""


@lru_cache(maxsize=4)
def _load(path: str) -> dict[str, Article]:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"articles table {path}: {exc}") from exc
    out: dict[str, Article] = {}
    for rule, entry in (data.get("rules") or {}).items():
        try:
            out[rule] = Article(rule, str(entry["article"]), int(entry["max_fine_idr"]), str(entry.get("title_id", "")), str(entry.get("title_en", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"articles table {path}: rule '{rule}' needs article and max_fine_idr ({exc})") from exc
    return out


def table() -> dict[str, Article]:
    return _load(str(settings().articles or DEFAULT_TABLE))


def article_for(rule: str) -> Article | None:
    return table().get(rule)
