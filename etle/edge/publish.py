"""Where ``etle edge`` sends violation events: MQTT (paho-mqtt) and an optional HTTP webhook.

Both keep a bounded **retry buffer**: an event stays pending until the broker acknowledges it
(MQTT QoS 1/2) or the webhook answers 2xx, and is retried while the link is down (paho
reconnects by itself with backoff; the webhook thread backs off 1 s .. 60 s).  When the buffer
is full the oldest events are dropped and counted.  On :meth:`close` what could not be
delivered within the flush timeout is written to a **spool file** (JSON lines) that the next
start loads and sends first, so a reboot on a dead link loses no event.  The tickets themselves
are in the database whatever happens here: events are notifications.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

__all__ = ["Publisher", "MqttPublisher", "WebhookPublisher", "load_spool", "write_spool"]


class Publisher(Protocol):
    name: str

    def publish(self, event: dict[str, Any]) -> None: ...

    def stats(self) -> dict[str, Any]: ...

    def close(self, flush_timeout_s: float = 5.0) -> None: ...


def load_spool(path: Path | None) -> list[dict[str, Any]]:
    """Events left by the previous run (the file is removed once read)."""
    if path is None or not path.is_file():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            log.warning("%s: skipping a damaged spool line", path)
    path.unlink()
    if events:
        log.info("%s: %d undelivered event(s) from the last run will be sent", path, len(events))
    return events


def write_spool(path: Path | None, events: list[dict[str, Any]]) -> None:
    if path is None or not events:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for e in events:
            fh.write(json.dumps(e, default=str) + "\n")
    tmp.replace(path)
    log.warning("%s: %d undelivered event(s) kept for the next start", path, len(events))


class MqttPublisher:
    """Publishes events to an MQTT broker with QoS ``qos``; retry buffer + spool (see module)."""

    name = "mqtt"

    def __init__(
        self,
        host: str,
        port: int = 1883,
        *,
        topic: str = "etle/{site}/{camera}/violation",
        qos: int = 1,
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        keepalive_s: int = 30,
        tls: bool = False,
        max_pending: int = 10000,
        spool: Path | None = None,
    ) -> None:
        import paho.mqtt.client as mqtt

        self.topic = topic
        self.qos = qos
        self.max_pending = max_pending
        self.spool = spool
        self._lock = threading.Lock()
        self._pending: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
        self._mids: dict[int, str] = {}
        self._early: set[int] = set()
        self.published = 0
        self.dropped = 0
        self.connected = False
        self._seq = 0
        self._client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or "",
            protocol=mqtt.MQTTv311,
        )
        if username:
            self._client.username_pw_set(username, password)
        if tls:
            self._client.tls_set()
        self._client.max_queued_messages_set(0)
        self._client.reconnect_delay_set(1, 60)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.connect_async(host, port, keepalive=keepalive_s)
        self._client.loop_start()
        for event in load_spool(spool):
            self.publish(event)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any = None) -> None:
        ok = not getattr(reason, "is_failure", False)
        self.connected = ok
        log.info("mqtt: %s", "connected" if ok else f"connection refused ({reason})")

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any = None) -> None:
        if self.connected:
            log.warning("mqtt: disconnected (%s); events are kept and resent", reason)
        self.connected = False

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any = None, properties: Any = None) -> None:
        # paho calls this holding its message lock: never call into paho while holding ours
        with self._lock:
            key = self._mids.pop(mid, None)
            if key is None:
                if self.qos > 0:
                    self._early.add(mid)  # acknowledged before publish() had noted the mid
            elif self._pending.pop(key, None) is not None:
                self.published += 1

    def publish(self, event: dict[str, Any]) -> None:
        topic = self.topic.format(site=event.get("site", ""), camera=event.get("camera", ""), rule=event.get("rule", ""))
        payload = json.dumps(event, default=str, separators=(",", ":"))
        with self._lock:
            self._seq += 1
            key = f"{event.get('event_id', '')}#{self._seq}"
            while len(self._pending) >= self.max_pending:
                old, _ = self._pending.popitem(last=False)
                self.dropped += 1
                log.warning("mqtt: retry buffer full; dropped the oldest event %s", old)
            self._pending[key] = event
        # paho keeps QoS>0 messages queued while disconnected and resends them on reconnect
        info = self._client.publish(topic, payload, qos=self.qos)
        with self._lock:
            if self.qos == 0:
                if self._pending.pop(key, None) is not None:
                    self.published += 1
            elif info.mid in self._early:
                self._early.discard(info.mid)
                if self._pending.pop(key, None) is not None:
                    self.published += 1
            else:
                self._mids[info.mid] = key

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"connected": self.connected, "pending": len(self._pending), "published": self.published,
                    "dropped": self.dropped}

    def close(self, flush_timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + flush_timeout_s
        while self.pending and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._lock:
            left = list(self._pending.values())
            self._pending.clear()
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()
        write_spool(self.spool, left)


class WebhookPublisher:
    """POSTs each event as JSON to ``url`` from a background thread; retry buffer + spool."""

    name = "webhook"

    def __init__(self, url: str, *, timeout_s: float = 5.0, headers: dict[str, str] | None = None,
                 max_pending: int = 10000, spool: Path | None = None, retry_initial_s: float = 1.0) -> None:
        self.url = url
        self.retry_initial_s = retry_initial_s
        self.timeout_s = timeout_s
        self.headers = {"Content-Type": "application/json", "User-Agent": "etle-edge", **(headers or {})}
        self.max_pending = max_pending
        self.spool = spool
        self._cond = threading.Condition()
        self._pending: collections.deque[dict[str, Any]] = collections.deque()
        self._closing = False
        self.published = 0
        self.failures = 0
        self.dropped = 0
        self.last_error: str | None = None
        for event in load_spool(spool):
            self._pending.append(event)
        self._thread = threading.Thread(target=self._run, name="edge-webhook", daemon=True)
        self._thread.start()

    def publish(self, event: dict[str, Any]) -> None:
        with self._cond:
            while len(self._pending) >= self.max_pending:
                self._pending.popleft()
                self.dropped += 1
            self._pending.append(event)
            self._cond.notify()

    def _post(self, event: dict[str, Any]) -> None:
        body = json.dumps(event, default=str).encode()
        req = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310 - configured URL
            if not 200 <= resp.status < 300:
                raise urllib.error.HTTPError(self.url, resp.status, "not 2xx", resp.headers, None)

    def _run(self) -> None:
        delay = self.retry_initial_s
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:
                    return
                event = self._pending[0]
            try:
                self._post(event)
            except (OSError, urllib.error.URLError, ValueError) as exc:
                with self._cond:
                    self.failures += 1
                    self.last_error = str(exc)[:200]
                    if self._closing:
                        return
                    log.warning("webhook: %s; retrying in %.0f s", self.last_error, delay)
                    self._cond.wait(delay)
                delay = min(delay * 2, 60.0)
                continue
            delay = self.retry_initial_s
            with self._cond:
                if self._pending and self._pending[0] is event:
                    self._pending.popleft()
                self.published += 1

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    def stats(self) -> dict[str, Any]:
        with self._cond:
            return {"pending": len(self._pending), "published": self.published, "failures": self.failures,
                    "dropped": self.dropped, "last_error": self.last_error}

    def close(self, flush_timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + flush_timeout_s
        while self.pending and time.monotonic() < deadline and self._thread.is_alive():
            time.sleep(0.05)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(self.timeout_s + 1.0)
        with self._cond:
            left = list(self._pending)
            self._pending.clear()
        write_spool(self.spool, left)
