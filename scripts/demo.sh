#!/usr/bin/env bash
# The bundled demo: set up, then run etle on the CC BY sample clip with its camera file, list the
# tickets and verify the (signed, chained) evidence.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
rm -rf demo-out demo.db
export ETLE_KEYS_DIR="${ETLE_KEYS_DIR:-$(pwd)/etle-keys}"
[ -f "$ETLE_KEYS_DIR/site.key" ] || .venv/bin/etle keys init
.venv/bin/etle run sample_videos/intel_car_detection_parking.mp4 \
  --camera examples/cameras/intel_car_detection_parking.yaml --out demo-out --db sqlite:///demo.db
.venv/bin/etle tickets list --db sqlite:///demo.db
.venv/bin/etle verify -e demo-out --db sqlite:///demo.db
echo "tickets: sqlite:///demo.db ($(pwd)/demo.db); evidence: $(pwd)/demo-out"
