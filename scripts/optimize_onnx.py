#!/usr/bin/env python3
"""Apply the exact CPU rewrites of scripts/stylize_train/onnx_opt.py to fp32 ONNX generators.

  python scripts/optimize_onnx.py models/starry_night.onnx [more.onnx ...] [--out-dir DIR]

Rewrites each model in place (or into --out-dir), then checks with ONNX Runtime that the new
graph gives the old one's output (max |diff| <= 0.01 on the 0-255 scale) at a few sizes,
batch 2 included, and prints both graphs' single-thread time at 160x92. A model with nothing
to rewrite is left untouched; running it twice changes nothing. scripts/export_onnx.py applies
the same rewrite to the fp32 models it writes.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stylize_train.onnx_opt import split_output_conv  # noqa: E402

TOLERANCE = 0.01
SIZES = [(1, 92, 160), (2, 44, 36), (1, 196, 260)]


def session(model_bytes: bytes, threads: int = 1):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def median_ms(sess, x: np.ndarray, runs: int = 30) -> float:
    name = sess.get_inputs()[0].name
    for _ in range(3):
        sess.run(None, {name: x})
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, {name: x})
        ts.append(time.perf_counter() - t)
    return 1e3 * float(np.median(ts))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--out-dir", type=Path, help="write here instead of rewriting in place")
    args = ap.parse_args()

    import onnx

    ok = True
    rng = np.random.default_rng(0)
    for path in args.models:
        model = onnx.load(str(path))
        before = model.SerializeToString()
        n = split_output_conv(model)
        if n == 0:
            print(f"{path}: nothing to rewrite")
            continue
        onnx.checker.check_model(model, full_check=True)
        after = model.SerializeToString()
        old, new = session(before), session(after)
        name = old.get_inputs()[0].name
        worst = 0.0
        for b, h, w in SIZES:
            x = (rng.random((b, 3, h, w)) * 255).astype(np.float32)
            d = np.abs(old.run(None, {name: x})[0] - new.run(None, {name: x})[0]).max()
            worst = max(worst, float(d))
        x = (rng.random((1, 3, 92, 160)) * 255).astype(np.float32)
        t_old, t_new = median_ms(old, x), median_ms(new, x)
        print(f"{path}: {n} convolution(s) rewritten; max |diff| {worst:.2g} (0-255); "
              f"160x92 one thread {t_old:.2f} -> {t_new:.2f} ms")
        if worst > TOLERANCE:
            print(f"  FAIL: outputs differ by more than {TOLERANCE}; {path} not written")
            ok = False
            continue
        out = args.out_dir / path.name if args.out_dir else path
        out.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(out))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
