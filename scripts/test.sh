#!/usr/bin/env bash
# The test command: installs what is missing (scripts/setup.sh), then checks formatting, lints
# and runs every test of the workspace. The inference tests run the real ONNX Runtime (CPU).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh
for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1 && command -v rustup >/dev/null; then
        rustup component add "$component"
    fi
done
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
