#!/usr/bin/env bash
# The main job on a shipped default: installs what is missing, builds, fetches a sample photo
# from a package registry (NASA's public-domain astronaut portrait, shipped in the PyPI wheel
# of scikit-image; never committed), stylises it with the default shipped model and prints
# where the result is.
#
#   scripts/demo.sh [OUTPUT_DIR]      (default: out/)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT_DIR=${1:-out}

scripts/setup.sh
cargo build --release --quiet

SAMPLES=.cache/samples
SAMPLE=$SAMPLES/astronaut.png
if [ ! -f "$SAMPLE" ]; then
    echo "demo: fetching a sample photo (scikit-image wheel from PyPI)" >&2
    mkdir -p "$SAMPLES/wheel"
    python3 -m pip download -q --no-deps --only-binary=:all: -d "$SAMPLES/wheel" "scikit-image==0.26.0"
    python3 - "$SAMPLES/wheel" "$SAMPLE" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/scikit_image-*.whl")[0]
with zipfile.ZipFile(wheel) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("skimage/data/astronaut.png"))
PY
fi

mkdir -p "$OUT_DIR"
RESULT="$OUT_DIR/astronaut_stylized.png"
target/release/stylize image "$SAMPLE" "$RESULT" --force
echo "demo: original $SAMPLE"
echo "demo: stylised $RESULT"
