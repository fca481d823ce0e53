#!/usr/bin/env bash
# Storms: the styletransfer element started and stopped, re-modelled and multiplied far more
# often than a real stream would, and Ctrl-C during `stylize convert`. Run by hand, not in CI;
# the figures go to docs/RELIABILITY.md ("Long runs and storms").
#
#   scripts/reliability/storms.sh                  all of them (about two minutes on 2 cores)
#   scripts/reliability/storms.sh cycles swaps     some: cycles swaps tee ctrl-c
#
# Environment: CYCLES (default 1000), SWAPS (1000), TEE_FRAMES (300), TRIALS (20, Ctrl-C
# trials), STORM_TIMEOUT (seconds one step may take before it counts as a hang, 30).
# Each storm prints JSON; they are also kept in out/reliability/. Exit status 1 when any
# storm failed its check or hung.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

STORMS=("$@")
[ ${#STORMS[@]} -gt 0 ] || STORMS=(cycles swaps tee ctrl-c)
RESULTS=out/reliability
mkdir -p "$RESULTS"

echo "storms: building (release)" >&2
cargo build --release --quiet --example storm || exit 1
STORM=target/release/examples/storm

failed=()
for s in "${STORMS[@]}"; do
    echo "storms: $s" >&2
    case "$s" in
        cycles) args=(cycles "${CYCLES:-1000}") ;;
        swaps) args=(swaps "${SWAPS:-1000}") ;;
        tee) args=(tee "${TEE_FRAMES:-300}") ;;
        ctrl-c)
            TRIALS=${TRIALS:-20} scripts/reliability/ctrl_c_trials.sh | tee "$RESULTS/ctrl-c.txt" ||
                failed+=("$s")
            continue
            ;;
        *)
            echo "storms: unknown storm '$s' (cycles, swaps, tee, ctrl-c)" >&2
            exit 2
            ;;
    esac
    "$STORM" "${args[@]}" | tee "$RESULTS/$s.json"
    rc=${PIPESTATUS[0]}
    case $rc in
        0) ;;
        3) echo "storms: $s HUNG (see $RESULTS/$s.json)" >&2; failed+=("$s") ;;
        *) echo "storms: $s FAILED (exit $rc)" >&2; failed+=("$s") ;;
    esac
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "storms: failed: ${failed[*]}" >&2
    exit 1
fi
echo "storms: all passed; results in $RESULTS/" >&2
