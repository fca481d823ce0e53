#!/usr/bin/env bash
# Effect of the temporal regulariser: trains starry_night (fast) WITHOUT it for $STEPS steps
# (same seed, data and other weights as the shipped model), exports it and the shipped run's
# snapshot at the same step, and measures both with scripts/eval_stability.py on
# ../shared/data/video. Resumable like train.py. Output: .cache/stability/.
#
#   STEPS=1000 nohup nice -n 15 scripts/stability_comparison.sh > .cache/stability.log 2>&1 &
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${PY:-$ROOT/.cache/venv-train/bin/python}
STEPS=${STEPS:-1000}
CROP=${CROP:-128}
S=starry_night
OUT=.cache/stability
mkdir -p "$OUT"
SNAP=$(printf ".cache/train/$S-fast/snapshots/step%06d.pt" "$STEPS")
[ -f "$SNAP" ] || { echo "error: $SNAP missing (train $S first; snapshots every 500 steps)" >&2; exit 2; }
"$PY" scripts/train.py --style "$S" --width fast --steps "$STEPS" --crop "$CROP" --style-weight 1 --content-weight 1 \
    --tv-weight 10 --temporal-weight 0
"$PY" scripts/export_onnx.py --run "$SNAP" --name "${S}_temporal_step$STEPS" --out-dir "$OUT"
"$PY" scripts/export_onnx.py --run ".cache/train/$S-fast-notemporal" --name "${S}_notemporal_step$STEPS" --out-dir "$OUT"
"$PY" scripts/eval_stability.py "$OUT/${S}_temporal_step$STEPS.onnx" "$OUT/${S}_notemporal_step$STEPS.onnx" \
    | tee "$OUT/stability.txt"
