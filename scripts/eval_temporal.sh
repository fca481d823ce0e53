#!/usr/bin/env bash
# Temporal stability of the shipped default model on real footage: per-frame (none), ema and
# flow at the same weight, with `stylize eval temporal` (warping error of Lai et al. 2018,
# share of flicker removed, drift from per-frame). Development script: needs ../shared/data.
#
#   scripts/eval_temporal.sh                    # every clip, weight 0.8
#   WEIGHT=0.6 CLIPS="bikes" scripts/eval_temporal.sh
#   FLOW_SCALE=1 FRAMES=125 CLIPS=bikes scripts/eval_temporal.sh   # --flow-scale for the blend
#
# Clips: bikes and bigbuckbunny from ../shared/data/video, and the Sintel frames (made into a
# near-lossless video first). Outputs are encoded near-losslessly (h264 quality 8) so that
# coding noise does not hide flicker. Results: .cache/eval_temporal/<clip>-<mode>.json and a
# markdown table on stdout.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
DATA=${DATA:-$ROOT/../shared/data}
WEIGHT=${WEIGHT:-0.8}
MODEL=${MODEL:-starry_night}
PRESET=${PRESET:-medium}
CLIPS=${CLIPS:-"bikes bigbuckbunny sintel"}
FRAMES=${FRAMES:-}
FLOW_SCALE=${FLOW_SCALE:-0}
MODES=${MODES:-"ema flow"}
OUT=.cache/eval_temporal
mkdir -p "$OUT"
[ -d "$DATA/video" ] || { echo "error: $DATA/video missing (this script needs ../shared/data)" >&2; exit 2; }
cargo build --release --quiet
BIN=target/release/stylize
extra=()
[ -n "$FRAMES" ] && extra+=(--frames "$FRAMES")

clip_path() {
    case "$1" in
        sintel)
            local v="$OUT/sintel.mp4"
            if [ ! -f "$v" ]; then
                gst-launch-1.0 -q multifilesrc location="$DATA/flow/sintel/frame_%04d.png" index=16 stop-index=25 \
                    caps=image/png,framerate=24/1 ! pngdec ! videoconvert ! video/x-raw,format=I420 ! \
                    x264enc pass=quant quantizer=0 speed-preset=ultrafast ! mp4mux ! filesink location="$v" >&2
            fi
            echo "$v" ;;
        *) echo "$DATA/video/$1.mp4" ;;
    esac
}

printf '| clip | mode | weight | E_input | E_output | E_perframe | flicker removed | drift |\n'
printf '|---|---|---|---|---|---|---|---|\n'
for clip in $CLIPS; do
    in=$(clip_path "$clip")
    # Per-frame reference, kept between runs (delete it after changing the model or encoder).
    ref="$OUT/$clip${FRAMES:+-f$FRAMES}-none.mp4"
    [ -f "$ref" ] || "$BIN" convert "$in" "$ref" --model "$MODEL" --temporal none --quality 8 --force "${extra[@]}" >&2
    for mode in $MODES; do
        o="$OUT/$clip${FRAMES:+-f$FRAMES}-$mode-$WEIGHT.mp4"
        "$BIN" convert "$in" "$o" --model "$MODEL" --temporal "$mode" --temporal-weight "$WEIGHT" \
            --flow-preset "$PRESET" --flow-scale "$FLOW_SCALE" --quality 8 --force "${extra[@]}" >&2
        "$BIN" eval temporal --input "$in" --output "$o" --reference "$ref" > "$OUT/$clip-$mode-$WEIGHT.json"
        python3 - "$OUT/$clip-$mode-$WEIGHT.json" "$clip" "$mode" "$WEIGHT" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
f = lambda v: "n/a" if v is None else f"{v:.5f}"
print(f"| {sys.argv[2]} | {sys.argv[3]} | {sys.argv[4]} | {f(r['warp_error_input'])} | {f(r['warp_error_output'])} | "
      f"{f(r['warp_error_reference'])} | {f(r['flicker_removed'])} | {f(r['drift'])} |")
EOF
    done
done
