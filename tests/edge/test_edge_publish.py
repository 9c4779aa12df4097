"""Violation events over MQTT and a webhook: retry buffer while the link is down, spool file
across restarts.  MQTT tests run a private Mosquitto (Debian package 'mosquitto')."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from etle.edge.publish import MqttPublisher, WebhookPublisher, load_spool, write_spool
from tests.fixtures.live_helpers import MosquittoBroker, Subscriber, free_port, shared_broker


def event(i: int, camera: str = "cam-a") -> dict:
    return {"event": "violation", "event_id": f"s:{camera}:{i}", "site": "s", "camera": camera, "ticket_id": i, "rule": "red_light"}


def test_spool_roundtrip(tmp_path: Path) -> None:
    p = tmp_path / "edge" / "spool.jsonl"
    write_spool(p, [event(1), event(2)])
    assert [e["ticket_id"] for e in load_spool(p)] == [1, 2] and not p.exists()
    assert load_spool(p) == [] and load_spool(None) == []


def test_mqtt_publishes_to_the_site_broker() -> None:
    host, port = shared_broker()
    sub = Subscriber(host, port, "etle-test/+/+/violation")
    pub = MqttPublisher(host, port, topic="etle-test/{site}/{camera}/violation", client_id=f"etle-test-{time.time_ns()}")
    try:
        pub.publish(event(7, camera="north"))
        msgs = sub.wait_for(1)
    finally:
        pub.close(flush_timeout_s=5)
        sub.close()
    assert msgs and msgs[0]["topic"] == "etle-test/s/north/violation" and msgs[0]["ticket_id"] == 7
    assert pub.stats()["published"] == 1 and pub.stats()["pending"] == 0


def test_mqtt_keeps_events_while_the_broker_is_down_and_spools_them(tmp_path: Path) -> None:
    broker = MosquittoBroker()  # not started yet: the link is down
    spool = tmp_path / "mqtt-spool.jsonl"
    pub = MqttPublisher("127.0.0.1", broker.port, topic="t/{camera}", spool=spool, max_pending=3)
    for i in range(5):
        pub.publish(event(i))
    st = pub.stats()
    assert st["pending"] == 3 and st["dropped"] == 2 and not st["connected"]
    pub.close(flush_timeout_s=0.2)  # still down: kept on disk
    assert len(spool.read_text().splitlines()) == 3

    broker.start()
    try:
        sub = Subscriber("127.0.0.1", broker.port, "t/#")
        pub2 = MqttPublisher("127.0.0.1", broker.port, topic="t/{camera}", spool=spool)  # sends the spool first
        pub2.publish(event(99))
        msgs = sub.wait_for(4)
        pub2.close(flush_timeout_s=5)
        sub.close()
    finally:
        broker.stop()
    assert sorted(m["ticket_id"] for m in msgs) == [2, 3, 4, 99]
    assert not spool.exists() and pub2.stats()["published"] == 4


def test_mqtt_resends_after_the_broker_comes_back(tmp_path: Path) -> None:
    broker = MosquittoBroker().start()
    try:
        pub = MqttPublisher("127.0.0.1", broker.port, topic="t/{camera}")
        deadline = time.monotonic() + 5
        while not pub.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        broker.stop()
        time.sleep(0.3)
        pub.publish(event(1))
        pub.publish(event(2))
        assert pub.pending == 2
        broker.start()
        sub = Subscriber("127.0.0.1", broker.port, "t/#")
        deadline = time.monotonic() + 8  # paho reconnects with backoff (1 s first)
        while pub.pending and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pub.pending == 0 and pub.stats()["published"] == 2
        sub.close()
        pub.close()
    finally:
        broker.stop()


class _Hook(BaseHTTPRequestHandler):
    fail_first = 0
    received: list = []

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls = type(self)
        if cls.fail_first > 0:
            cls.fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        cls.received.append(body)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *a) -> None:
        pass


def test_webhook_retries_until_delivered(tmp_path: Path) -> None:
    class Hook(_Hook):
        fail_first = 1
        received: list = []

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    pub = WebhookPublisher(f"http://127.0.0.1:{srv.server_address[1]}/etle", headers={"X-Token": "t"}, retry_initial_s=0.1)
    try:
        pub.publish(event(1))
        pub.publish(event(2))
        deadline = time.monotonic() + 8
        while len(Hook.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        pub.close(flush_timeout_s=2)
        srv.shutdown()
        srv.server_close()
    assert [e["ticket_id"] for e in Hook.received] == [1, 2]
    assert pub.stats()["failures"] == 1 and pub.stats()["published"] == 2


def test_webhook_spools_when_unreachable(tmp_path: Path) -> None:
    spool = tmp_path / "hook.jsonl"
    pub = WebhookPublisher(f"http://127.0.0.1:{free_port()}/x", timeout_s=0.5, spool=spool)
    pub.publish(event(1))
    time.sleep(0.3)
    pub.close(flush_timeout_s=0.2)
    assert [e["ticket_id"] for e in load_spool(spool)] == [1]
