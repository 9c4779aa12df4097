"""Shared fixtures.

Tests that need ../shared/data (real footage, labelled plates) or a local server skip with a
clear reason where it is absent, unless ETLE_REQUIRE_SHARED=1 / ETLE_REQUIRE_SERVICES=1 (set by
.ci/run), which turns the skip into a failure so CI never silently skips them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ETLE_SHARED_DIR", REPO.parent / "shared")) / "data"


def _require(env: str) -> bool:
    return os.environ.get(env, "") not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data; skips (or fails under ETLE_REQUIRE_SHARED=1) when absent."""
    if not (SHARED / "MANIFEST.md").is_file():
        msg = f"real data not found at {SHARED} (set ETLE_SHARED_DIR or place shared/ beside the repo)"
        if _require("ETLE_REQUIRE_SHARED"):
            pytest.fail(msg + " and ETLE_REQUIRE_SHARED=1 makes it mandatory")
        pytest.skip(msg)
    return SHARED


def require_model(name: str):
    """Resolve a model from the manifest or skip/fail the test with the install hint."""
    from etle.errors import ModelError
    from etle.models import registry

    try:
        return registry.resolve(name)
    except ModelError as exc:
        if _require("ETLE_REQUIRE_MODELS"):
            pytest.fail(f"model {name} required: {exc}")
        pytest.skip(f"model {name} not available: {exc}")
