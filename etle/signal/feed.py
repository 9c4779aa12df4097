"""The signal state from the signal controller: messages over HTTP or MQTT, on a timeline.

Real intersections wire the controller (or the city's ATCS) in rather than reading the lamp
from the picture.  The controller sends a message on every phase change (and, ideally, as a
heartbeat): ``{"state": "red", "ts": 1741826400.25, "head": "north"}``.

Messages go onto a :class:`SignalTimeline` keyed by the *controller's* time (``ts``; the
receive time when a message has none), and a frame looks its state up at its own timestamp
(``wall_start + pts``; for a live stream ``wall_start`` is the connection time).  So the state
of a frame never depends on when the frame happened to be processed: a slow pipeline that lags
behind live still gets the state that held when the frame was taken, and a recorded message
log replayed against recorded footage gives the same states as live.  A state older than
``stale_after_s`` is 'unknown' (the controller went quiet), and a frame before the first
message is 'unknown' -- never a guessed red.

The listeners run in daemon threads, one per (transport, address, topic) in the process,
shared by every source that uses them (``etle run`` builds a signal per source) and closed at
exit.  HTTP is the standard library's ``ThreadingHTTPServer`` (a few lines of JSON need no
framework); MQTT is ``paho-mqtt``.
"""

from __future__ import annotations

import atexit
import bisect
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Mapping

from etle.errors import ConfigError
from etle.types import Frame, SignalState

__all__ = [
    "ExternalSignal",
    "HttpSignalFeed",
    "MqttSignalFeed",
    "SignalMessage",
    "SignalTimeline",
    "close_feeds",
    "feed_for",
    "parse_message",
]

log = logging.getLogger(__name__)

UNKNOWN = "unknown"
_ALL = "\x00all"  # timeline keys that no head name can take
_HEADLESS = "\x00none"


@dataclass(frozen=True, slots=True)
class SignalMessage:
    """One controller message: the lamp state from time ``ts`` (epoch seconds) on."""

    state: str
    ts: float
    head: str | None = None


