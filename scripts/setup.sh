#!/usr/bin/env bash
# Installs what stylize needs on Debian 12 / Ubuntu: GStreamer 1.22, build tools and the
# ONNX Runtime library (from the PyPI wheel, into the project cache at .cache/, which git
# ignores). Idempotent and quiet when everything is present. Run as root or through sudo.
#
#   scripts/setup.sh          CPU ONNX Runtime
#   scripts/setup.sh --gpu    also onnxruntime-gpu (CUDA + TensorRT providers) with the
#                             CUDA 13 and cuDNN 9 runtime wheels it needs
set -euo pipefail

ORT_VERSION=1.31.1
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE="${STYLIZE_CACHE_DIR:-$ROOT/.cache}"
GPU=0

for arg in "$@"; do
    case "$arg" in
        --gpu) GPU=1 ;;
        -h | --help)
            sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "setup.sh: unknown argument '$arg' (expected --gpu or --help)" >&2
            exit 2
            ;;
    esac
done

say() { echo "setup: $*" >&2; }
die() {
    echo "setup: error: $*" >&2
    exit 1
}

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "not root and no sudo: run 'sudo scripts/setup.sh'"
    SUDO=(sudo)
fi

# Retries a command: the image's apt hooks and unattended upgrades can hold the dpkg lock.
retry() {
    local n=1
    until "$@"; do
        if [ $n -ge 5 ]; then return 1; fi
        say "'$*' failed (attempt $n), retrying in $((n * 5)) s"
        sleep $((n * 5))
        n=$((n + 1))
    done
}

# --- Debian packages -----------------------------------------------------------------------
PKGS=(
    pkg-config build-essential ca-certificates python3 python3-pip
    libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
    gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-plugins-base-apps
    libclang1-14 libclang-common-14-dev python3-gi gir1.2-gstreamer-1.0
)
missing=()
for p in "${PKGS[@]}"; do
    # python3/pip may come from elsewhere (pyenv, a venv): only ask apt when absent.
    case "$p" in
        python3) command -v python3 >/dev/null && continue ;;
        python3-pip) python3 -m pip --version >/dev/null 2>&1 && continue ;;
    esac
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    retry "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 -qq update >/dev/null ||
        die "apt-get update failed"
    retry "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 -qq install -y --no-install-recommends \
        "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
fi

command -v cargo >/dev/null ||
    die "no Rust toolchain: install Rust 1.88 or newer (https://rustup.rs), then run this again"

# --- ONNX Runtime ----------------------------------------------------------------------------
# Extracts the shared libraries from a wheel's onnxruntime/capi/ into $2.
extract_capi() {
    python3 - "$1" "$2" <<'PY'
import os, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
os.makedirs(dest, exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist()
             if n.startswith("onnxruntime/capi/") and ".so" in os.path.basename(n)
             and not os.path.basename(n).startswith("onnxruntime_pybind")]
    if not names:
        sys.exit(f"no shared libraries under onnxruntime/capi/ in {wheel}")
    for n in names:
        out = os.path.join(dest, os.path.basename(n))
        with z.open(n) as src, open(out + ".part", "wb") as dst:
            dst.write(src.read())
        os.replace(out + ".part", out)
PY
}

# Downloads one wheel (no dependencies) into $CACHE/wheels and prints its path.
fetch_wheel() {
    local spec=$1 dir="$CACHE/wheels"
    mkdir -p "$dir"
    retry python3 -m pip download -q --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_12_x86_64 \
        --python-version 3.11 -d "$dir" "$spec" >&2 || die "could not download $spec from PyPI"
    local name=${spec%%[=~<>]*}
    ls -t "$dir"/"${name//-/_}"-*.whl 2>/dev/null | head -n1
}

CPU_DIR="$CACHE/onnxruntime/cpu"
if [ ! -f "$CPU_DIR/libonnxruntime.so.$ORT_VERSION" ]; then
    say "fetching ONNX Runtime $ORT_VERSION (CPU) from PyPI"
    wheel=$(fetch_wheel "onnxruntime==$ORT_VERSION")
    extract_capi "$wheel" "$CPU_DIR" || die "could not extract ONNX Runtime from $wheel"
    ln -sf "libonnxruntime.so.$ORT_VERSION" "$CPU_DIR/libonnxruntime.so"
fi

if [ "$GPU" = 1 ]; then
    GPU_DIR="$CACHE/onnxruntime/gpu"
    if [ ! -f "$GPU_DIR/libonnxruntime.so.$ORT_VERSION" ]; then
        say "fetching onnxruntime-gpu $ORT_VERSION with CUDA 13 / cuDNN 9 runtime wheels"
        wheel=$(fetch_wheel "onnxruntime-gpu==$ORT_VERSION")
        extract_capi "$wheel" "$GPU_DIR" || die "could not extract ONNX Runtime GPU from $wheel"
        ln -sf "libonnxruntime.so.$ORT_VERSION" "$GPU_DIR/libonnxruntime.so"
    fi
    # The CUDA provider dlopens these by soname; keep them beside libonnxruntime so that the
    # loader finds them through the provider's $ORIGIN rpath.
    if [ ! -f "$GPU_DIR/.cuda-libs" ]; then
        # The ranges onnxruntime-gpu 1.31.1 declares for its "cuda" and "cudnn" extras, plus
        # cuBLAS, which its CUDA provider links against.
        for spec in "nvidia-cuda-runtime~=13.0" "nvidia-cublas~=13.0" "nvidia-cufft~=12.0" \
            "nvidia-curand~=10.0" "nvidia-cuda-nvrtc~=13.0" "nvidia-cudnn-cu13~=9.0"; do
            wheel=$(fetch_wheel "$spec")
            python3 - "$wheel" "$GPU_DIR" <<'PY' || die "could not extract $spec"
import os, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for n in z.namelist():
        base = os.path.basename(n)
        if "/lib/" in n and ".so" in base:
            with z.open(n) as src, open(os.path.join(dest, base), "wb") as dst:
                dst.write(src.read())
PY
        done
        touch "$GPU_DIR/.cuda-libs"
    fi
fi
exit 0
