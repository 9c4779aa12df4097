"""Helpers of the live/edge tests: a tiny MPEG-TS clip made with PyAV, an in-process HTTP stream
server that can cut, stall and restore the stream, an FFmpeg-served stream, and the
ETLE_REQUIRE_SERVICES skip-or-fail pattern for the services (ffmpeg, mosquitto).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest


def require_services() -> bool:
    return os.environ.get("ETLE_REQUIRE_SERVICES", "") not in ("", "0", "false", "no")


def skip_or_fail(msg: str) -> None:
    if require_services():
        pytest.fail(msg + " (ETLE_REQUIRE_SERVICES=1 makes it mandatory)")
    pytest.skip(msg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port (read from /proc, without connecting)."""
    want = f"0100007F:{port:04X}"
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return True
    return any(ln.split()[1] == want and ln.split()[3] == "0A" for ln in lines)


def make_ts_clip(path: Path, *, seconds: float = 3.0, fps: int = 10, size: tuple[int, int] = (96, 64)) -> Path:
    """A small MPEG-TS clip (MPEG-2 video, a keyframe every frame) with a moving square."""
    import av

    w, h = size
    n = int(seconds * fps)
    with av.open(str(path), "w", format="mpegts") as out:
        st = out.add_stream("mpeg2video", rate=fps)
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        st.codec_context.gop_size = 1
        st.bit_rate = 200_000
        for i in range(n):
            img = np.full((h, w, 3), 40, np.uint8)
            x = int((w - 16) * i / max(n - 1, 1))
            img[h // 2 - 8:h // 2 + 8, x:x + 16] = (0, 200, 255)
            for pkt in st.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    return path


class TsHttpServer:
    """Serves a TS file over HTTP in a loop at its own speed, to any number of clients.

    ``cut()`` closes every client and stops listening (connection refused), ``restore()``
    listens again on the same port; ``stall()`` keeps clients connected but sends nothing
    until ``resume()``.
    """

    def __init__(self, clip: Path, *, seconds: float, speed: float = 1.0, port: int | None = None) -> None:
        self.data = clip.read_bytes()
        self.rate = len(self.data) / seconds * speed  # bytes per second
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/live.ts"
        self._lock = threading.Lock()
        self._clients: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._stalled = threading.Event()
        self._stop = threading.Event()
        self.connections = 0

    def start(self) -> "TsHttpServer":
        self.restore()
        return self

    def restore(self) -> None:
        with self._lock:
            if self._listener is not None:
                return
            ls = socket.socket()
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind(("127.0.0.1", self.port))
            ls.listen(8)
            self._listener = ls
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            ls, self._listener = self._listener, None
            clients, self._clients = self._clients, []
        if ls is not None:
            try:
                ls.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            ls.close()
        for c in clients:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def stall(self) -> None:
        self._stalled.set()

    def resume(self) -> None:
        self._stalled.clear()

    def stop(self) -> None:
        self._stop.set()
        self.cut()

    def _accept(self, ls: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = ls.accept()
            except OSError:
                return
            with self._lock:
                if self._listener is not ls:
                    conn.close()
                    return
                self._clients.append(conn)
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(5.0)
            req = b""
            while b"\r\n\r\n" not in req:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                req += chunk
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: video/mp2t\r\nConnection: close\r\n\r\n")
            step = 188 * 20
            t0 = time.monotonic()
            sent = 0
            pos = 0
            while not self._stop.is_set():
                if self._stalled.is_set():
                    time.sleep(0.05)
                    t0 = time.monotonic() - sent / self.rate
                    continue
                chunk = self.data[pos:pos + step]
                conn.sendall(chunk)
                sent += len(chunk)
                pos = (pos + step) % len(self.data) if pos + step < len(self.data) else 0
                ahead = sent / self.rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass


class FfmpegHttpStream:
    """A real clip served live by FFmpeg over HTTP (``-re``, MPEG-TS, one client per server),
    as a camera would: started at a given position of the clip, cut by killing FFmpeg."""

    def __init__(self, clip: Path, *, port: int | None = None, loop: bool = False) -> None:
        if shutil.which("ffmpeg") is None:
            skip_or_fail("ffmpeg not installed (Debian package 'ffmpeg': scripts/setup.sh installs it)")
        self.clip = clip
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/live.ts"
        self.loop = loop
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, at_s: float = 0.0) -> "FfmpegHttpStream":
        cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re"]
        if self.loop:
            cmd += ["-stream_loop", "-1"]
        if at_s > 0:
            cmd += ["-ss", f"{at_s:.2f}"]
        cmd += ["-i", str(self.clip), "-an", "-c:v", "copy", "-f", "mpegts", "-listen", "1", self.url]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        self.starts += 1
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and not listening(self.port):  # a probe would take its one client slot
            time.sleep(0.05)
        return self

    def cut(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    stop = cut


class MosquittoBroker:
    """A private Mosquitto broker on a free port (Debian package 'mosquitto'), to take down and
    bring back at will; skips (or fails under ETLE_REQUIRE_SERVICES=1) without the binary."""

    def __init__(self, port: int | None = None) -> None:
        self.binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
        if self.binary is None:
            skip_or_fail("mosquitto not installed (Debian package 'mosquitto': scripts/setup.sh installs it)")
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "MosquittoBroker":
        self.proc = subprocess.Popen([self.binary, "-p", str(self.port)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not listening(self.port):
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None


def shared_broker() -> tuple[str, int]:
    """The site's Mosquitto (127.0.0.1:1883, started by the machine or .ci/run)."""
    with socket.socket() as s:
        s.settimeout(1.0)
        if s.connect_ex(("127.0.0.1", 1883)) != 0:
            skip_or_fail("no MQTT broker at 127.0.0.1:1883 (Debian package 'mosquitto')")
    return "127.0.0.1", 1883


def broker_or_none() -> tuple[str, int] | None:
    """The site's broker when it runs; None (the MQTT part of a test is left out) when it does
    not, unless ETLE_REQUIRE_SERVICES=1, which makes it a failure."""
    with socket.socket() as s:
        s.settimeout(1.0)
        if s.connect_ex(("127.0.0.1", 1883)) == 0:
            return "127.0.0.1", 1883
    if require_services():
        pytest.fail("no MQTT broker at 127.0.0.1:1883 (ETLE_REQUIRE_SERVICES=1)")
    return None


class Subscriber:
    """Collects the JSON payloads published under ``topic``."""

    def __init__(self, host: str, port: int, topic: str) -> None:
        import json

        import paho.mqtt.client as mqtt

        self.messages: list[dict] = []
        self._ready = threading.Event()
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)

        def on_connect(client, userdata, flags, reason, properties=None):
            client.subscribe(topic, qos=1)

        def on_subscribe(client, userdata, mid, reasons, properties=None):
            self._ready.set()

        def on_message(client, userdata, msg):
            self.messages.append({"topic": msg.topic, **json.loads(msg.payload)})

        self.client.on_connect = on_connect
        self.client.on_subscribe = on_subscribe
        self.client.on_message = on_message
        self.client.connect(host, port)
        self.client.loop_start()
        if not self._ready.wait(5):
            raise RuntimeError("could not subscribe")

    def wait_for(self, n: int, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Running:
    """A supervisor run in a thread, with helpers to read /health."""

    def __init__(self, sup) -> None:  # an etle.edge.supervisor.Supervisor
        self.sup = sup
        self.result = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while sup.health_server is None and time.monotonic() < deadline:
            time.sleep(0.02)

    def _run(self) -> None:
        self.result = self.sup.run()

    def health(self) -> dict:
        url = f"http://127.0.0.1:{self.sup.health_server.port}/health"
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:  # 503 while degraded, with the same JSON
            return json.load(e)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.sup.health_server.port}/metrics", timeout=5) as r:
            return r.read().decode()

    def wait(self, cond, timeout: float = 30.0, what: str = "") -> dict:
        deadline = time.monotonic() + timeout
        while True:
            h = self.health()
            if cond(h):
                return h
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {json.dumps(h['cameras'], indent=1)}")
            time.sleep(0.2)

    def stop(self):
        self.sup.request_stop()
        self.thread.join(30)
        assert not self.thread.is_alive()
        return self.result
