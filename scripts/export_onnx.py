#!/usr/bin/env python3
"""Export a trained generator to ONNX (fp32 and fp16) with the metadata the Rust engine reads.

  python scripts/export_onnx.py --run .cache/train/starry_night-fast --name starry_night

Writes models/<name>.onnx (fp32; its last convolution in the space-to-depth form that ONNX
Runtime's CPU runs faster, see scripts/stylize_train/onnx_opt.py) and models/<name>.fp16.onnx
(fp16 input, output and weights; instance normalisation runs in fp32 between Casts). Graph contract: input `input`, output
`output`, NCHW, RGB, values 0-255 in and out (the network clamps its output), dynamic batch,
height and width; height and width must be multiples of 4. Opset 18.

metadata_props: stylize.layout, stylize.channel_order, stylize.input_range, stylize.output_range,
stylize.multiple_of, stylize.style, stylize.width, stylize.license, stylize.training_data,
stylize.iterations, stylize.source_commit, stylize.description.

Checks that ONNX Runtime agrees with PyTorch (fp32 and fp16) on a non-square size and on a
held-out photo when ../shared/data is present; exits non-zero if not. Does not need ../shared.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stylize_train.data import REPO_ROOT  # noqa: E402

OPSET = 18
DEFAULT_LICENSE = "MIT"
DEFAULT_DATA = ("content: BSDS500 train+val (non-commercial research/teaching) and SUN80 (research use) "
                "photos; style: {style} (public domain painting); loss network: VGG16 ImageNet, "
                "Simonyan & Zisserman, CC BY 4.0")
STYLE_TITLES = {
    "starry_night": "The Starry Night (Van Gogh, 1889)",
    "the_scream": "The Scream (Munch, 1893)",
    "composition_vii": "Composition VII (Kandinsky, 1913)",
    "wave": "The Great Wave off Kanagawa (Hokusai, c.1831)",
    "wave_crop": "The Great Wave off Kanagawa, crop (Hokusai, c.1831)",
    "udnie": "Udnie (Picabia, 1913)",
    "shipwreck": "The Shipwreck (Turner, 1805)",
}


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True)
        return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "uncommitted"
    except OSError:
        return "uncommitted"


def load_generator(path: Path):
    import torch
    from stylize_train.models import Generator
    p = path / "final.pt" if path.is_dir() else path
    if path.is_dir() and not p.exists():
        p = path / "ckpt.pt"
    ck = torch.load(p, map_location="cpu", weights_only=False)
    cfg = ck["config"]
    gen = Generator(cfg["width"], cfg.get("n_res", 5))
    gen.load_state_dict(ck["gen"])
    gen.eval()
    gen.clamp_output = True
    return gen, cfg, ck["step"], ck.get("wall", 0.0), p


def to_fp16(model):
    """fp32 -> fp16 graph: fp16 I/O and weights; InstanceNormalization stays fp32 (Cast in/out)
    because its variance overflows/loses precision in fp16; Resize scales stay fp32 (spec)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    keep32 = set()
    for n in g.node:
        if n.op_type == "Resize":
            keep32.update(n.input[1:])
        if n.op_type == "InstanceNormalization":
            keep32.update(n.input[1:])
    for init in g.initializer:
        if init.data_type == TensorProto.FLOAT and init.name not in keep32:
            arr = numpy_helper.to_array(init).astype(np.float16)
            init.CopyFrom(numpy_helper.from_array(arr, init.name))
    new_nodes = []
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value" and a.t.data_type == TensorProto.FLOAT and n.output[0] not in keep32:
                    a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float16), a.t.name))
        if n.op_type == "InstanceNormalization":
            x32, y32 = n.input[0] + "__f32", n.output[0] + "__f32"
            new_nodes.append(helper.make_node("Cast", [n.input[0]], [x32], to=TensorProto.FLOAT,
                                              name=n.name + "_cast_in"))
            y16 = n.output[0]
            n.input[0] = x32
            n.output[0] = y32
            new_nodes.append(n)
            new_nodes.append(helper.make_node("Cast", [y32], [y16], to=TensorProto.FLOAT16,
                                              name=n.name + "_cast_out"))
        else:
            new_nodes.append(n)
    del g.node[:]
    g.node.extend(new_nodes)
    for v in list(g.input) + list(g.output):
        v.type.tensor_type.elem_type = TensorProto.FLOAT16
    del g.value_info[:]
    m = onnx.shape_inference.infer_shapes(m, strict_mode=True)
    onnx.checker.check_model(m, full_check=True)
    return m


def set_meta(model, meta: dict):
    del model.metadata_props[:]
    for k, v in meta.items():
        e = model.metadata_props.add()
        e.key, e.value = k, str(v)


