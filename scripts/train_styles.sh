#!/usr/bin/env bash
# Trains the shipped fast-width styles one after another, then exports each to models/ with its
# preview sheet. Resumable: re-run the same command and every run continues from its checkpoint
# in .cache/train/<style>-fast/ (finished runs are only re-exported).
#
#   nohup nice -n 15 scripts/train_styles.sh > .cache/train/train_styles.log 2>&1 &
#
# Environment: STYLES (default "starry_night wave_crop composition_vii"), STEPS, CROP, PY (python
# of the training venv, default .cache/venv-train/bin/python), STYLE_WEIGHT, TV_WEIGHT,
# TEMPORAL_WEIGHT. The comparison without the temporal regulariser: scripts/stability_comparison.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${PY:-$ROOT/.cache/venv-train/bin/python}
STEPS=${STEPS:-2000}
CROP=${CROP:-128}
STYLES=${STYLES:-starry_night wave_crop composition_vii}

style_args() {  # per-style loss weights (chosen by short trials; see the model cards)
    case "$1" in
        *) echo "--style-weight ${STYLE_WEIGHT:-1} --content-weight 1 --tv-weight ${TV_WEIGHT:-10} --temporal-weight ${TEMPORAL_WEIGHT:-30}" ;;
    esac
}

for s in $STYLES; do
    echo "=== $s: training $(date -u +%FT%TZ)"
    # shellcheck disable=SC2046
    "$PY" scripts/train.py --style "$s" --width fast --steps "$STEPS" --crop "$CROP" $(style_args "$s")
    echo "=== $s: export $(date -u +%FT%TZ)"
    "$PY" scripts/export_onnx.py --run ".cache/train/$s-fast" --name "$s"
    "$PY" scripts/make_preview_sheet.py "models/$s.onnx"
done

echo "=== all done $(date -u +%FT%TZ)"
