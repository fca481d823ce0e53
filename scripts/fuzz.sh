#!/usr/bin/env bash
# Runs each cargo-fuzz target for a bounded time, one job at a time (not part of CI).
#
#   scripts/fuzz.sh                       every target, FUZZ_SECONDS (default 60) each
#   FUZZ_SECONDS=600 scripts/fuzz.sh frame_convert model_spec
#
# Targets (fuzz/fuzz_targets/, harnesses in fuzz/src/lib.rs): model_spec, frame_convert,
# temporal. Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`); the first
# build takes about ten minutes on two cores (every dependency with AddressSanitizer).
# The corpus grows in fuzz/corpus/<target>/ (git-ignored), seeded from fuzz/seeds/<target>/.
# A crash stops that target and leaves its input in fuzz/artifacts/<target>/: fix the bug,
# then copy the input to tests/data/fuzz/<target>/ and add a test in
# tests/fuzz_regressions.rs, which replays every input there with plain `cargo test`.
# Exit status: 0 when no target crashed, 1 otherwise.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SECONDS_EACH=${FUZZ_SECONDS:-60}
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(model_spec frame_convert temporal)

command -v cargo-fuzz >/dev/null || {
    echo "fuzz.sh: cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
    exit 2
}
rustup toolchain list 2>/dev/null | grep -q '^nightly' || {
    echo "fuzz.sh: no nightly toolchain: rustup toolchain install nightly" >&2
    exit 2
}

failed=()
for t in "${TARGETS[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    seeds=()
    [ -d "fuzz/seeds/$t" ] && seeds=("fuzz/seeds/$t")
    echo "fuzz.sh: $t for ${SECONDS_EACH} s" >&2
    log="fuzz/artifacts/$t/last-run.log"
    # -jobs=1 -workers=1: one process, so that the machine stays usable.
    if (cd fuzz && cargo +nightly fuzz run "$t" "corpus/$t" "${seeds[@]/#fuzz\//}" -- \
        -max_total_time="$SECONDS_EACH" -jobs=1 -workers=1 -print_final_stats=1 \
        -timeout=20 -rss_limit_mb=2048) >"$log" 2>&1; then
        execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n1)
        echo "fuzz.sh: $t: no crash, ${execs:-?} executions, corpus $(ls "fuzz/corpus/$t" | wc -l) inputs" >&2
    else
        echo "fuzz.sh: $t: FAILED (see $log):" >&2
        grep -E 'panicked at|SUMMARY|Test unit written' "$log" | head -n 5 >&2 || tail -n 20 "$log" >&2
        failed+=("$t")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: crashed: ${failed[*]}" >&2
    exit 1
fi
