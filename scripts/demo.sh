#!/usr/bin/env bash
# The bundled demo: set up, then run etle on the CC BY sample clip with its camera file.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
rm -rf demo-out demo.db
.venv/bin/etle run sample_videos/intel_car_detection_parking.mp4 \
  --camera examples/cameras/intel_car_detection_parking.yaml --out demo-out --db sqlite:///demo.db
.venv/bin/etle tickets list --db sqlite:///demo.db
echo "tickets: sqlite:///demo.db ($(pwd)/demo.db); evidence: $(pwd)/demo-out"
