#!/usr/bin/env python3
"""Soak test of ``etle edge``: one camera on a looping local live stream for N minutes, printing
the memory (RSS), open descriptors and threads of the supervisor and the camera worker every
interval, and RSS at the start (after warm-up) and at the end.

    python scripts/soak.py --minutes 30                       # real models, plates off, 3 fps
    python scripts/soak.py --minutes 30 --pipeline fake       # only the live machinery (cheap)
    python scripts/soak.py --minutes 10 --plates --max-fps 2  # the whole pipeline

The stream is the clip served by FFmpeg over HTTP (``-re -stream_loop -1``, restarted by this
script whenever it exits, so drops and reconnects happen too); without the ffmpeg binary the
worker reads the clip as a looping local file.  Exit status 1 when the worker RSS grew by more
than ``--max-growth-mib`` from the first sample to the last.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def usage(pid: int | None) -> dict[str, float] | None:
    if pid is None:
        return None
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        return {"rss_mib": rss / 1024.0, "fds": len(os.listdir(f"/proc/{pid}/fd")),
                "threads": len(os.listdir(f"/proc/{pid}/task"))}
    except (OSError, StopIteration):
        return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LoopingServer:
    """FFmpeg serving the clip in a loop over HTTP, one client at a time, restarted when it exits."""

    def __init__(self, clip: Path) -> None:
        self.clip = clip
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/soak.ts"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "LoopingServer":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.proc is None or self.proc.poll() is not None:
                self.proc = subprocess.Popen(
                    ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re", "-stream_loop", "-1", "-i", str(self.clip),
                     "-an", "-c:v", "copy", "-f", "mpegts", "-listen", "1", self.url],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
                self.starts += 1
            self._stop.wait(0.5)

    def stop(self) -> None:
        self._stop.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--interval", type=float, default=60.0, help="seconds between samples")
    ap.add_argument("--clip", type=Path, default=REPO / "sample_videos" / "intel_car_detection_parking.mp4")
    ap.add_argument("--camera", type=Path, default=REPO / "examples" / "cameras" / "intel_car_detection_parking.yaml")
    ap.add_argument("--pipeline", choices=("real", "fake"), default="real")
    ap.add_argument("--plates", action="store_true", help="read plates too (more CPU)")
    ap.add_argument("--max-fps", type=float, default=3.0, help="frames processed per second (0: as many as the CPU allows)")
    ap.add_argument("--server", choices=("auto", "ffmpeg", "file"), default="auto")
    ap.add_argument("--mqtt", action="store_true", help="publish events to the broker at 127.0.0.1:1883")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: a temporary one, removed)")
    ap.add_argument("--max-growth-mib", type=float, default=30.0)
    args = ap.parse_args()

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from etle.edge.site import CameraEntry, HealthConfig, LiveOptions, MqttConfig, PipelineOptions, SiteConfig
    from etle.edge.supervisor import Supervisor

    use_ffmpeg = args.server == "ffmpeg" or (args.server == "auto" and shutil.which("ffmpeg"))
    server = LoopingServer(args.clip).start() if use_ffmpeg else None
    source = server.url if server else str(args.clip)
    out = args.out or Path(tempfile.mkdtemp(prefix="etle-soak-"))
    site = SiteConfig(
        site="soak", output_dir=out / "evidence", db_url=f"sqlite:///{out / 'soak.db'}",
        cameras=[CameraEntry(camera=args.camera, source=source, id="soak-cam")], camera_ids=("soak-cam",),
        pipeline=PipelineOptions(read_plates=args.plates),
        live=LiveOptions(max_fps=args.max_fps or None, open_timeout_s=5, read_timeout_s=5, stall_timeout_s=5),
        health=HealthConfig(port=0), mqtt=MqttConfig() if args.mqtt else None,
    )
    factory = "etle.edge.worker:build_real_pipeline"
    overrides = None
    if args.pipeline == "fake":
        factory, overrides = "tests.fixtures.edge_fakes:fake_pipeline", {"ticket_every_s": 10.0}
    sup = Supervisor(site, factory=factory, max_seconds=args.minutes * 60.0, log_level=logging.WARNING,
                     pipeline_overrides=overrides, stats_interval_s=2.0)
    runner = threading.Thread(target=lambda: setattr(sup, "report", sup.run()), daemon=True)
    print(f"soak: {args.minutes:g} min, pipeline {args.pipeline}{' + plates' if args.plates else ''}, max_fps {args.max_fps:g}, "
          f"source {'ffmpeg HTTP loop ' + source if server else 'looping local file ' + source}, output {out}", flush=True)
    t0 = time.monotonic()
    runner.start()
    samples: list[tuple[float, dict, dict | None]] = []
    try:
        next_at = t0
        while runner.is_alive():
            now = time.monotonic()
            if now >= next_at:
                h = sup.health()["cameras"]["soak-cam"]
                me = usage(os.getpid())
                worker = usage(h["pid"]) if h["pid"] else None
                samples.append((now - t0, me or {}, worker))
                w = f"worker rss {worker['rss_mib']:.1f} MiB fds {worker['fds']} threads {worker['threads']}" if worker else "worker -"
                print(f"[{(now - t0) / 60:5.1f} min] supervisor rss {me['rss_mib']:.1f} MiB | {w} | frames {h['frames_processed']} "
                      f"dropped {h['frames_dropped']} reconnects {h['reconnects']} restarts {h['restarts']} tickets {h['tickets']} "
                      f"fps {h['fps']}", flush=True)
                next_at += args.interval
            runner.join(min(1.0, max(next_at - time.monotonic(), 0.05)))
    except KeyboardInterrupt:
        sup.request_stop()
        runner.join(60)
    finally:
        if server is not None:
            server.stop()
    report = getattr(sup, "report", None)
    warm = [s for s in samples if s[2]]
    if len(warm) < 2:
        print("soak: not enough samples")
        return 1
    first, last = warm[1] if len(warm) > 2 else warm[0], warm[-1]  # the first sample is still warming up
    growth = last[2]["rss_mib"] - first[2]["rss_mib"]
    print(f"soak result: worker RSS {first[2]['rss_mib']:.1f} MiB at {first[0] / 60:.1f} min -> {last[2]['rss_mib']:.1f} MiB at "
          f"{last[0] / 60:.1f} min ({growth:+.1f} MiB); supervisor RSS {first[1]['rss_mib']:.1f} -> {last[1]['rss_mib']:.1f} MiB; "
          f"fds {first[2]['fds']} -> {last[2]['fds']}; threads {first[2]['threads']} -> {last[2]['threads']}")
    if report is not None:
        cam = report.cameras["soak-cam"]
        print(f"soak run: {report.elapsed_s / 60:.1f} min, tickets {report.tickets}, worker restarts {cam['restarts']}, "
              f"ffmpeg (re)starts {server.starts if server else 0}")
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)
    return 0 if growth <= args.max_growth_mib else 1


if __name__ == "__main__":
    sys.exit(main())
