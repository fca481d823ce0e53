#!/usr/bin/env bash
# A/B two builds of `stylize convert` on one clip: runs them alternately (A, B, A, B, ...)
# so that drifting background load hits both alike, and prints each run and the medians of
# the conversion's own wall time (`wall_s` of --json), of the process's CPU time (user +
# system) and of how many cores the process kept busy on average (its CPU time over its
# wall time).
#
# Usage: scripts/bench/ab_convert.sh BIN_A BIN_B [CLIP] [ARGS...]
#   BIN_A, BIN_B  two stylize binaries (e.g. a copy of target/release/stylize from before a
#                 change, and the one after)
#   CLIP          default /work/shared/data/video/bikes.mp4
#   ARGS          passed to `convert` (default: --provider cpu --inference-scale 0.25)
# Environment: ROUNDS (default 6), MODEL (default models/starry_night.onnx).
#
# Example, before and after a change:
#   cp target/release/stylize /tmp/stylize-before
#   # ... change, cargo build --release ...
#   scripts/bench/ab_convert.sh /tmp/stylize-before target/release/stylize
set -euo pipefail

if (($# < 2)); then
    sed -n '2,17p' "$0" >&2
    exit 2
fi
cd "$(dirname "$0")/../.."
A=$(realpath "$1")
B=$(realpath "$2")
shift 2
CLIP=${1:-/work/shared/data/video/bikes.mp4}
(($# > 0)) && shift
ARGS=("$@")
((${#ARGS[@]} > 0)) || ARGS=(--provider cpu --inference-scale 0.25)
ROUNDS=${ROUNDS:-6}
MODEL=${MODEL:-models/starry_night.onnx}
for f in "$A" "$B" "$CLIP" "$MODEL"; do
    [[ -e $f ]] || { echo "error: $f not found" >&2; exit 1; }
done

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
results=$out/results.tsv
for ((r = 1; r <= ROUNDS; r++)); do
    for side in A B; do
        bin=$A
        [[ $side == B ]] && bin=$B
        t0=$(date +%s.%N)
        /usr/bin/time -f "%U %S" -o "$out/time" "$bin" convert "$CLIP" "$out/out.mp4" \
            --model "$MODEL" --force --json "${ARGS[@]}" >"$out/json" 2>"$out/log" || {
            echo "error: $side ($bin) failed; see below" >&2
            tail -n 20 "$out/log" >&2
            exit 1
        }
        t1=$(date +%s.%N)
        proc=$(echo "$t1 - $t0" | bc -l)
        wall=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["wall_s"])' "$out/json")
        cpu=$(awk '{print $1 + $2}' "$out/time")
        printf '%s\t%s\t%s\t%s\n' "$side" "$wall" "$cpu" "$proc" >>"$results"
        printf '# round %d %s: wall %.3f s, cpu %.2f s\n' "$r" "$side" "$wall" "$cpu" >&2
    done
done

python3 - "$results" "$A" "$B" <<'EOF'
import statistics as st, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()]
names = {"A": sys.argv[2], "B": sys.argv[3]}
med = {}
for side in "AB":
    w = [float(r[1]) for r in rows if r[0] == side]
    c = [float(r[2]) for r in rows if r[0] == side]
    p = [float(r[3]) for r in rows if r[0] == side]
    busy = [ci / pi for pi, ci in zip(p, c)]
    med[side] = st.median(w)
    print(f"{side}: median wall {st.median(w):.3f} s (min {min(w):.3f}), median CPU {st.median(c):.2f} s, "
          f"cores busy {st.median(busy):.2f}  [{names[side]}]")
print(f"B/A median wall: {med['B'] / med['A']:.3f}")
EOF
