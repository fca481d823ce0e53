#!/usr/bin/env bash
# The quality cost of CPU real-time mode: the shipped default model at inference scale 1
# against scale $SCALE with the guided and with the bilinear upsampler, on every clip in
# $VIDEO_DIR, at 640x360. Prints one JSON line per clip (mean absolute difference from the
# scale-1 output, 0-255) and writes a sheet per clip: input | scale 1 | guided | bilinear.
#
# Usage: scripts/bench/realtime_quality.sh
# Environment: VIDEO_DIR (default ../shared/data/video), SCALE (0.25), FRAMES (30),
#              MODEL (the shipped default), OUT_DIR (.cache/realtime_quality)
set -euo pipefail
cd "$(dirname "$0")/../.."
VIDEO_DIR=${VIDEO_DIR:-../shared/data/video}
SCALE=${SCALE:-0.25}
FRAMES=${FRAMES:-30}
OUT_DIR=${OUT_DIR:-.cache/realtime_quality}
[[ -d $VIDEO_DIR ]] || { echo "error: $VIDEO_DIR is missing (set VIDEO_DIR to a folder of clips)" >&2; exit 1; }
mkdir -p "$OUT_DIR"
cargo build --release --example realtime_quality >&2
shopt -s nullglob
for clip in "$VIDEO_DIR"/*.mp4 "$VIDEO_DIR"/*.mkv "$VIDEO_DIR"/*.webm "$VIDEO_DIR"/*.mov; do
    name=$(basename "${clip%.*}")
    target/release/examples/realtime_quality "$clip" --scale "$SCALE" --frames "$FRAMES" \
        --every 10 --sheet "$OUT_DIR/$name.png" ${MODEL:+--model "$MODEL"}
done
echo "sheets in $OUT_DIR" >&2
