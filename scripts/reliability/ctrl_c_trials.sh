#!/usr/bin/env bash
# Ctrl-C during `stylize convert` at random moments. Builds the release binary, makes a
# short clip (10 s, 320x240, H.264 + Opus in Matroska) with gst-launch, times one whole
# conversion, then TRIALS times: starts a conversion to .mp4, sends SIGINT after a random
# delay between 0 and 1.2x that time, and checks that
#   - the command ends (a hang is killed after 120 s and counted),
#   - it exits 130 (interrupted) or 0 (finished before the signal),
#   - the target is absent, or complete: decodes to the same frame count as an uninterrupted
#     run and gst-discoverer-1.0 reads it,
#   - no hidden partial file (.NAME.partial-PID.EXT) is left beside it.
#
#   scripts/reliability/ctrl_c_trials.sh          TRIALS=20, the small test model
#   TRIALS=50 MODEL=starry_night scripts/reliability/ctrl_c_trials.sh
#
# Exit status 1 when any trial left a broken target or a partial file, hung, or exited
# with another status.
set -euo pipefail
set -m # background jobs get the default SIGINT disposition, as under a terminal
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

TRIALS=${TRIALS:-20}
MODEL=${MODEL:-tests/data/models/gan_pm1_mult8.onnx}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ctrl_c_trials.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

cargo build --release --quiet --bin stylize --example storm
BIN=target/release/stylize
COUNT=target/release/examples/storm

CLIP="$WORK/clip.mkv"
gst-launch-1.0 -q -e \
    videotestsrc num-buffers=300 pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 ! \
    x264enc ! h264parse ! mux. \
    audiotestsrc num-buffers=431 ! audioconvert ! opusenc ! mux. \
    matroskamux name=mux ! filesink location="$CLIP" >/dev/null
in_frames=$("$COUNT" count-frames "$CLIP")

OUT_DIR="$WORK/out"
mkdir -p "$OUT_DIR"
OUT="$OUT_DIR/clip.mp4"
ARGS=(convert "$CLIP" "$OUT" --model "$MODEL" --force)

start=$(date +%s%N)
"$BIN" "${ARGS[@]}" >"$WORK/full.log" 2>&1
full_ms=$((($(date +%s%N) - start) / 1000000))
want=$("$COUNT" count-frames "$OUT")
echo "clip: $in_frames frames; an uninterrupted conversion takes $full_ms ms and writes $want frames"
[ "$want" = "$in_frames" ] || echo "note: the output has $want frames, the input $in_frames"

absent=0 complete=0 broken=0 leftover=0 hung=0 odd_exit=0
for i in $(seq 1 "$TRIALS"); do
    rm -f "$OUT"
    delay=$((((RANDOM << 15) | RANDOM) % (full_ms * 12 / 10 + 1)))
    # The binary itself in the background (not a function: $! would be a subshell, which
    # holds SIGINT until its child ends).
    "$BIN" "${ARGS[@]}" >"$WORK/trial.log" 2>&1 &
    pid=$!
    sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
    kill -INT "$pid" 2>/dev/null && sent=yes || sent="no (already ended)"
    waited=0
    while kill -0 "$pid" 2>/dev/null && [ $waited -lt 1200 ]; do
        sleep 0.1
        waited=$((waited + 1))
    done
    if kill -0 "$pid" 2>/dev/null; then
        hung=$((hung + 1))
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rc=0
    wait "$pid" || rc=$?
    case $rc in 0 | 130) ;; *) odd_exit=$((odd_exit + 1)) ;; esac
    if [ ! -e "$OUT" ]; then
        state=absent
        absent=$((absent + 1))
    else
        got=$("$COUNT" count-frames "$OUT" 2>/dev/null || echo "undecodable")
        if [ "$got" = "$want" ] && gst-discoverer-1.0 "$OUT" >/dev/null 2>&1; then
            state="complete ($got frames)"
            complete=$((complete + 1))
        else
            state="BROKEN ($got frames)"
            broken=$((broken + 1))
        fi
    fi
    left=$(find "$OUT_DIR" -name '.*partial*' | head -n1)
    if [ -n "$left" ]; then
        leftover=$((leftover + 1))
        rm -f "$OUT_DIR"/.*partial*
        left=" LEFT $(basename "$left")"
    fi
    printf 'trial %2d: SIGINT after %5d ms (sent: %s), exit %d, target %s%s\n' \
        "$i" "$delay" "$sent" "$rc" "$state" "$left"
done
echo "summary: $TRIALS trials: $absent absent, $complete complete, $broken broken," \
    "$leftover partial files left, $hung hung, $odd_exit other exit statuses"
[ $broken -eq 0 ] && [ $leftover -eq 0 ] && [ $hung -eq 0 ] && [ $odd_exit -eq 0 ]
