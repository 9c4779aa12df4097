"""Live sources for unattended runs: RTSP/HTTP cameras, local capture devices, looping files.

:class:`LiveSource` is a frame source (``.info`` + ``.frames()``, like the file sources) built
for streams that drop, stall and come back:

* a **decode thread** opens the stream through PyAV (FFmpeg) and decodes it; the consumer (the
  pipeline) reads decoded pictures from a **bounded queue that drops the oldest** when it falls
  behind, so memory stays flat and the pipeline always works on recent frames; every drop is
  counted;
* when the stream ends, errors, or **stalls** (no data for ``read_timeout_s``, or data but no
  decodable picture for ``stall_timeout_s``) the thread reconnects with **capped exponential
  backoff and jitter**, for as long as the source is open;
* frames are timed on a **monotonic clock** started with the source: ``pts`` is seconds since
  the source started, continuous and strictly increasing across reconnects (the rules' timing
  never jumps), and a frame's ``wall_start`` is the UTC time the source started by the system
  clock, moved by every step the system clock has made since (NTP setting a box's clock minutes
  after boot, or correcting it later): ``frame.timestamp`` is the time of capture by the box's
  clock as it is now, which ticket dates, time-of-day signal plans and a controller's signal
  feed rely on (a clock set after the worker started would otherwise date every ticket of a
  months-long run from the wrong start).  Within one
  connection the spacing of frames follows the stream's own timestamps (the camera's capture
  spacing, not network arrival jitter), anchored on the earliest arrival (so a burst of
  buffered pictures is not timed in the future) and re-anchored to the clock when the stream
  lags it by more than ``max_drift_s`` (its clock jumped back or runs slow);
* :meth:`LiveSource.stats` returns a frozen :class:`LiveStats` snapshot of the counters
  (frames, drops, queue depth, reconnects, stalls, last frame age, ...), safe to call from any
  thread.

Spec forms: ``rtsp://``, ``rtsps://``, ``http(s)://``, ``rtmp://``, ``udp://``, ``tcp://``,
``srt://`` URLs; ``/dev/videoN`` or ``v4l2:///dev/videoN`` (a V4L2 capture device through
FFmpeg's ``v4l2`` input); a local video file, which is replayed in a loop at its own speed
(``realtime``) -- handy for soak tests and demos.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol

from etle.errors import SourceError
from etle.ingest.sources import STREAM_RE, SourceInfo, _quiet_ffmpeg, _redact, _short
from etle.types import Frame

log = logging.getLogger(__name__)

#: what dates a live source's frames (the evidence manifest's ``extra.wall_start_origin``)
LIVE_ORIGIN = "live source start (UTC, monotonic clock)"
#: a change of the system clock against the monotonic one larger than this is a step (seconds)
CLOCK_STEP_S = 1.0

__all__ = [
    "LiveSource",
    "LiveStats",
    "Connection",
    "PyAVConnection",
    "StallError",
    "backoff_delay",
    "parse_live_spec",
    "is_live_spec",
]


class StallError(SourceError):
    """The stream is connected but delivers no decodable picture."""


# ------------------------------------------------------------------------------------ specs


@dataclass(frozen=True, slots=True)
class LiveSpec:
    """Where and how to open a live source."""

    url: str  # what is handed to FFmpeg
    kind: str  # 'stream', 'device', 'file'
    format: str | None  # FFmpeg input format ('v4l2' for devices), None to probe


def parse_live_spec(spec: str) -> LiveSpec:
    """Classify a source spec: a network URL, a V4L2 device, or a local file (looped)."""
    s = spec.strip()
    if s.lower().startswith("v4l2://"):
        path = s[len("v4l2://"):]
        return LiveSpec(path if path.startswith("/") else "/" + path, "device", "v4l2")
    if s.startswith("/dev/video") or s.startswith("/dev/v4l/"):
        return LiveSpec(s, "device", "v4l2")
    if STREAM_RE.match(s):
        return LiveSpec(s, "stream", None)
    if s.lower().startswith("file://"):
        s = s[len("file://"):]
    return LiveSpec(s, "file", None)


def is_live_spec(spec: str) -> bool:
    """True for specs that are live by nature (network streams and capture devices)."""
    return parse_live_spec(spec).kind in ("stream", "device")


def backoff_delay(attempt: int, *, initial_s: float, max_s: float, jitter: float, rng: random.Random | None = None) -> float:
    """Delay before reconnect ``attempt`` (0-based): ``initial_s * 2**attempt`` capped at ``max_s``,
    then shortened by up to ``jitter`` (a fraction) at random so that many cameras that dropped
    together do not hammer the network together.  Never more than ``max_s``."""
    base = min(max_s, initial_s * (2.0 ** min(attempt, 62)))
    j = min(max(jitter, 0.0), 1.0)
    r = (rng or random).random()
    return max(0.0, base * (1.0 - j * r))


# ------------------------------------------------------------------------------ connections


class DecodedPicture(Protocol):
    """A decoded picture, converted to BGR only when the consumer takes it (drops cost nothing)."""

    def to_ndarray(self, format: str = ...) -> Any: ...  # noqa: A002


class Connection(Protocol):
    """One open connection to a live source."""

    width: int
    height: int
    fps: float

    def pictures(self) -> Iterator[tuple[float | None, DecodedPicture]]:
        """Decoded pictures with their stream time in seconds (None when unknown).  Ends on
        end of stream; raises on errors, read timeouts and stalls."""
        ...

    def close(self) -> None: ...


class PyAVConnection:
    """A PyAV (FFmpeg) input: network stream, capture device or file."""

    def __init__(
        self,
        spec: LiveSpec,
        *,
        options: Mapping[str, str] | None = None,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 10.0,
        stall_timeout_s: float = 10.0,
        realtime: bool = False,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        _quiet_ffmpeg()
        import av

        self.spec = spec
        opts: dict[str, str] = {}
        if spec.url.lower().startswith(("rtsp://", "rtsps://")):
            opts["rtsp_transport"] = "tcp"
        opts.update({str(k): str(v) for k, v in (options or {}).items()})
        self._stall_timeout_s = stall_timeout_s
        self._realtime = realtime
        self._should_stop = should_stop
        try:
            self._container = av.open(
                spec.url, format=spec.format, options=opts,
                timeout=(open_timeout_s, read_timeout_s) if spec.kind != "file" else None,
            )
        except (av.FFmpegError, OSError) as exc:
            raise SourceError(f"{_redact(spec.url)}: cannot open ({_short(exc)})") from exc
        try:
            if not self._container.streams.video:
                raise SourceError(f"{_redact(spec.url)}: holds no video")
            self._stream = self._container.streams.video[0]
            self._stream.thread_type = "AUTO"
            cc = self._stream.codec_context
            self.width, self.height = int(cc.width or 0), int(cc.height or 0)
            rate = self._stream.average_rate or self._stream.guessed_rate or Fraction(25)
            self.fps = float(rate)
        except BaseException:
            self._container.close()
            raise

    def pictures(self) -> Iterator[tuple[float | None, DecodedPicture]]:
        import av

        stream = self._stream
        tb = stream.time_base
        last_picture = time.monotonic()
        pace_t0: float | None = None
        pace_p0 = 0.0
        try:
            for packet in self._container.demux(stream):
                if self._should_stop():
                    return
                for vf in stream.decode(packet):
                    t = float(vf.pts * tb) if (vf.pts is not None and tb is not None) else None
                    if self._realtime and t is not None:
                        if pace_t0 is None:
                            pace_t0, pace_p0 = time.monotonic(), t
                        wait = (t - pace_p0) - (time.monotonic() - pace_t0)
                        while wait > 0 and not self._should_stop():
                            time.sleep(min(wait, 0.1))
                            wait = (t - pace_p0) - (time.monotonic() - pace_t0)
                    last_picture = time.monotonic()
                    yield t, vf
                if time.monotonic() - last_picture > self._stall_timeout_s:
                    raise StallError(
                        f"{_redact(self.spec.url)}: no picture for {self._stall_timeout_s:.0f} s although data arrives"
                    )
        except av.FFmpegError as exc:
            raise SourceError(f"{_redact(self.spec.url)}: stream failed ({_short(exc)})") from exc

    def close(self) -> None:
        try:
            self._container.close()
        except Exception:  # closing a broken container must not mask the real error
            log.debug("closing %s failed", _redact(self.spec.url), exc_info=True)


# ------------------------------------------------------------------------------------ stats


@dataclass(frozen=True, slots=True)
class LiveStats:
    """A snapshot of a live source's counters (cumulative since the source started)."""

    name: str
    state: str  # 'starting', 'connecting', 'connected', 'waiting' (backoff), 'closed'
    connected: bool
    uptime_s: float
    connects: int  # successful connections (the first one included)
    reconnects: int  # successful connections after the first
    connect_failures: int  # attempts that failed to open
    disconnects: int  # connections lost (end of stream, error or stall)
    stalls: int  # of which stalls / read timeouts
    frames_decoded: int
    frames_delivered: int
    frames_dropped: int  # dropped from the queue because the consumer fell behind
    frames_skipped: int  # left out on purpose to keep under max_fps
    queue_depth: int
    queue_size: int
    input_fps: float  # decoded pictures per second over the last few seconds
    last_frame_age_s: float | None  # seconds since the last decoded picture (None before the first)
    last_error: str | None
    width: int
    height: int

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


