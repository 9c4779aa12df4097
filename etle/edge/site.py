"""The site file of ``etle edge``: which cameras run on this box, where tickets go, how to report.

.. code-block:: yaml

    site: jl-sudirman-01                  # names this box in metrics, MQTT topics and events
    output_dir: /var/lib/etle/evidence    # evidence bundles (relative: to the working directory)
    db_url: sqlite:////var/lib/etle/etle.db
    cameras:
      - camera: cameras/north.yaml        # camera file (relative: to this site file)
        source: rtsp://${CAM_USER}:${CAM_PASS}@10.0.0.11:554/stream1   # ${VAR}: from the environment
      - camera: cameras/south.yaml
        source: /dev/video0               # a V4L2 capture device
        options: {video_size: 1280x720, framerate: "15"}                # FFmpeg input options
    mqtt: {host: 127.0.0.1, port: 1883, topic: "etle/{site}/{camera}/violation"}
    webhook: {url: "https://central.example/etle/events"}
    health: {host: 0.0.0.0, port: 9108}  # GET /health (JSON) and /metrics (Prometheus)
    sync: {central_db: "${ETLE_CENTRAL_DB}", central_evidence: "s3://etle-central/evidence"}
    storage: {offload_below_gb: 2, offload_to_gb: 4, clips_below_gb: 1, reserve_gb: 0.25}

Every section but ``cameras`` is optional.  ``${VAR}`` (or ``${VAR:-default}``) in a camera
source, the database URL, the MQTT host and credentials, the webhook URL and the central store's
database and evidence location is replaced by the
environment variable ``VAR`` (so secrets live in the service's environment file, not in the
site file).  Disabled cameras are neither expanded nor loaded.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from etle.config.run import DEFAULT_DB, FAST_DETECT_FPS, Device, StageOptions, fast_detector
from etle.errors import ConfigError

__all__ = ["SiteConfig", "CameraEntry", "MqttConfig", "WebhookConfig", "HealthConfig", "LiveOptions",
           "PipelineOptions", "RestartPolicy", "SyncConfig", "StorageConfig", "load_site", "SiteConfigError"]

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class SiteConfigError(ConfigError):
    """The site file is missing, malformed or invalid."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LiveOptions(_Model):
    """How live sources are read (see :class:`etle.ingest.live.LiveSource`)."""

    queue_size: int = Field(8, ge=1, le=1000)
    open_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(10.0, gt=0)
    stall_timeout_s: float = Field(10.0, gt=0)
    backoff_initial_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    backoff_jitter: float = Field(0.3, ge=0, le=1)
    #: process at most this many frames a second per camera (None: as many as the CPU allows)
    max_fps: Optional[float] = Field(None, gt=0)


class PipelineOptions(StageOptions):
    """What each camera's pipeline runs: ``etle run``'s stage options
    (:class:`etle.config.run.StageOptions`) with the edge box's fast profile as the default --
    the int8 detector 6 times a second, tracks predicted in between, plus detections while
    something crosses a line.  The int8 model (made by ``etle models prepare``; the float one is
    used, with a warning, where it was not made, and on a CPU without VNNI:
    :func:`etle.config.run.fast_detector`) is what ``etle bench`` measures, at 2x real time
    or more on 2 cores; where recall matters more than speed, set ``detector: vehicle-detector``
    (docs/accuracy.md, fast profile).  ``threads`` defaults to the CPU count shared out over the
    cameras (``ETLE_THREADS``)."""

    detector: str = Field(default_factory=fast_detector)
    detect_fps: float = Field(FAST_DETECT_FPS, ge=0)
    device: Device = "cpu"

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str) -> str:
        from etle.plate.tnkb import get_format

        get_format(value)  # ValueError: unknown plate format '...'; known: ...
        return value


class RestartPolicy(_Model):
    """Restarting crashed camera workers: capped exponential backoff, reset after a stable run."""

    initial_s: float = Field(1.0, gt=0)
    max_s: float = Field(60.0, gt=0)
    stable_s: float = Field(60.0, gt=0)  # a worker that ran this long starts again from initial_s
    #: a worker whose stream is connected but that processed no frame for this long is restarted
    watchdog_s: float = Field(300.0, gt=0)


