#!/usr/bin/env python3
"""Content and style loss of the shipped models on the held-out photos (bsds500 test_*).

  python scripts/evaluate_models.py                    # every models/*.onnx (fp32 and fp16)
  python scripts/evaluate_models.py models/starry_night.onnx --limit 50

Runs each ONNX file with ONNX Runtime (the artefact that ships, not the checkpoint), then
measures with the training losses' definitions (scripts/stylize_train/losses.py), unweighted:
  content  mean squared error of VGG16 relu2_2 features, output vs photo
  style    sum over relu1_2..relu4_3 of the mean squared error between Gram matrices (normalised by
           C*H*W) of the output and of the style painting (long side --style-size, as in training)
  tv       total variation (mean squared neighbour differences, 0-255 scale)
Lower is better for each; a retrained model should be compared on the same photos and --limit.
The style comes from the model's stylize.style metadata. Needs ../shared/data.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stylize_train.data import REPO_ROOT, content_files, load_rgb, load_style, shared_data_dir  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help="ONNX files (default: models/*.onnx)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N test_* photos (0 = all 200)")
    ap.add_argument("--style-size", type=int, default=384)
    ap.add_argument("--max-side", type=int, default=480, help="photos resized to at most this long side")
    ap.add_argument("--data-dir")
    args = ap.parse_args()

    data = shared_data_dir(args.data_dir)
    import onnx
    import onnxruntime as ort
    import torch

    from stylize_train import losses as L
    from stylize_train.vgg import LAYER_NAMES, load_vgg

    models = [Path(m) for m in args.models] or sorted((REPO_ROOT / "models").glob("*.onnx"))
    if not models:
        raise SystemExit("error: no models given and none in models/")
    photos = content_files(data, "test")
    if args.limit:
        photos = photos[: args.limit]
    imgs = []
    for f in photos:
        t = load_rgb(f, args.max_side)
        imgs.append(t[:, : t.shape[1] // 4 * 4, : t.shape[2] // 4 * 4].float()[None])
    vgg = load_vgg(data)
    torch.set_grad_enabled(False)
    content_feats = [vgg(x, ["relu2_2"])["relu2_2"] for x in imgs]
    grams = {}

    print(f"{len(imgs)} held-out photos (bsds500 test_*), long side <= {args.max_side}; unweighted losses, lower is better")
    print(f"{'model':34s} {'style':16s} {'content':>10s} {'style':>10s} {'tv':>8s} {'ms/img':>7s}")
    for m in models:
        meta = {p.key: p.value for p in onnx.load(str(m), load_external_data=False).metadata_props}
        style = meta.get("stylize.style")
        if not style:
            print(f"{m.name:34s} (no stylize.style metadata, skipped)")
            continue
        if style not in grams:
            with torch.no_grad():
                grams[style] = {k: L.gram(v) for k, v in vgg(load_style(data, style, args.style_size)).items()}
        s = ort.InferenceSession(str(m), providers=["CPUExecutionProvider"])
        fp16 = s.get_inputs()[0].type == "tensor(float16)"
        c_sum = s_sum = tv_sum = 0.0
        t_run = 0.0
        for x, fc in zip(imgs, content_feats):
            xin = x.numpy().astype(np.float16 if fp16 else np.float32)
            t0 = time.time()
            y = s.run(["output"], {"input": xin})[0]
            t_run += time.time() - t0
            y = torch.from_numpy(y.astype(np.float32))
            fy = vgg(y, LAYER_NAMES)
            c_sum += float(L.content_loss(fy["relu2_2"], fc))
            s_sum += float(L.style_loss(fy, grams[style]))
            tv_sum += float(L.tv_loss(y))
        n = len(imgs)
        print(f"{m.name:34s} {style:16s} {c_sum / n:10.5g} {s_sum / n:10.5g} {tv_sum / n:8.4g} "
              f"{1000 * t_run / n:7.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
