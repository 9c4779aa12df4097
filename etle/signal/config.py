"""The signal stage's configuration: the camera file's ``signal`` section.

One of a fixed-time plan (:class:`FixedPlanConfig`), the colour of the signal head in the
picture (:class:`RoiSignalConfig`), or the controller's messages over HTTP or MQTT
(:class:`HttpSignalConfig`, :class:`MqttSignalConfig`); ``type`` tells them apart.
:mod:`etle.camera.config` holds it as ``CameraConfig.signal``.
"""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Literal, Union

from pydantic import Field, field_validator

from etle.geometry import Point
from etle.schema import ConfigModel

__all__ = [
    "FixedPlanConfig",
    "HttpSignalConfig",
    "MqttSignalConfig",
    "Phase",
    "RoiSignalConfig",
    "SignalConfig",
]

_TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):([0-5]\d):([0-5]\d)$")


class Phase(ConfigModel):
    state: Literal["red", "yellow", "green"] = Field(description="Lamp lit during this phase.")
    duration_s: float = Field(gt=0, description="Length of the phase in seconds.")


class FixedPlanConfig(ConfigModel):
    """A fixed-time signal plan, repeated from an anchor."""

    type: Literal["fixed_plan"]
    anchor: str = Field(
        default="source_start",
        description="'source_start' (pts 0) or a time of day 'HH:MM:SS' in the camera timezone "
        "at which phase 0 starts (the plan restarts from there every day).",
    )
    phases: tuple[Phase, ...] = Field(min_length=1, description="Phases of one cycle, in order.")
    offset_s: float = Field(
        default=0.0, description="Seconds into the cycle at the anchor (shifts the plan)."
    )

    @field_validator("anchor")
    @classmethod
    def _anchor(cls, value: str) -> str:
        if value != "source_start" and not _TIME_OF_DAY.match(value):
            raise ValueError("must be 'source_start' or a time of day 'HH:MM:SS'")
        return value

    @property
    def anchor_time(self) -> time | None:
        if self.anchor == "source_start":
            return None
        h, m, s = (int(x) for x in self.anchor.split(":"))
        return time(h, m, s)

    @property
    def cycle_s(self) -> float:
        return sum(p.duration_s for p in self.phases)


class RoiSignalConfig(ConfigModel):
    """The signal read from the traffic-light head in the image by the colour of the lit lamp."""

    type: Literal["roi"]
    polygon: tuple[Point, ...] = Field(
        min_length=3, description="Region of the signal head in image px."
    )
    debounce_s: float = Field(
        default=0.3, ge=0, description="A new colour must be stable this long before it counts."
    )
    hold_dark_s: float = Field(
        default=1.0,
        ge=0,
        description="A lamp that reads dark (LED flicker against the shutter, a passing truck) for "
        "less than this keeps its last colour; longer, the state becomes 'unknown'.",
    )
    min_fraction: float = Field(
        default=0.002,
        gt=0,
        le=1,
        description="Lit colour mass (each lit pixel weighted by saturation x value, 0..1) of the "
        "winning colour, as a share of the region's pixels, below which the lamp reads dark.",
    )
    min_margin: float = Field(
        default=2.0,
        ge=1,
        description="The winning colour's mass must be this many times the next colour's, else "
        "the reading is 'unknown' (a yellow lamp whose halo looks red).",
    )
    min_saturation: int = Field(
        default=25,
        ge=0,
        le=255,
        description="HSV S of a lit lamp pixel (low: overexposed lamps are pale in the middle).",
    )
    min_value: int = Field(default=160, ge=0, le=255, description="HSV V of a lit lamp pixel.")


_DEFAULT_STATE_MAP: dict[str, str] = {
    "red": "red",
    "r": "red",
    "merah": "red",
    "stop": "red",
    "yellow": "yellow",
    "amber": "yellow",
    "y": "yellow",
    "a": "yellow",
    "kuning": "yellow",
    "green": "green",
    "g": "green",
    "hijau": "green",
    "go": "green",
}


class _FeedConfig(ConfigModel):
    """What the HTTP and MQTT signal feeds share: message reading and staleness."""

    head: str | None = Field(
        default=None,
        description="Signal head / group this camera enforces; messages naming another head "
        "(field `head`) are ignored.  None: every message counts.",
    )
    stale_after_s: float = Field(
        default=90.0,
        gt=0,
        description="A state older than this (frame time minus message time) is 'unknown': the "
        "controller must send at least this often (a heartbeat, or on every phase change when "
        "no phase is longer).",
    )
    clock_offset_s: float = Field(
        default=0.0,
        description="Added to the controller's message timestamps (corrects a controller clock "
        "that runs behind (positive) or ahead (negative) of the camera clock).",
    )
    state_map: dict[str, Literal["red", "yellow", "green"]] = Field(
        default_factory=lambda: dict(_DEFAULT_STATE_MAP),
        description="Controller state names (case-insensitive) -> lamp colour; names not listed "
        "read as 'unknown'.",
    )

    @field_validator("state_map")
    @classmethod
    def _lower(cls, value: dict[str, str]) -> dict[str, str]:
        return {k.strip().lower(): v for k, v in value.items()}


class HttpSignalConfig(_FeedConfig):
    """Signal state pushed by the signal controller over HTTP (POST a JSON message).

    Message: ``{"state": "red", "ts": 1741826400.25, "head": "north"}`` -- ``ts`` in epoch
    seconds or ISO 8601 (the receive time when absent), ``head`` optional; a plain-text body
    ``red`` works too.  ``GET`` on the same path returns the latest state.
    """

    type: Literal["http"]
    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8089, ge=1, le=65535, description="TCP port to listen on.")
    path: str = Field(default="/signal", pattern=r"^/", description="URL path of the feed.")
    token_env: str | None = Field(
        default=None,
        description="Name of an environment variable holding a bearer token the controller "
        "must send (Authorization: Bearer ...); None: no authentication (bind to localhost).",
    )


class MqttSignalConfig(_FeedConfig):
    """Signal state published by the signal controller (or an ATCS gateway) over MQTT."""

    type: Literal["mqtt"]
    host: str = Field(default="127.0.0.1", description="MQTT broker host.")
    port: int = Field(default=1883, ge=1, le=65535, description="MQTT broker port.")
    topic: str = Field(min_length=1, description="Topic to subscribe to (wildcards allowed).")
    qos: Literal[0, 1, 2] = Field(default=1, description="Subscription QoS.")
    client_id: str = Field(default="", description="MQTT client id ('' = broker-assigned).")
    username: str | None = Field(default=None, description="Broker user name.")
    password_env: str | None = Field(
        default=None, description="Name of an environment variable holding the broker password."
    )
    tls: bool = Field(default=False, description="Connect with TLS (system CA certificates).")


SignalConfig = Annotated[
    Union[FixedPlanConfig, RoiSignalConfig, HttpSignalConfig, MqttSignalConfig],
    Field(discriminator="type"),
]
