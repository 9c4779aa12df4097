#!/usr/bin/env bash
# Frames per second per stream of `etle run` on the GPU (--device cuda: ONNX Runtime's TensorRT /
# CUDA providers) against the CPU, with 1, 2 and 4 streams at once, on the shared clips: as
# separate processes (one model copy each) and as one process whose streams share one detector
# and run their frames as one batch (`etle run --streams N`, etle/detect/batching.py).
#
#   scripts/gpu_bench.sh [VIDEOS_DIR] [MAX_SECONDS]      # default ../shared/data/videos, 30 s
#
# Needs the onnxruntime-gpu wheel in .venv (pip install onnxruntime-gpu) and an NVIDIA GPU; where
# ONNX Runtime has no GPU provider it says so and exits 0 without measuring (nothing to report).
# STREAMS="1 2 4", PROFILE="default|fast" and DEVICES="cpu cuda" change what runs (DEVICES=cpu
# measures the CPU alone, on any machine).
set -euo pipefail
cd "$(dirname "$0")/.."
ETLE=${ETLE:-.venv/bin/etle}
PY=${PY:-.venv/bin/python}
VIDEOS=${1:-${ETLE_SHARED_DIR:-../shared}/data/videos}
MAX_S=${2:-30}
STREAMS=${STREAMS:-"1 2 4"}
PROFILE=${PROFILE:-default}
DEVICES=${DEVICES:-"cpu cuda"}

providers=$("$PY" -c 'import onnxruntime as o; print(",".join(o.get_available_providers()))')
if [[ " $DEVICES " == *" cuda "* && "$providers" != *CUDAExecutionProvider* && "$providers" != *TensorrtExecutionProvider* ]]; then
  echo "gpu_bench: no GPU execution provider in this ONNX Runtime ($providers): nothing to measure"
  echo "gpu_bench: install onnxruntime-gpu on a machine with an NVIDIA GPU and run again"
  exit 0
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

args=(--max-seconds "$MAX_S" --no-progress --json)
if [ "$PROFILE" = fast ]; then args+=(--detector vehicle-detector-int8 --detect-fps 6); fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

printf '%-40s %-6s %-8s %-9s %10s %12s\n' clip device streams mode "fps/stream" "x real time"
report() {  # name device n mode: mean fps and real-time factor of the runs' JSON summaries
  "$PY" - "$@" "$tmp" <<'EOF'
import json, sys, glob
name, device, n, mode, tmp = sys.argv[1:]
runs = [r for f in sorted(glob.glob(f"{tmp}/{mode}-{device}-{n}-*.json")) for r in json.load(open(f))]
fps = sum(r["fps"] for r in runs) / len(runs)
rt = sum(r["video_seconds"] / r["elapsed_s"] for r in runs if r["elapsed_s"]) / len(runs)
print(f"{name[:40]:<40} {device:<6} {n:<8} {mode:<9} {fps:>10.1f} {rt:>12.2f}")
EOF
}
for clip in "$VIDEOS"/*.mp4; do
  name=$(basename "$clip" .mp4)
  cam=examples/cameras/$name.yaml
  camarg=()
  [ -f "$cam" ] && camarg=(--camera "$cam")
  for device in $DEVICES; do
    for n in $STREAMS; do
      pids=()
      for i in $(seq 1 "$n"); do
        "$ETLE" run "$clip" "${camarg[@]}" "${args[@]}" --device "$device" \
          --db "sqlite:///$tmp/proc-$device-$n-$i.db" -o "$tmp/ev-$device-$n-$i" >"$tmp/proc-$device-$n-$i.json" 2>"$tmp/proc-$device-$n-$i.err" &
        pids+=($!)
      done
      ok=1
      for p in "${pids[@]}"; do wait "$p" || ok=0; done
      if [ $ok = 0 ]; then
        echo "gpu_bench: $name on $device x$n failed: $(tail -q -n 1 "$tmp"/proc-$device-$n-*.err | head -1)"
      else
        report "$name" "$device" "$n" proc
      fi
      [ "$n" -gt 1 ] || continue
      # the same n streams in one process, their frames batched on one detector
      dir="$tmp/streams-$device-$n"
      mkdir -p "$dir"
      for i in $(seq 1 "$n"); do ln -sf "$(realpath "$clip")" "$dir/$i.mp4"; done
      if "$ETLE" run "$dir" "${camarg[@]}" "${args[@]}" --device "$device" --streams "$n" \
          --db "sqlite:///$tmp/batch-$device-$n.db" -o "$tmp/evb-$device-$n" >"$tmp/batched-$device-$n-1.json" 2>"$tmp/batched-$device-$n.err"; then
        report "$name" "$device" "$n" batched
      else
        echo "gpu_bench: $name on $device, $n batched streams failed: $(tail -1 "$tmp/batched-$device-$n.err")"
      fi
    done
  done
done