class CameraEntry(_Model):
    camera: Path  # camera file
    source: str  # stream URL, capture device or (for tests and demos) a video file, looped
    id: Optional[str] = None  # default: the camera file's id
    enabled: bool = True
    options: dict[str, str] = Field(default_factory=dict)  # FFmpeg input options

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v.strip()

    @field_validator("options", mode="before")
    @classmethod
    def _options(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): str(x) for k, x in v.items()}
        return v


class MqttConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    #: ``{site}``, ``{camera}`` and ``{rule}`` are filled in per event
    topic: str = "etle/{site}/{camera}/violation"
    qos: int = Field(1, ge=0, le=2)
    client_id: Optional[str] = None
    username: Optional[str] = None
    password: Optional[str] = None
    keepalive_s: int = Field(30, ge=5)
    tls: bool = False
    #: events kept for retry while the broker is unreachable (the oldest are dropped past this)
    max_pending: int = Field(10000, ge=1)

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str) -> str:
        try:
            v.format(site="s", camera="c", rule="r")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"bad placeholder in topic ({exc}); use {{site}}, {{camera}}, {{rule}}") from None
        if "#" in v or "+" in v:
            raise ValueError("a publish topic cannot hold the wildcards # or +")
        return v


class WebhookConfig(_Model):
    url: str
    timeout_s: float = Field(5.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)
    max_pending: int = Field(10000, ge=1)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://", v, re.IGNORECASE):
            raise ValueError("must be an http:// or https:// URL")
        return v


class HealthConfig(_Model):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9108, ge=0, le=65535)  # 0: any free port
    #: a camera whose last frame is older than this is reported unhealthy
    stale_after_s: float = Field(30.0, gt=0)


class SyncConfig(_Model):
    """Store-and-forward of the site's tickets and evidence to the central store (:mod:`etle.sync`),
    run by ``etle edge`` itself.  Without this section, ``$ETLE_CENTRAL_DB`` and
    ``$ETLE_CENTRAL_EVIDENCE`` are used where set; ``enabled: false`` turns it off."""

    central_db: str = ""
    central_evidence: str = ""
    interval_s: float = Field(30.0, gt=0)
    enabled: bool = True

    @model_validator(mode="after")
    def _both(self) -> "SyncConfig":
        if self.enabled and (not self.central_db or not self.central_evidence):
            raise ValueError("give both central_db and central_evidence (or enabled: false)")
        if self.enabled:
            from sqlalchemy.engine import make_url
            from sqlalchemy.exc import ArgumentError

            try:
                make_url(self.central_db)
            except ArgumentError:
                raise ValueError("central_db is not a database URL (e.g. postgresql+psycopg://user@host/etle)") from None
        return self


class StorageConfig(_Model):
    """Free space of the disk holding ``output_dir`` (GB; 0 turns a floor off).

    Below ``offload_below_gb`` the pictures and clips of tickets already synced to the central
    store are removed here, oldest first, until ``offload_to_gb`` are free
    (:mod:`etle.evidence.offload`; only with a central store).  Below ``clips_below_gb`` evidence
    is written without its clip, below ``reserve_gb`` not at all: the violation is logged,
    counted and reported (:mod:`etle.evidence.space`), and ``/health`` says ``degraded``."""

    offload_below_gb: float = Field(2.0, ge=0)
    offload_to_gb: float = Field(4.0, ge=0)
    clips_below_gb: float = Field(1.0, ge=0)
    reserve_gb: float = Field(0.25, ge=0)
    check_interval_s: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _order(self) -> "StorageConfig":
        if self.offload_below_gb and self.offload_to_gb < self.offload_below_gb:
            raise ValueError("offload_to_gb must be at least offload_below_gb")
        if self.clips_below_gb and self.reserve_gb > self.clips_below_gb:
            raise ValueError("reserve_gb must not be above clips_below_gb")
        return self