# ------------------------------------------------------------------------------- the source


class LiveSource:
    """A live frame source that reconnects, drops the oldest frames when behind, and counts.

    Not started until :attr:`info` or :meth:`frames` is first used (or :meth:`start` is called);
    :attr:`info` blocks until the first connection (``first_connect_timeout_s``, None = for as
    long as the source is open).  :meth:`close` (from any thread) ends :meth:`frames`.

    ``max_seconds`` ends the source after that many seconds of its clock; ``max_fps`` passes at
    most that many frames a second on (the others are decoded but skipped, and counted: a way
    to share a small CPU between many cameras); ``realtime`` paces a
    file at its own frame rate (default: on for files, off for streams and devices, which pace
    themselves); ``connect(should_stop)`` replaces the PyAV connection (tests, other
    backends): it returns a :class:`Connection` whose ``pictures()`` should end soon after
    ``should_stop()`` turns true.
    """

    #: decodes in its own thread already (the pipeline adds no prefetch thread)
    live = True

    def __init__(
        self,
        spec: str,
        *,
        name: str | None = None,
        queue_size: int = 8,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 10.0,
        stall_timeout_s: float = 10.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        backoff_jitter: float = 0.3,
        max_drift_s: float = 2.0,
        max_seconds: float | None = None,
        max_fps: float | None = None,
        first_connect_timeout_s: float | None = None,
        realtime: bool | None = None,
        options: Mapping[str, str] | None = None,
        connect: Callable[[Callable[[], bool]], Connection] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.spec = parse_live_spec(spec)
        if self.spec.kind == "file" and connect is None and not Path(self.spec.url).is_file():
            raise SourceError(f"{spec}: not a stream URL, a capture device or an existing video file")
        self.name = name or _redact(spec)
        self.queue_size = int(queue_size)
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.stall_timeout_s = stall_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.backoff_jitter = backoff_jitter
        self.max_drift_s = max_drift_s
        self.max_seconds = max_seconds
        if max_fps is not None and max_fps <= 0:
            raise ValueError("max_fps must be positive")
        self.min_interval_s = 1.0 / max_fps if max_fps else 0.0
        self.first_connect_timeout_s = first_connect_timeout_s
        self.realtime = (self.spec.kind == "file") if realtime is None else bool(realtime)
        self.options = dict(options or {})
        self._connect = connect or self._pyav_connect
        self._clock = clock
        # the system clock frames are dated by; followed when it steps (below).  A test's own
        # monotonic clock comes without one: its frames keep the start's date.
        self._wall_clock = wall_clock if wall_clock is not None else (time.time if clock is time.monotonic else None)
        self._anchor_wall = 0.0
        self._clock_steps = 0
        self._rng = rng or random.Random()

        self._cond = threading.Condition()
        self._queue: collections.deque[tuple[float, DecodedPicture]] = collections.deque()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False
        self._reader_done = False
        self._info: SourceInfo | None = None
        self._info_ready = threading.Event()
        self._t0 = 0.0
        self._wall_start: datetime | None = None
        self._consuming = False
        # counters (guarded by _cond)
        self._state = "starting"
        self._connects = 0
        self._connect_failures = 0
        self._disconnects = 0
        self._stalls = 0
        self._decoded = 0
        self._delivered = 0
        self._dropped = 0
        self._skipped = 0
        self._next_due = float("-inf")
        self._last_picture_at: float | None = None
        self._last_error: str | None = None
        self._recent: collections.deque[float] = collections.deque(maxlen=256)
        self._last_pts = -1.0
        self._size = (0, 0)

    # -------------------------------------------------------------- lifecycle

    def start(self) -> "LiveSource":
        """Start the decode thread (idempotent)."""
        with self._cond:
            if self._started:
                return self
            self._started = True
            self._t0 = self._clock()
            self._anchor_wall = self._wall_clock() if self._wall_clock is not None else time.time()
            self._wall_start = datetime.fromtimestamp(self._anchor_wall, timezone.utc)
        self._thread = threading.Thread(target=self._run, name=f"live:{self.name}", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout_s: float | None = None) -> None:
        """Stop decoding and end :meth:`frames`; waits for the decode thread (at most
        ``timeout_s``, default the read timeout + 1 s: a blocked read ends by its timeout)."""
        self._closed.set()
        with self._cond:
            self._state = "closed"
            self._queue.clear()
            self._cond.notify_all()
        self._info_ready.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(self.read_timeout_s + 1.0 if timeout_s is None else timeout_s)
            if t.is_alive() and (timeout_s is None or timeout_s > 0):
                log.warning("%s: decode thread still blocked after close", self.name)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def __enter__(self) -> "LiveSource":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- clock

    @property
    def wall_start(self) -> datetime | None:
        return self._wall_start

    def now(self) -> float:
        """The source clock: seconds since the source started (the scale of ``Frame.pts``)."""
        return self._clock() - self._t0 if self._started else 0.0

    # ----------------------------------------------------------------- info

    @property
    def info(self) -> SourceInfo:
        """What the first connection showed (size, frame rate); blocks until it is made."""
        self.start()
        if not self._info_ready.wait(self.first_connect_timeout_s):
            raise SourceError(f"{self.name}: no connection within {self.first_connect_timeout_s:.0f} s ({self._last_error or 'no answer'})")
        if self._info is None:
            raise SourceError(f"{self.name}: closed before the first connection ({self._last_error or 'no answer'})")
        return self._info

    # ---------------------------------------------------------------- stats

    def stats(self) -> LiveStats:
        now = self._clock()
        with self._cond:
            recent = [t for t in self._recent if now - t <= 5.0]
            if len(recent) >= 2 and recent[-1] > recent[0]:
                fps = (len(recent) - 1) / (recent[-1] - recent[0])
            else:
                fps = 0.0
            return LiveStats(
                name=self.name,
                state=self._state,
                connected=self._state == "connected",
                uptime_s=(now - self._t0) if self._started else 0.0,
                connects=self._connects,
                reconnects=max(self._connects - 1, 0),
                connect_failures=self._connect_failures,
                disconnects=self._disconnects,
                stalls=self._stalls,
                frames_decoded=self._decoded,
                frames_delivered=self._delivered,
                frames_dropped=self._dropped,
                frames_skipped=self._skipped,
                queue_depth=len(self._queue),
                queue_size=self.queue_size,
                input_fps=fps,
                last_frame_age_s=(now - self._last_picture_at) if self._last_picture_at is not None else None,
                last_error=self._last_error,
                width=self._size[0],
                height=self._size[1],
            )

    # ---------------------------------------------------------------- frames

    def _frame_wall_start(self) -> datetime | None:
        """The wall-clock start frames are dated from: the system clock at the source's start,
        moved by every step of the system clock since (more than :data:`CLOCK_STEP_S` between it
        and the monotonic clock).  Frame times run on the monotonic clock so that the rules'
        timing never jumps; their date follows the system clock, so a box whose clock NTP sets
        after boot (or corrects later) dates the tickets after it rightly without a restart."""
        if self._wall_clock is None or self._wall_start is None:
            return self._wall_start
        step = self._wall_clock() - (self._anchor_wall + (self._clock() - self._t0))
        if abs(step) > CLOCK_STEP_S:
            self._anchor_wall += step
            self._clock_steps += 1
            self._wall_start = datetime.fromtimestamp(self._anchor_wall, timezone.utc)
            log.warning("%s: the system clock moved by %+.1f s (set by NTP?): frames are dated by it from now",
                        self.name, step)
        return self._wall_start

    @property
    def clock_steps(self) -> int:
        """How many steps of the system clock the frames' dates followed."""
        return self._clock_steps

    def frames(self) -> Iterator[Frame]:
        """Frames as the consumer can take them (oldest dropped when it falls behind), until
        the source is closed or ``max_seconds`` is reached.  One consumer at a time."""
        info = self.info
        with self._cond:
            if self._consuming:
                raise SourceError(f"{self.name}: frames() is already being read")
            self._consuming = True
        index = 0
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._closed.is_set() and not self._reader_done:
                        self._cond.wait(0.5)
                    if self._closed.is_set() or not self._queue:
                        return
                    pts, picture = self._queue.popleft()
                    self._delivered += 1
                image = picture.to_ndarray(format="bgr24")
                del picture
                yield Frame(info.name, index, pts, image, self._frame_wall_start())
                index += 1
        finally:
            with self._cond:
                self._consuming = False
            self.close()

    # ------------------------------------------------------------ the thread

    def _pyav_connect(self, should_stop: Callable[[], bool]) -> Connection:
        return PyAVConnection(
            self.spec, options=self.options, open_timeout_s=self.open_timeout_s, read_timeout_s=self.read_timeout_s,
            stall_timeout_s=self.stall_timeout_s, realtime=self.realtime, should_stop=should_stop,
        )

    def _set(self, **fields: Any) -> None:
        with self._cond:
            for k, v in fields.items():
                setattr(self, k, v)

    def _run(self) -> None:
        attempt = 0
        failures = 0  # failed attempts since the stream was last up (logged once, not every retry)
        down_since: float | None = None
        try:
            while not self._closed.is_set():
                self._set(_state="connecting")
                try:
                    conn = self._connect(self._closed.is_set)
                except Exception as exc:  # noqa: BLE001 - any failure to open is retried
                    with self._cond:
                        self._connect_failures += 1
                        self._last_error = _message(exc)
                    failures += 1
                    if down_since is None:
                        down_since = self._clock()
                    (log.warning if failures == 1 else log.debug)(
                        "%s: cannot connect (%s); retrying with backoff up to %.0f s", self.name, _message(exc), self.backoff_max_s)
                else:
                    if failures or down_since is not None:
                        log.info("%s: connected after %d failed attempt(s), %.1f s without pictures", self.name, failures,
                                 self._clock() - (down_since if down_since is not None else self._clock()))
                    failures = 0
                    got = self._consume(conn)
                    if got:
                        attempt = 0
                    down_since = self._clock()
                    if self._closed.is_set() or self._reader_done:
                        return
                delay = backoff_delay(attempt, initial_s=self.backoff_initial_s, max_s=self.backoff_max_s,
                                      jitter=self.backoff_jitter, rng=self._rng)
                attempt += 1
                self._set(_state="waiting")
                log.debug("%s: reconnecting in %.1f s", self.name, delay)
                if self._closed.wait(delay):
                    return
        except BaseException as exc:  # a bug here must end frames(), not hang the consumer
            log.exception("%s: decode thread failed", self.name)
            self._set(_last_error=_message(exc))
        finally:
            with self._cond:
                self._reader_done = True
                if self._closed.is_set():
                    self._state = "closed"
                self._cond.notify_all()
            self._info_ready.set()

    def _consume(self, conn: Connection) -> bool:
        """Read one connection to its end; True when it gave at least one picture."""
        got = False
        anchor: float | None = None  # source clock minus stream time, for this connection
        try:
            with self._cond:
                self._connects += 1
                self._state = "connected"
                self._size = (int(conn.width), int(conn.height))
                n = self._connects
            if self._info is None:
                self._info = SourceInfo(
                    name=self.name, kind="stream" if self.spec.kind != "device" else "device",
                    width=int(conn.width), height=int(conn.height),
                    fps=min(float(conn.fps or 25.0), 1.0 / self.min_interval_s if self.min_interval_s else float("inf")),
                    duration_s=None, frame_count=None, wall_start=self._wall_start,
                    wall_start_origin=LIVE_ORIGIN,
                )
                self._info_ready.set()
            if n > 1:
                log.debug("%s: reconnected (%d reconnects)", self.name, n - 1)
            for stream_t, picture in conn.pictures():
                if self._closed.is_set():
                    return got
                now_mono = self._clock()
                now = now_mono - self._t0
                # the stream's spacing, anchored on the earliest arrival seen in this connection
                # (a picture cannot be from the future: pictures buffered while connecting come
                # in a burst), re-anchored when the stream lags the clock by more than
                # max_drift_s (its clock jumped back, or runs slow); no stream time: the clock
                if stream_t is None:
                    pts = now
                else:
                    lag = now - stream_t
                    if anchor is None or lag < anchor or lag - anchor > self.max_drift_s:
                        anchor = lag
                    pts = stream_t + anchor
                if pts <= self._last_pts:
                    pts = self._last_pts + 1e-3
                if self.max_seconds is not None and pts > self.max_seconds:
                    with self._cond:
                        self._reader_done = True
                        self._cond.notify_all()
                    return got
                got = True
                with self._cond:
                    self._last_pts = pts
                    self._decoded += 1
                    self._last_picture_at = now_mono
                    self._recent.append(now_mono)
                    if self.min_interval_s:
                        if pts < self._next_due - 1e-6:
                            self._skipped += 1
                            continue
                        # on average max_fps frames a second, whatever the stream's frame rate
                        late = pts - self._next_due >= self.min_interval_s
                        self._next_due = (pts if late else self._next_due) + self.min_interval_s
                    if len(self._queue) >= self.queue_size:
                        self._queue.popleft()
                        self._dropped += 1
                    self._queue.append((pts, picture))
                    self._cond.notify()
            if self._closed.is_set():
                return got
            # end of stream: a live source that ends has dropped
            with self._cond:
                self._disconnects += 1
                self._last_error = "end of stream"
            log.info("%s: stream ended; will reconnect", self.name)
        except StallError as exc:
            with self._cond:
                self._disconnects += 1
                self._stalls += 1
                self._last_error = _message(exc)
            log.warning("%s: %s", self.name, _message(exc))
        except Exception as exc:  # noqa: BLE001 - decoding errors and read timeouts reconnect
            msg = _message(exc)
            with self._cond:
                self._disconnects += 1
                if _is_timeout(exc, msg):
                    self._stalls += 1
                self._last_error = msg
            log.warning("%s: connection lost (%s)", self.name, msg)
        finally:
            conn.close()
        return got


def _message(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, SourceError) else _short(exc)


def _is_timeout(exc: BaseException, msg: str) -> bool:
    cause = exc.__cause__ or exc
    name = type(cause).__name__
    return isinstance(cause, TimeoutError) or "Exit" in name or "timed out" in msg.lower() or "interrupt" in msg.lower()
