#!/usr/bin/env bash
# Every accuracy figure of docs/accuracy.md, measured: runs each eval into eval/results/*.json,
# then writes docs/accuracy.md from those files (etle eval report).  Needs ../shared/data
# (or ETLE_SHARED_DIR) and the models of scripts/setup.sh.  About 15 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
ETLE=.venv/bin/etle
DATA=${ETLE_SHARED_DIR:-../shared}/data
OUT=${ETLE_RESULTS:-eval/results}
mkdir -p "$OUT"
$ETLE eval violations eval/truth/shared_clips.yaml --fast --details --no-progress --json "$OUT/violations-fast.json"
$ETLE eval violations eval/truth/shared_clips.yaml --details --no-progress --json "$OUT/violations-default.json"
# the same clips exported at twice their size: camera files fitted by their frame_size (etle.camera.fit)
$ETLE eval violations eval/truth/shared_clips.yaml --fast --scale 2 --details --no-progress --json "$OUT/violations-fast-x2.json"
$ETLE eval violations eval/truth/shared_clips.yaml --scale 2 --details --no-progress --json "$OUT/violations-default-x2.json"
# on a CPU without VNNI the fast profile runs the float detector (etle.config.run.fast_detector):
# both detectors in that profile, measured on such a CPU; elsewhere the committed figures stay
if .venv/bin/python -c "import sys; from etle.config.hardware import cpu; sys.exit(cpu()['vnni'] is not False)"; then
  $ETLE eval violations eval/truth/shared_clips.yaml --fast --details --no-progress --json "$OUT/violations-fast-novnni.json"
  $ETLE eval violations eval/truth/shared_clips.yaml --detector vehicle-detector-int8 --detect-fps 6 --details \
    --no-progress --json "$OUT/violations-int8-novnni.json"
fi
$ETLE eval riders eval/truth/riders_photos.yaml --data "$DATA/helmet/roboflow_helmet_ccby" --no-progress --json "$OUT/riders.json"
$ETLE eval riders eval/truth/riders_photos.yaml --data "$DATA/helmet/roboflow_helmet_ccby" --detector vehicle-detector-int8 \
  --no-progress --json "$OUT/riders-fast.json"
$ETLE eval helmet "$DATA/helmet/roboflow_helmet_ccby/test" "$DATA/helmet/bikeshelmets_subset" --no-progress --json "$OUT/helmet.json"
$ETLE eval lamps --split test --no-progress --json "$OUT/lamps.json"
$ETLE eval privacy eval/truth/faces.yaml "$DATA/helmet/roboflow_helmet_ccby/test" --no-progress --json "$OUT/privacy.json"
$ETLE eval plates "$DATA/plates/indonesia_ilpr_test/images" --labels "$DATA/plates/indonesia_ilpr_test/labels.csv" \
  --crosscheck "$DATA/plates/indonesia_ilpr_test/crosscheck.csv" --reader rapidocr+crnn --no-progress --json "$OUT/plates-ilpr.json"
$ETLE eval plate-tracks "$DATA/plates/fastplateocr_benchmark_ar" --labels "$DATA/plates/fastplateocr_benchmark_ar/labels.csv" \
  --country generic --reader rapidocr --no-progress --json "$OUT/plate-tracks-ar.json"
$ETLE eval plate-tracks "$DATA/plates/indonesia_ilpr_test/images" --labels "$DATA/plates/indonesia_ilpr_test/labels.csv" \
  --crosscheck "$DATA/plates/indonesia_ilpr_test/crosscheck.csv" --reader rapidocr+crnn --no-progress --json "$OUT/plate-tracks-ilpr.json"
$ETLE eval plates "$DATA/plates/fastplateocr_benchmark_ar" --labels "$DATA/plates/fastplateocr_benchmark_ar/labels.csv" \
  --country generic --reader rapidocr --no-progress --json "$OUT/plates-ar.json"
$ETLE eval plates "$DATA/plates/openalpr_eu/images" --labels "$DATA/plates/openalpr_eu/labels.csv" --full-image \
  --country generic --reader rapidocr --no-progress --json "$OUT/plates-eu.json"
# the int8 models natively and on an emulated CPU without VNNI: needs qemu-user (apt-get install
# qemu-user), about 3 minutes; without it the committed figures stay
if command -v qemu-x86_64 >/dev/null; then
  .venv/bin/python scripts/int8_cpu_check.py --json "$OUT/int8_cpu.json"
fi
$ETLE eval report "$OUT" -o docs/accuracy.md
