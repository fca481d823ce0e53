#!/usr/bin/env bash
# x264 settings on stylised frames: CPU time, size and luma PSNR of each option string.
#
# Stylises CLIP once with the plugin (target/release/libgststyletransfer.so) into raw I420
# frames, then encodes them with x264 as `stylize convert` does with the model on the CPU
# (`superfast`, no trellis, one thread, constant quality 20, no VBV) plus each OPTIONS
# string, best of ROUNDS runs, and measures each file against the raw frames.
#
# Usage: scripts/bench/x264_settings.sh CLIP [OPTIONS...]
#   OPTIONS  x264 option strings, e.g. "" "partitions=none" "partitions=none:b-adapt=0"
#            ("" is x264enc's own settings; default: "" and "partitions=none")
# Environment: SIZE (WxH to scale the clip to first, default its own size, made even),
# SCALE (inference scale, default 0.25), FRAMES (default 250), ROUNDS
# (default 5), INSTRUCTIONS (1: also count the instructions the encoder pipeline executes,
# with valgrind's cachegrind, once per option: exact where CPU time moves by 20 % between
# runs here; about a minute per option), MODEL (default models/starry_night.onnx), VENV
# (default .cache/venv-bench,
# with numpy and opencv: scripts/bench/requirements.txt), OUT_DIR (default
# /tmp/stylize-x264).
#
# Example (session 7, docs/PERFORMANCE.md):
#   scripts/bench/x264_settings.sh /work/shared/data/video/bikes.mp4 "" partitions=none
#   SIZE=640x360 scripts/bench/x264_settings.sh /work/shared/data/video/bigbuckbunny.mp4
set -euo pipefail

cd "$(dirname "$0")/../.."
CLIP=${1:?usage: scripts/bench/x264_settings.sh CLIP [OPTIONS...]}
shift
(($# > 0)) || set -- "" "partitions=none"
SCALE=${SCALE:-0.25}
FRAMES=${FRAMES:-250}
ROUNDS=${ROUNDS:-5}
MODEL=${MODEL:-models/starry_night.onnx}
PY=${VENV:-.cache/venv-bench}/bin/python
OUT_DIR=${OUT_DIR:-/tmp/stylize-x264}
[[ -f $CLIP ]] || { echo "error: $CLIP not found" >&2; exit 1; }
[[ -x $PY ]] || { echo "error: $PY missing (python3 -m venv .cache/venv-bench && .cache/venv-bench/bin/pip install -r scripts/bench/requirements.txt)" >&2; exit 1; }
[[ -f target/release/libgststyletransfer.so ]] || cargo build --release
mkdir -p "$OUT_DIR"

raw=$OUT_DIR/frames.yuv
# Even sizes, as 4:2:0 needs; about the first FRAMES frames (identity lets a few more pass
# after its EOS; the count is printed).
if [[ -n ${SIZE:-} ]]; then
    w=$((${SIZE%x*} / 2 * 2)) h=$((${SIZE#*x} / 2 * 2))
else
    read -r w h < <("$PY" -c 'import cv2,sys; c=cv2.VideoCapture(sys.argv[1]); print(int(c.get(3))//2*2, int(c.get(4))//2*2)' "$CLIP")
fi
GST_PLUGIN_PATH=$PWD/target/release gst-launch-1.0 -q filesrc location="$CLIP" ! decodebin \
    ! videoconvertscale ! "video/x-raw,width=$w,height=$h,pixel-aspect-ratio=1/1" \
    ! identity eos-after="$FRAMES" \
    ! videoconvert ! video/x-raw,format=BGRx \
    ! styletransfer model="$MODEL" provider=cpu inference-scale="$SCALE" \
    ! videoconvert ! video/x-raw,format=I420 ! filesink location="$raw"
echo "# $CLIP: $((($(stat -c %s "$raw")) / (w * h * 3 / 2))) stylised ${w}x$h frames at inference scale $SCALE"

# encode OPTIONS OUT: the raw frames through x264 as `stylize convert` sets it up with the
# model on the CPU (src/convert/mod.rs, video_encoder), plus OPTIONS; under cachegrind when
# VALGRIND=1.
encode() {
    local run=()
    [[ ${VALGRIND:-0} == 1 ]] && run=(valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null)
    "${run[@]}" gst-launch-1.0 -q filesrc location="$raw" \
        ! rawvideoparse width="$w" height="$h" format=i420 framerate=25/1 \
        ! x264enc speed-preset=superfast trellis=false threads=1 pass=qual quantizer=20 \
        vbv-buf-capacity=0 ${1:+option-string="$1"} \
        ! h264parse ! mp4mux ! filesink location="$2"
}

for opts in "$@"; do
    out=$OUT_DIR/out.mp4
    best=
    for ((r = 0; r < ROUNDS; r++)); do
        t=$({ TIMEFORMAT='%U %S'; time encode "$opts" "$out"; } 2>&1 | tail -n 1 | awk '{print $1 + $2}')
        best=$(awk -v a="$t" -v b="${best:-$t}" 'BEGIN { print (a < b) ? a : b }')
    done
    instr=
    if [[ ${INSTRUCTIONS:-0} == 1 ]]; then
        instr=$(VALGRIND=1 encode "$opts" "$OUT_DIR/instr.mp4" 2>&1 \
            | awk '/I *refs:/ { gsub(",", "", $NF); printf "  %.0fM instructions", $NF / 1e6 }')
    fi
    # Decoded back to I420 by GStreamer, so the luma planes compare directly.
    gst-launch-1.0 -q filesrc location="$out" ! qtdemux ! h264parse ! avdec_h264 \
        ! video/x-raw,format=I420 ! filesink location="$OUT_DIR/decoded.yuv"
    psnr=$("$PY" - "$raw" "$OUT_DIR/decoded.yuv" "$w" "$h" <<'EOF'
import sys
import numpy as np
w, h = int(sys.argv[3]), int(sys.argv[4])
def luma(path):
    return np.fromfile(path, np.uint8).reshape(-1, w * h * 3 // 2)[:, : w * h].astype(np.float64)
ref, dec = luma(sys.argv[1]), luma(sys.argv[2])
n = min(len(ref), len(dec))
mse = ((ref[:n] - dec[:n]) ** 2).mean()
print(f"{10 * np.log10(255 ** 2 / mse):.2f}")
EOF
)
    printf '%-40s CPU %5.2f s (best of %d)%s  %9d bytes  luma PSNR %s dB\n' \
        "[${opts}]" "$best" "$ROUNDS" "$instr" "$(stat -c %s "$out")" "$psnr"
done