def _parse_ts(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("timestamp must be a number or an ISO 8601 string")
    if isinstance(value, (int, float)):
        ts = float(value)
        return ts / 1000.0 if ts > 1e11 else ts  # milliseconds
    if isinstance(value, str):
        text = value.strip()
        try:
            return _parse_ts(float(text))
        except ValueError:
            pass
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            raise ValueError(f"timestamp '{value}' has no timezone")
        return dt.timestamp()
    raise ValueError("timestamp must be a number or an ISO 8601 string")


def parse_message(
    body: bytes | str,
    state_map: Mapping[str, str],
    *,
    received: float,
    clock_offset_s: float = 0.0,
) -> SignalMessage:
    """A controller message from a JSON object or a bare state word; ``ValueError`` if bad.

    JSON keys: ``state`` (or ``signal``, ``colour``, ``color``, ``phase``), ``ts`` (or
    ``timestamp``, ``time``: epoch seconds or milliseconds, or ISO 8601 with a zone), ``head``
    (or ``group``).  State names go through ``state_map`` (case-insensitive); a name it does
    not list reads as 'unknown'.
    """
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    text = text.strip()
    if not text:
        raise ValueError("empty message")
    data: Any
    if text[0] in "{[\"":
        data = json.loads(text)
    else:
        data = text
    if isinstance(data, str):
        data = {"state": data}
    if not isinstance(data, dict):
        raise ValueError("message must be a JSON object or a state word")
    raw = next((data[k] for k in ("state", "signal", "colour", "color", "phase") if k in data), None)
    if raw is None or not isinstance(raw, (str, int)):
        raise ValueError("message has no state")
    state = state_map.get(str(raw).strip().lower(), UNKNOWN)
    ts_raw = next((data[k] for k in ("ts", "timestamp", "time") if k in data), None)
    ts = received if ts_raw is None else _parse_ts(ts_raw)
    head = data.get("head", data.get("group"))
    return SignalMessage(state, ts + clock_offset_s, None if head is None else str(head))


class SignalTimeline:
    """Signal states over time, looked up by timestamp; bounded, thread-safe."""

    def __init__(self, *, keep_s: float = 900.0, max_entries: int = 10_000) -> None:
        self._times: list[float] = []
        self._states: list[str] = []
        self._keep = keep_s
        self._max = max_entries
        self._lock = threading.Lock()
        self.received = 0

    def add(self, ts: float, state: str) -> None:
        with self._lock:
            self.received += 1
            i = bisect.bisect_right(self._times, ts)
            self._times.insert(i, ts)
            self._states.insert(i, state)
            newest = self._times[-1]
            cut = bisect.bisect_left(self._times, newest - self._keep)
            cut = max(cut - 1, 0)  # keep the state in force at the window start
            cut = max(cut, len(self._times) - self._max)
            if cut > 0:
                del self._times[:cut]
                del self._states[:cut]

    def lookup(self, ts: float, stale_after_s: float) -> tuple[str, float | None]:
        """(state at ``ts``, time of the message it comes from); 'unknown' when none or stale."""
        with self._lock:
            i = bisect.bisect_right(self._times, ts) - 1
            if i < 0:
                return UNKNOWN, None
            at = self._times[i]
            if ts - at > stale_after_s:
                return UNKNOWN, at
            return self._states[i], at

    def __len__(self) -> int:
        with self._lock:
            return len(self._times)


class _Feed:
    """A listener that puts messages for one head on a timeline."""

    transport = "feed"

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.timelines: dict[str | None, SignalTimeline] = {}
        self._lock = threading.Lock()
        self.errors = 0

    def lookup(self, head: str | None, ts: float, stale_after_s: float) -> tuple[str, float | None]:
        """The state at ``ts`` for a head: its own messages and those naming no head, the
        later of the two; with ``head=None`` every message counts."""
        if head is None:
            return self.timeline(_ALL).lookup(ts, stale_after_s)
        own = self.timeline(head).lookup(ts, stale_after_s)
        shared = self.timeline(_HEADLESS).lookup(ts, stale_after_s)
        if own[1] is None:
            return shared
        if shared[1] is None:
            return own
        return own if own[1] >= shared[1] else shared

    def timeline(self, head: str | None) -> SignalTimeline:
        with self._lock:
            tl = self.timelines.get(head)
            if tl is None:
                tl = self.timelines[head] = SignalTimeline()
            return tl

    def handle(self, body: bytes | str, received: float | None = None) -> SignalMessage:
        msg = parse_message(
            body,
            self.cfg.state_map,
            received=time.time() if received is None else received,
            clock_offset_s=self.cfg.clock_offset_s,
        )
        # every message goes to the all-heads timeline, and to its head's (or the headless one)
        self.timeline(_ALL).add(msg.ts, msg.state)
        self.timeline(msg.head if msg.head is not None else _HEADLESS).add(msg.ts, msg.state)
        log.debug("%s signal: %s at %.3f (head %s)", self.transport, msg.state, msg.ts, msg.head)
        return msg

    def close(self) -> None:  # pragma: no cover - overridden
        pass


class HttpSignalFeed(_Feed):
    """``POST <path>`` with a message body; ``GET <path>`` returns the latest state (JSON)."""

    transport = "http"

    def __init__(self, cfg: Any) -> None:
        super().__init__(cfg)
        token = None
        if cfg.token_env:
            token = os.environ.get(cfg.token_env)
            if not token:
                raise ConfigError(f"signal.token_env: environment variable {cfg.token_env} is not set")
        feed = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "etle-signal/1"

            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug("http signal: " + fmt, *args)

            def _reply(self, code: int, payload: Mapping[str, Any]) -> None:
                body = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _authorised(self) -> bool:
                if token is None:
                    return True
                if self.headers.get("Authorization", "") == f"Bearer {token}":
                    return True
                self._reply(401, {"error": "missing or wrong bearer token"})
                return False

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path.split("?")[0] != cfg.path:
                    self._reply(404, {"error": f"post signal messages to {cfg.path}"})
                    return
                if not self._authorised():
                    return
                try:
                    length = int(self.headers.get("Content-Length", "0"))
                except ValueError:
                    length = -1
                if not 0 < length <= 65536:
                    self._reply(400, {"error": "need a body of 1..65536 bytes"})
                    return
                try:
                    msg = feed.handle(self.rfile.read(length))
                except (ValueError, UnicodeDecodeError) as exc:
                    feed.errors += 1
                    self._reply(400, {"error": str(exc)})
                    return
                self._reply(200, {"state": msg.state, "ts": msg.ts, "head": msg.head})

            def do_GET(self) -> None:  # noqa: N802
                if self.path.split("?")[0] != cfg.path:
                    self._reply(404, {"error": "not found"})
                    return
                if not self._authorised():
                    return
                state, at = feed.lookup(cfg.head, time.time(), cfg.stale_after_s)
                self._reply(200, {"state": state, "since": at, "messages": feed.timeline(_ALL).received})

        try:
            self._server = ThreadingHTTPServer((cfg.host, cfg.port), Handler)
        except OSError as exc:
            raise ConfigError(f"signal: cannot listen on http://{cfg.host}:{cfg.port}{cfg.path}: {exc.strerror}") from None
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="etle-signal-http", daemon=True)
        self._thread.start()
        log.info("signal: listening for controller messages on http://%s:%d%s", cfg.host, self.port, cfg.path)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class MqttSignalFeed(_Feed):
    """Subscribes to ``topic`` on the broker (reconnecting on its own; paho-mqtt)."""

    transport = "mqtt"

    def __init__(self, cfg: Any, *, connect_timeout_s: float = 0.0) -> None:
        super().__init__(cfg)
        try:
            import paho.mqtt.client as mqtt
        except ImportError:  # pragma: no cover - paho-mqtt is a dependency
            raise ConfigError("signal type mqtt needs paho-mqtt (pip install paho-mqtt)") from None
        self.subscribed = threading.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cfg.client_id or "")
        if cfg.username:
            password = os.environ.get(cfg.password_env) if cfg.password_env else None
            if cfg.password_env and password is None:
                raise ConfigError(f"signal.password_env: environment variable {cfg.password_env} is not set")
            client.username_pw_set(cfg.username, password)
        if cfg.tls:
            client.tls_set()

        def on_connect(c: Any, userdata: Any, flags: Any, reason: Any, props: Any = None) -> None:
            if getattr(reason, "is_failure", False):
                log.warning("signal: mqtt broker %s:%d refused the connection: %s", cfg.host, cfg.port, reason)
                return
            c.subscribe(cfg.topic, qos=cfg.qos)

        def on_subscribe(c: Any, userdata: Any, mid: Any, reasons: Any, props: Any = None) -> None:
            self.subscribed.set()
            log.info("signal: subscribed to mqtt://%s:%d/%s", cfg.host, cfg.port, cfg.topic)

        def on_message(c: Any, userdata: Any, message: Any) -> None:
            try:
                self.handle(message.payload)
            except (ValueError, UnicodeDecodeError) as exc:
                self.errors += 1
                log.warning("signal: bad mqtt message on %s: %s", message.topic, exc)

        def on_disconnect(c: Any, userdata: Any, flags: Any, reason: Any, props: Any = None) -> None:
            self.subscribed.clear()
            if getattr(reason, "is_failure", False):
                log.warning("signal: mqtt connection lost (%s); reconnecting", reason)

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        client.on_disconnect = on_disconnect
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.connect_async(cfg.host, cfg.port, keepalive=30)
        client.loop_start()
        self._client = client
        if connect_timeout_s > 0:
            self.subscribed.wait(connect_timeout_s)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


