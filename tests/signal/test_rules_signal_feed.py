"""Signal-controller feeds: message parsing, the timeline, HTTP for real, MQTT against Mosquitto.

The MQTT tests need a broker at 127.0.0.1:1883 (Mosquitto); they skip with the reason where
none answers, unless ETLE_REQUIRE_SERVICES=1 makes the broker mandatory.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from etle.camera.config import HttpSignalConfig, MqttSignalConfig, load_camera
from etle.errors import ConfigError
from etle.signal.source import build_signal
from etle.signal.feed import (
    ExternalSignal,
    HttpSignalFeed,
    MqttSignalFeed,
    SignalTimeline,
    close_feeds,
    feed_for,
    parse_message,
)
from etle.types import Frame

STATES = HttpSignalConfig(type="http").state_map
T0 = datetime(2025, 3, 1, 7, 30, tzinfo=timezone.utc)
IMAGE = np.zeros((8, 8, 3), np.uint8)


@pytest.fixture(autouse=True)
def _close():
    yield
    close_feeds()


def frame_at(ts: float, pts: float = 0.0) -> Frame:
    start = datetime.fromtimestamp(ts - pts, tz=timezone.utc)
    return Frame("live", 0, pts, IMAGE, wall_start=start)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------ messages
def test_parse_json_plain_and_mapped_states():
    m = parse_message(b'{"state": "RED", "ts": 1741826400.5, "head": "north"}', STATES, received=0)
    assert (m.state, m.ts, m.head) == ("red", 1741826400.5, "north")
    assert parse_message("merah", STATES, received=12.0).state == "red"
    assert parse_message('"amber"', STATES, received=12.0).state == "yellow"
    assert parse_message('{"signal": "G"}', STATES, received=12.0).ts == 12.0
    assert parse_message('{"state": "flashing"}', STATES, received=1).state == "unknown"


def test_parse_timestamps_and_clock_offset():
    assert parse_message('{"state":"red","ts":1741826400500}', STATES, received=0).ts == 1741826400.5  # ms
    iso = parse_message('{"state":"red","timestamp":"2025-03-01T07:30:00Z"}', STATES, received=0)
    assert iso.ts == T0.timestamp()
    off = parse_message('{"state":"red","ts":100}', STATES, received=0, clock_offset_s=2.5)
    assert off.ts == 102.5


@pytest.mark.parametrize(
    "body",
    [b"", b"{}", b'{"state": null}', b"[1, 2]", b'{"state":"red","ts":"yesterday"}', b'{"state":"red","ts":"2025-03-01T07:30:00"}', b"{bad json"],
)
def test_parse_rejects_bad_messages(body):
    with pytest.raises(ValueError):
        parse_message(body, STATES, received=0)


# ------------------------------------------------------------------------------ timeline
def test_timeline_lookup_stale_and_out_of_order():
    tl = SignalTimeline()
    assert tl.lookup(100.0, 30)[0] == "unknown"  # before any message
    tl.add(100.0, "green")
    tl.add(140.0, "red")
    tl.add(120.0, "yellow")  # late arrival, earlier time
    assert tl.lookup(99.9, 30)[0] == "unknown"
    assert tl.lookup(110.0, 30) == ("green", 100.0)
    assert tl.lookup(125.0, 30) == ("yellow", 120.0)
    assert tl.lookup(150.0, 30) == ("red", 140.0)
    assert tl.lookup(171.0, 30)[0] == "unknown"  # the controller went quiet


def test_timeline_is_bounded():
    tl = SignalTimeline(keep_s=10.0, max_entries=50)
    for i in range(1000):
        tl.add(float(i), "red" if i % 2 else "green")
    assert len(tl) <= 50
    assert tl.lookup(999.5, 5)[0] == "red"


def test_external_signal_reads_the_state_at_frame_time():
    class Fake:
        transport = "test"

        def __init__(self):
            self.tl = SignalTimeline()

        def lookup(self, head, ts, stale):
            return self.tl.lookup(ts, stale)

    fake = Fake()
    base = T0.timestamp()
    fake.tl.add(base, "green")
    fake.tl.add(base + 30, "red")
    sig = ExternalSignal(fake, stale_after_s=90)  # type: ignore[arg-type]
    # the state of a frame comes from its own time (wall_start + pts), not from "now"
    assert sig.state_at(frame_at(base + 10)).state == "green"
    st = sig.state_at(frame_at(base + 31, pts=31.0))
    assert (st.state, st.source, st.confidence) == ("red", "test", 1.0)
    assert sig.state_at(frame_at(base + 200)).state == "unknown"


# ---------------------------------------------------------------------------------- HTTP
def post(url: str, body: bytes, token: str | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_http_feed_end_to_end():
    port = free_port()
    cfg = HttpSignalConfig(type="http", port=port, head="north", stale_after_s=60)
    feed = feed_for(cfg)
    assert isinstance(feed, HttpSignalFeed)
    url = f"http://127.0.0.1:{port}/signal"
    base = time.time()
    assert post(url, json.dumps({"state": "green", "ts": base - 20}).encode())[0] == 200  # no head: all heads
    assert post(url, json.dumps({"state": "red", "ts": base - 5, "head": "north"}).encode())[0] == 200
    assert post(url, json.dumps({"state": "green", "ts": base - 2, "head": "south"}).encode())[0] == 200
    sig = ExternalSignal.from_config(cfg)
    assert sig.state_at(frame_at(base - 10)).state == "green"
    assert sig.state_at(frame_at(base - 1)).state == "red"  # south's green is another head
    with urllib.request.urlopen(url, timeout=5) as r:
        assert json.loads(r.read())["state"] == "red"
    code, body = post(url, b'{"state": 5.5}')
    assert code == 400 and "state" in body["error"]
    assert post(f"http://127.0.0.1:{port}/other", b"red")[0] == 404
    # one listener per address, shared by every source that uses it
    assert feed_for(cfg) is feed


def test_http_feed_bearer_token(monkeypatch):
    monkeypatch.setenv("ETLE_TEST_SIGNAL_TOKEN", "s3cret")
    port = free_port()
    cfg = HttpSignalConfig(type="http", port=port, token_env="ETLE_TEST_SIGNAL_TOKEN")
    feed_for(cfg)
    url = f"http://127.0.0.1:{port}/signal"
    assert post(url, b"red")[0] == 401
    assert post(url, b"red", token="wrong")[0] == 401
    assert post(url, b"red", token="s3cret")[0] == 200


def test_http_feed_config_errors(monkeypatch):
    monkeypatch.delenv("ETLE_TEST_MISSING", raising=False)
    with pytest.raises(ConfigError, match="ETLE_TEST_MISSING"):
        HttpSignalFeed(HttpSignalConfig(type="http", port=free_port(), token_env="ETLE_TEST_MISSING"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        with pytest.raises(ConfigError, match="cannot listen"):
            HttpSignalFeed(HttpSignalConfig(type="http", port=busy))


def test_camera_file_with_an_http_signal(tmp_path):
    port = free_port()
    cam = tmp_path / "cam.yaml"
    cam.write_text(
        f"id: cam-http\nsignal: {{type: http, port: {port}, stale_after_s: 30}}\n"
        "zones:\n  stop_line: {points: [[0, 100], [400, 100]], approach_side: [200, 200]}\n"
        "rules:\n  red_light: {}\n",
        encoding="utf-8",
    )
    sig = build_signal(load_camera(cam))
    assert isinstance(sig, ExternalSignal)
    now = time.time()
    post(f"http://127.0.0.1:{port}/signal", json.dumps({"state": "red", "ts": now - 1}).encode())
    assert sig.state_at(frame_at(now)).state == "red"


# ---------------------------------------------------------------------------------- MQTT
BROKER = ("127.0.0.1", 1883)


@pytest.fixture(scope="module")
def broker():
    try:
        with socket.create_connection(BROKER, timeout=1):
            pass
    except OSError as exc:
        msg = f"no MQTT broker at {BROKER[0]}:{BROKER[1]} ({exc}); start mosquitto"
        if os.environ.get("ETLE_REQUIRE_SERVICES", "") not in ("", "0", "false", "no"):
            pytest.fail(msg + " (ETLE_REQUIRE_SERVICES=1 makes it mandatory)")
        pytest.skip(msg)
    return BROKER


def publish(topic: str, payloads: list[bytes]) -> None:
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    c.connect(*BROKER)
    c.loop_start()
    try:
        for p in payloads:
            c.publish(topic, p, qos=1).wait_for_publish(5)
    finally:
        c.disconnect()
        c.loop_stop()


def wait_for(cond, timeout=5.0) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_mqtt_feed_against_the_broker(broker):
    topic = f"etle-test/{uuid.uuid4().hex}/signal"
    cfg = MqttSignalConfig(type="mqtt", topic=topic, head="north", stale_after_s=60)
    feed = MqttSignalFeed(cfg, connect_timeout_s=5)
    try:
        assert feed.subscribed.is_set(), "not subscribed within 5 s"
        now = time.time()
        publish(topic, [
            json.dumps({"state": "green", "ts": now - 30, "head": "north"}).encode(),
            json.dumps({"state": "RED", "ts": now - 3, "head": "north"}).encode(),
            b"{garbage",
            json.dumps({"state": "green", "ts": now - 1, "head": "west"}).encode(),
        ])
        assert wait_for(lambda: feed.timeline("\x00all").received >= 3 and feed.errors >= 1)
        sig = ExternalSignal(feed, head="north", stale_after_s=60)
        assert sig.state_at(frame_at(now - 10)).state == "green"
        st = sig.state_at(frame_at(now))
        assert (st.state, st.source) == ("red", "mqtt")
    finally:
        feed.close()


def test_camera_file_with_an_mqtt_signal(broker, tmp_path):
    topic = f"etle-test/{uuid.uuid4().hex}/signal"
    cam = tmp_path / "cam.yaml"
    cam.write_text(f"id: cam-mqtt\nsignal: {{type: mqtt, topic: '{topic}', qos: 1}}\n", encoding="utf-8")
    sig = build_signal(load_camera(cam))
    assert isinstance(sig, ExternalSignal) and isinstance(sig.feed, MqttSignalFeed)
    assert sig.feed.subscribed.wait(5)
    t = (datetime.now(timezone.utc) - timedelta(seconds=2)).isoformat()
    publish(topic, [json.dumps({"state": "yellow", "timestamp": t}).encode()])
    assert wait_for(lambda: sig.state_at(frame_at(time.time())).state == "yellow")


def test_mqtt_feed_without_a_broker_stays_unknown():
    cfg = MqttSignalConfig(type="mqtt", port=free_port(), topic="x")
    feed = MqttSignalFeed(cfg, connect_timeout_s=0.3)
    try:
        assert not feed.subscribed.is_set()
        assert ExternalSignal(feed).state_at(frame_at(time.time())).state == "unknown"
    finally:
        feed.close()