def ort_run(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return s.run(["output"], {"input": x})[0]


def check(gen, fp32: Path, fp16: Path, inputs: dict) -> bool:
    import torch
    ok = True
    for label, x in inputs.items():
        with torch.no_grad():
            ref = gen(torch.from_numpy(x)).numpy()
        y32 = ort_run(fp32, x)
        y16 = ort_run(fp16, x.astype(np.float16)).astype(np.float32)
        d32, d16 = np.abs(y32 - ref), np.abs(y16 - ref)
        r32 = d32.max() <= 0.05 and y32.shape == ref.shape
        r16 = d16.max() <= 4.0 and d16.mean() <= 0.5 and y16.shape == ref.shape
        rng_ok = y32.min() >= 0 and y32.max() <= 255
        print(f"  {label} {x.shape}: fp32 max|diff| {d32.max():.4g} mean {d32.mean():.3g}; "
              f"fp16 max|diff| {d16.max():.4g} mean {d16.mean():.3g} (0-255 scale); "
              f"output range [{y32.min():.1f}, {y32.max():.1f}] -> {'ok' if r32 and r16 and rng_ok else 'FAIL'}")
        ok &= bool(r32 and r16 and rng_ok)
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="training run dir (uses final.pt, else ckpt.pt) or a .pt file")
    ap.add_argument("--name", required=True, help="model file name without .onnx")
    ap.add_argument("--out-dir", default=str(REPO_ROOT / "models"))
    ap.add_argument("--description", help="one line; default derived from the style and width")
    ap.add_argument("--license", default=DEFAULT_LICENSE)
    ap.add_argument("--training-data")
    ap.add_argument("--max-mb", type=float, default=2.0, help="fail if the fp32 fast model is larger")
    args = ap.parse_args()

    import onnx
    import torch
    from stylize_train.models import MULTIPLE_OF

    gen, cfg, steps, wall, src = load_generator(Path(args.run))
    style = cfg["style"]
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    p32, p16 = out / f"{args.name}.onnx", out / f"{args.name}.fp16.onnx"
    print(f"exporting {src} (step {steps}, {cfg['width']}) -> {p32}, {p16}")

    tmp = REPO_ROOT / ".cache" / f"export-{args.name}.onnx"
    tmp.parent.mkdir(exist_ok=True)
    ex = torch.rand(2, 3, 64, 96) * 255
    dyn = torch.export.Dim.DYNAMIC
    with torch.no_grad():
        torch.onnx.export(gen, (ex,), str(tmp), input_names=["input"], output_names=["output"],
                          dynamic_shapes=({0: dyn, 2: dyn, 3: dyn},), opset_version=OPSET, dynamo=True,
                          external_data=False)
    model = onnx.load(str(tmp))
    tmp.unlink()
    # stable symbolic dimension names
    for v in list(model.graph.input) + list(model.graph.output):
        for d, name in zip(v.type.tensor_type.shape.dim, ["batch", None, "height", "width"]):
            if name:
                d.ClearField("dim_value")
                d.dim_param = name
    del model.graph.value_info[:]
    model.producer_name = "stylize scripts/export_onnx.py"
    model.doc_string = f"stylize generator: {style} ({cfg['width']})"

    title = STYLE_TITLES.get(style, style)
    meta = {
        "stylize.layout": "nchw",
        "stylize.channel_order": "rgb",
        "stylize.input_range": "0-255",
        "stylize.output_range": "0-255",
        "stylize.multiple_of": str(MULTIPLE_OF),
        "stylize.style": style,
        "stylize.width": cfg["width"],
        "stylize.license": args.license,
        "stylize.training_data": args.training_data or DEFAULT_DATA.format(style=title),
        "stylize.iterations": str(steps),
        "stylize.source_commit": git_commit(),
        "stylize.description": args.description or
        (f"{title} style, Johnson-type feed-forward generator ({cfg['width']} width), trained by stylize "
         f"for {steps} steps at {cfg['crop']}x{cfg['crop']} crops"
         + (" with temporal regularisation" if cfg.get("temporal_weight", 0) > 0 else "")),
    }
    set_meta(model, meta)
    onnx.checker.check_model(model, full_check=True)
    # fp16 (for GPUs) from the plain graph; the fp32 one gets the exact CPU rewrite
    # (stylize_train/onnx_opt.py: the 3-channel output convolution in space-to-depth form).
    m16 = to_fp16(model)
    set_meta(m16, meta)
    onnx.save(m16, str(p16))
    from stylize_train.onnx_opt import split_output_conv
    print(f"  fp32: {split_output_conv(model)} output convolution(s) in space-to-depth form")
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(p32))
    s32, s16 = p32.stat().st_size, p16.stat().st_size
    print(f"  sizes: fp32 {s32 / 1e6:.2f} MB, fp16 {s16 / 1e6:.2f} MB; nodes {len(model.graph.node)}, opset {OPSET}")

    rng = np.random.default_rng(0)
    inputs = {"random": (rng.random((1, 3, 196, 260)) * 255).astype(np.float32),
              "random-batch2": (rng.random((2, 3, 44, 36)) * 255).astype(np.float32)}
    try:
        from stylize_train.data import content_files, load_rgb, shared_data_dir
        import contextlib
        import io
        with contextlib.redirect_stderr(io.StringIO()):
            data = shared_data_dir()
        im = load_rgb(content_files(data, "test")[0]).numpy()
        h, w = im.shape[1] // 4 * 4, im.shape[2] // 4 * 4
        inputs["held-out photo"] = im[None, :, :h, :w].astype(np.float32)
    except SystemExit:
        print("  (../shared/data missing: checking on random inputs only)")
    ok = check(gen, p32, p16, inputs)
    if cfg["width"] == "fast" and s32 > args.max_mb * 1e6:
        print(f"  FAIL: fp32 model is {s32 / 1e6:.2f} MB > {args.max_mb} MB")
        ok = False
    for k, v in meta.items():
        print(f"  {k} = {v}")
    print("EXPORT CHECK PASSED" if ok else "EXPORT CHECK FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