class SiteConfig(_Model):
    site: str = Field("site", pattern=r"^[A-Za-z0-9_.-]+$")
    output_dir: Path = Path("etle-out")
    db_url: str = DEFAULT_DB
    #: the site signing key's folder (default: $ETLE_KEYS_DIR, else ./etle-keys; see `etle keys init`)
    keys_dir: Optional[Path] = None
    cameras: list[CameraEntry] = Field(min_length=1)
    pipeline: PipelineOptions = PipelineOptions()
    live: LiveOptions = LiveOptions()
    restart: RestartPolicy = RestartPolicy()
    mqtt: Optional[MqttConfig] = None
    webhook: Optional[WebhookConfig] = None
    health: HealthConfig = HealthConfig()
    #: store-and-forward to the central store (None: from $ETLE_CENTRAL_DB / $ETLE_CENTRAL_EVIDENCE)
    sync: Optional[SyncConfig] = None
    storage: StorageConfig = StorageConfig()
    #: on SIGTERM, how long workers get to finish pending evidence before they are killed
    shutdown_timeout_s: float = Field(30.0, gt=0)
    #: where the site file was read from (camera paths are relative to its folder)
    base_dir: Path = Path(".")
    #: camera ids resolved from the camera files (filled by load_site)
    camera_ids: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> "SiteConfig":
        ids = [c.id for c in self.cameras if c.id]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"camera ids must be unique; repeated: {', '.join(dup)}")
        return self

    @property
    def enabled_cameras(self) -> list[tuple[str, CameraEntry]]:
        return [(cid, c) for cid, c in zip(self.camera_ids, self.cameras) if c.enabled]

    def camera_path(self, entry: CameraEntry) -> Path:
        return entry.camera if entry.camera.is_absolute() else (self.base_dir / entry.camera)


def _expand(value: Any, where: str, env: dict[str, str]) -> Any:
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if env.get(name):
                return env[name]
            if default is not None:
                return default
            raise SiteConfigError(f"{where}: environment variable {name} is not set")
        return _ENV_RE.sub(sub, value)
    return value


def _format_errors(path: Path, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        lines.append(f"{path}: {loc}: {msg}")
    more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
    return lines[0] + more


def load_site(path: str | Path, *, env: dict[str, str] | None = None, check_cameras: bool = True) -> SiteConfig:
    """Read and validate a site file; every camera file is loaded too (``check_cameras``), so a
    bad one fails here, before any worker starts.  Raises :class:`SiteConfigError`."""
    path = Path(path)
    env = dict(os.environ) if env is None else env
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SiteConfigError(f"{path}: site file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SiteConfigError(f"{path}: cannot read ({exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}" if mark is not None else ""
        raise SiteConfigError(f"{path}{at}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(raw, dict):
        raise SiteConfigError(f"{path}: a site file is a mapping with at least 'cameras'")
    for key in ("base_dir", "camera_ids"):
        if key in raw:
            raise SiteConfigError(f"{path}: {key}: unknown field")
    raw = dict(raw)
    if "db_url" in raw:
        raw["db_url"] = _expand(raw["db_url"], f"{path}: db_url", env)
    cams = raw.get("cameras")
    if isinstance(cams, list):
        raw["cameras"] = [
            {**c, "source": _expand(c.get("source"), f"{path}: cameras.{i}.source", env)}
            if isinstance(c, dict) and c.get("enabled", True) is not False else c
            for i, c in enumerate(cams)
        ]
    for section, keys in (("mqtt", ("host", "username", "password")), ("webhook", ("url",)),
                          ("sync", ("central_db", "central_evidence"))):
        sec = raw.get(section)
        if isinstance(sec, dict):
            raw[section] = {k: (_expand(v, f"{path}: {section}.{k}", env) if k in keys else v) for k, v in sec.items()}
    raw["base_dir"] = path.resolve().parent
    try:
        site = SiteConfig.model_validate(raw)
    except ValidationError as exc:
        raise SiteConfigError(_format_errors(path, exc)) from None
    ids: list[str] = []
    for i, entry in enumerate(site.cameras):
        cam_id = entry.id
        if not entry.enabled:  # not loaded: it may need files that this box does not have
            cam_id = cam_id or entry.camera.stem
        elif check_cameras or cam_id is None:
            from etle.camera.config import load_camera

            cam_path = site.camera_path(entry)
            cam = load_camera(cam_path)  # CameraConfigError names the camera file and line
            cam_id = cam_id or cam.id
        ids.append(str(cam_id))
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise SiteConfigError(f"{path}: cameras: two cameras share the id {', '.join(dup)}; give one an 'id:'")
    if not any(c.enabled for c in site.cameras):
        raise SiteConfigError(f"{path}: cameras: every camera is disabled")
    return site.model_copy(update={"camera_ids": tuple(ids)})
