#!/usr/bin/env python
"""Benchmark ``etle run`` on every clip of a folder: fps and per-stage milliseconds per frame.

    python scripts/bench.py ../shared/data/videos [--detect-every N] [--reader rapidocr] [--max-seconds S]

A clip uses the camera file ``examples/cameras/<clip stem>.yaml`` when one exists (so rules,
view guard, evidence and tickets are part of the figures), otherwise it runs without rules.
Everything is written to a temporary folder and database.  This is a script, not a test:
figures depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from etle.ingest.sources import VIDEO_SUFFIXES  # noqa: E402
from etle.runner import run_sources  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--detect-every", type=int, default=1)
    ap.add_argument("--reader", default=None)
    ap.add_argument("--max-seconds", type=float, default=None)
    ap.add_argument("--no-plates", action="store_true")
    args = ap.parse_args()
    clips = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not clips:
        print(f"no clips in {args.folder}", file=sys.stderr)
        return 2
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    print(f"{'clip':40s} {'frames':>6s} {'video s':>7s} {'fps':>6s} {'x real':>6s} {'tracks':>6s} {'viol':>5s} {'tickets':>7s}  stage ms/frame")
    with tempfile.TemporaryDirectory() as tmp:
        for clip in clips:
            cam = REPO / "examples" / "cameras" / f"{clip.stem}.yaml"
            summaries = run_sources(
                str(clip),
                camera_path=cam if cam.is_file() else None,
                out_dir=Path(tmp) / "out",
                db_url=f"sqlite:///{tmp}/bench.db",
                reader=args.reader,
                read_plates=not args.no_plates,
                detect_every=args.detect_every,
                max_seconds=args.max_seconds,
                progress=False,
            )
            for s in summaries:
                real = s.frames / max(s.video_seconds, 1e-6)  # source fps
                stages = ", ".join(f"{k} {v:.1f}" for k, v in sorted(s.stage_ms.items()))
                print(
                    f"{clip.name[:40]:40s} {s.frames:6d} {s.video_seconds:7.1f} {s.fps:6.1f} {s.fps / real:6.2f} "
                    f"{s.tracks:6d} {s.violations:5d} {s.tickets:7d}  {stages}"
                )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
