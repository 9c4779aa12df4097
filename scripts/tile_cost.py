#!/usr/bin/env python
"""What zone tiles (``detect_tiles``, etle/detect/tiles.py) cost on a 1080p camera.

No 1080p footage ships here, so the bundled CC BY sample (768 x 432) is enlarged to 1920 x 1080
in a scratch folder, with a camera file whose stop line crosses the whole picture, and
``etle bench`` runs it twice: without tiles and with ``detect_tiles: [stop_line]`` (a row of four
640-pixel tiles).  Enlarged footage has no more detail than the original, so this measures the
cost only, not what tiles find on a real 1080p camera.

    .venv/bin/python scripts/tile_cost.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_videos" / "intel_car_detection_parking.mp4"
CAMERA = """\
id: sample-parking-1080p
timezone: Asia/Jakarta
signal:
  type: fixed_plan
  anchor: source_start
  phases:
    - {state: green, duration_s: 10}
    - {state: red, duration_s: 20}
zones:
  stop_line:
    points: [[0, 540], [1920, 540]]
    approach_side: [960, 250]
rules:
  red_light: {line: stop_line, grace_s: 1.0}
"""


def enlarge(src: Path, dst: Path, size: tuple[int, int] = (1920, 1080)) -> int:
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS)
    out = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        out.write(cv2.resize(frame, size, interpolation=cv2.INTER_CUBIC))
        n += 1
    cap.release()
    out.release()
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it (default: a temporary one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        (work / "video").mkdir(parents=True, exist_ok=True)
        frames = enlarge(SAMPLE, work / "video" / "parking_1080p.mp4")
        rows = {}
        for name, extra in (("without tiles", ""), ("detect_tiles: [stop_line]", "detect_tiles: [stop_line]\n")):
            cams = work / ("cams-tiles" if extra else "cams-plain")
            cams.mkdir(exist_ok=True)
            (cams / "parking_1080p.yaml").write_text(CAMERA.replace("rules:", extra + "rules:"), encoding="utf-8")
            out = work / f"{cams.name}.json"
            res = subprocess.run([str(REPO / ".venv" / "bin" / "etle"), "bench", str(work / "video"), "--camera-dir", str(cams),
                                  "--no-baseline", "--json", str(out)], capture_output=True, text=True)
            if res.returncode != 0:
                print(res.stdout + res.stderr, file=sys.stderr)
                return res.returncode
            rows[name] = json.loads(out.read_text(encoding="utf-8"))
        print(f"bundled sample enlarged to 1920x1080, {frames} frames; etle bench --no-baseline (fast profile), one machine:")
        for name, rep in rows.items():
            e = rep[0]["etle"]
            fps = e["frames"] / e["elapsed_s"]
            print(f"  {name:27s} {fps:5.1f} fps, detect {e['stage_ms']['detect']:.1f} ms/frame over {e['detections']} "
                  f"detector runs, tracks {e['tracks']}, tickets {e['tickets']}, peak RSS {e['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