_FEEDS: dict[tuple[Any, ...], _Feed] = {}
_FEEDS_LOCK = threading.Lock()


def _key(cfg: Any) -> tuple[Any, ...]:
    if cfg.type == "http":
        return ("http", cfg.host, cfg.port, cfg.path)
    return ("mqtt", cfg.host, cfg.port, cfg.topic, cfg.username)


def feed_for(cfg: Any, *, factory: Callable[[Any], _Feed] | None = None) -> _Feed:
    """The process's listener for a feed config (started on first use, then shared)."""
    key = _key(cfg)
    with _FEEDS_LOCK:
        feed = _FEEDS.get(key)
        if feed is None:
            if factory is not None:
                feed = factory(cfg)
            elif cfg.type == "http":
                feed = HttpSignalFeed(cfg)
            elif cfg.type == "mqtt":
                feed = MqttSignalFeed(cfg)
            else:
                raise ValueError(f"not a signal feed: {cfg.type}")
            _FEEDS[key] = feed
        return feed


def close_feeds() -> None:
    """Stop every listener (at exit, and between tests)."""
    with _FEEDS_LOCK:
        feeds = list(_FEEDS.values())
        _FEEDS.clear()
    for feed in feeds:
        try:
            feed.close()
        except Exception as exc:  # noqa: BLE001 - closing at exit must not raise
            log.debug("closing signal feed: %s", exc)


atexit.register(close_feeds)


class ExternalSignal:
    """A :class:`~etle.signal.source.SignalSource` reading a feed's timeline at frame time."""

    def __init__(self, feed: _Feed, *, head: str | None = None, stale_after_s: float = 90.0) -> None:
        self.feed = feed
        self._head = head
        self._stale = stale_after_s

    @classmethod
    def from_config(cls, cfg: Any) -> "ExternalSignal":
        return cls(feed_for(cfg), head=cfg.head, stale_after_s=cfg.stale_after_s)

    def state_at(self, frame: Frame) -> SignalState:
        ts = frame.timestamp.astimezone(timezone.utc).timestamp()
        state, _ = self.feed.lookup(self._head, ts, self._stale)
        return SignalState(state, source=self.feed.transport, confidence=0.0 if state == UNKNOWN else 1.0)
