#!/usr/bin/env python3
"""Makes the small ONNX test models, the test pictures and the reference outputs under tests/data/.

Run from the repository root (after `pip install -r scripts/requirements-dev.txt` in a venv):

    .cache/venv-tools/bin/python scripts/make_test_models.py

Everything is deterministic (fixed seeds, one ONNX Runtime thread): a second run rewrites
byte-identical files. It writes only under tests/data/ (or --out DIR):

    input.png, input_rgba.png        61x47 test picture (RGB; RGB + alpha gradient)
    models/*.onnx                    one tiny model per model convention, plus bad models
    models/*.onnx.json               sidecar convention files
    models/manifest.json             expected resolved convention of every model
    ref/<model stem>.png             reference outputs (Python onnxruntime, CPU)

The reference pre/post-processing (see `reference()`) is the one the Rust engine implements:
resize with PIL's bilinear to a fixed model size (and back), or edge-pad bottom/right to a
multiple, scale to the model's range, reorder channels, lay out as NCHW/NHWC, run, undo it all,
crop, then round half up and clamp to 8 bits.
"""

import argparse
import json
import math
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

SEED = 20240607
H, W = 47, 61  # the test picture: odd, non-square
N_STYLES = 26
STYLE_INDEX = 2  # the one-hot index of style_weights used for the reference
PRODUCER = "stylize scripts/make_test_models.py"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --------------------------------------------------------------------------------------------
# Test pictures
# --------------------------------------------------------------------------------------------
def make_picture(rng):
    """RGB uint8 [H, W, 3]: colour gradients, hard-edged pure-colour blocks, a checkerboard,
    a thin diagonal line, a disc and a patch of seeded noise."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    img = np.zeros((H, W, 3), np.float64)
    img[..., 0] = 255.0 * x / (W - 1)  # red grows to the right
    img[..., 1] = 255.0 * y / (H - 1)  # green grows downwards
    img[..., 2] = 255.0 * (1.0 - (x + y) / (W + H - 2)) * 0.8 + 30.0  # blue towards top-left
    # pure red / green / blue blocks (channel order shows at once)
    img[4:14, 3:12] = (255, 0, 0)
    img[4:14, 14:23] = (0, 255, 0)
    img[4:14, 25:34] = (0, 0, 255)
    # black/white checkerboard with 2-pixel cells
    cy, cx = np.mgrid[0:14, 0:16]
    checker = (((cy // 2) + (cx // 2)) % 2 * 255).astype(np.float64)
    img[3:17, 40:56] = checker[..., None]
    # a yellow disc with a hard edge
    disc = (x - 47.0) ** 2 + (y - 33.0) ** 2 <= 7.5**2
    img[disc] = (250, 220, 10)
    # a one-pixel white diagonal line
    for i in range(20):
        img[18 + i, 30 + i] = (255, 255, 255)
    # seeded colour noise texture
    img[27:44, 3:24] = rng.integers(0, 256, size=(17, 21, 3))
    return np.clip(np.floor(img + 0.5), 0, 255).astype(np.uint8)


def save_png(path, array, mode):
    Image.fromarray(array, mode).save(path, format="PNG")


# --------------------------------------------------------------------------------------------
# Model building helpers
# --------------------------------------------------------------------------------------------
def mixing_conv(rng, cin, cout, k, mix, noise, bias):
    """A conv weight [cout, cin, k, k]: `mix` (an asymmetric [cout, cin] matrix) on the centre
    tap plus seeded noise on every tap, so that channel order and layout matter."""
    w = rng.normal(0.0, noise, size=(cout, cin, k, k))
    w[:, :, k // 2, k // 2] += np.asarray(mix, np.float64)
    return w.astype(np.float32), np.asarray(bias, np.float32)


# asymmetric 3x3 channel mixing (not a permutation, not symmetric)
MIX = [[0.70, 0.25, -0.05], [-0.10, 0.55, 0.40], [0.30, -0.15, 0.75]]


def init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def vinfo(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def finish(graph, opset, ir_version=None, metadata=None, doc=""):
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset)],
        producer_name=PRODUCER,
        doc_string=doc,
    )
    if ir_version is not None:
        model.ir_version = ir_version
    else:
        model.ir_version = 8  # ONNX 1.10+: opset <= 17, loads in every recent onnxruntime
    for k, v in (metadata or {}).items():
        p = model.metadata_props.add()
        p.key, p.value = k, v
    onnx.checker.check_model(model)
    return model


def model_fns_bgr_224_opset7(rng):
    """Old fast-neural-style export: opset 7, IR 3, BGR 0-255, fixed 224x224.
    IR 3 requires every initializer to be listed as a graph input too (as old exporters did)."""
    w1, b1 = mixing_conv(rng, 3, 4, 3, MIX + [[0.2, 0.3, 0.5]], 0.05, [12.0, -8.0, 5.0, -20.0])
    w2 = (np.array([[0.8, 0.1, 0.0, 0.2], [0.0, 0.6, 0.3, 0.1], [0.25, -0.1, 0.7, 0.05]],
                   np.float32).reshape(3, 4, 1, 1))
    b2 = np.array([6.0, 15.0, -4.0], np.float32)
    skip_scale = np.array([0.25, 0.1, -0.15], np.float32).reshape(1, 3, 1, 1)
    inits = [init("conv1.weight", w1), init("conv1.bias", b1), init("conv2.weight", w2),
             init("conv2.bias", b2), init("skip.scale", skip_scale)]
    nodes = [
        helper.make_node("Conv", ["input1", "conv1.weight", "conv1.bias"], ["c1"],
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "conv2.weight", "conv2.bias"], ["c2"],
                         kernel_shape=[1, 1]),
        helper.make_node("Mul", ["input1", "skip.scale"], ["s"]),
        helper.make_node("Add", ["c2", "s"], ["sum"]),
        helper.make_node("Clip", ["sum"], ["output1"], min=0.0, max=255.0),
    ]
    x = vinfo("input1", TensorProto.FLOAT, [1, 3, 224, 224])
    weight_inputs = [vinfo(t.name, TensorProto.FLOAT, list(t.dims)) for t in inits]
    graph = helper.make_graph(nodes, "fns_bgr", [x] + weight_inputs,
                              [vinfo("output1", TensorProto.FLOAT, [1, 3, 224, 224])],
                              initializer=inits)
    return finish(graph, 7, ir_version=3)


def model_fns_rgb_720(rng):
    w, b = mixing_conv(rng, 3, 3, 3, MIX, 0.04, [10.0, -6.0, 14.0])
    inits = [init("w", w), init("b", b), init("lo", np.float32(0.0)), init("hi", np.float32(255.0))]
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["c"], kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["c", "lo", "hi"], ["output"]),
    ]
    graph = helper.make_graph(nodes, "fns_rgb_720",
                              [vinfo("input", TensorProto.FLOAT, [1, 3, 720, 720])],
                              [vinfo("output", TensorProto.FLOAT, [1, 3, 720, 720])],
                              initializer=inits)
    return finish(graph, 13)


UNIT_META = {
    "stylize.input_range": "0-1",
    "stylize.output_range": "0-1",
    "stylize.channel_order": "rgb",
    "stylize.layout": "nchw",
    "stylize.multiple_of": "1",
}


def model_multistyle_unit(rng):
    w, b = mixing_conv(rng, 3, 3, 3, np.array(MIX) * 4.0, 0.15, [-1.8, -2.2, -1.5])
    m = rng.normal(0.0, 0.8, size=(N_STYLES, 3)).astype(np.float32)
    m[STYLE_INDEX] = [0.9, -0.7, 0.4]  # make sure the reference style does something
    inits = [init("w", w), init("b", b), init("style_matrix", m),
             init("style_shape", np.array([1, 3, 1, 1], np.int64))]
    nodes = [
        helper.make_node("Conv", ["content", "w", "b"], ["c"], kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("MatMul", ["style_weights", "style_matrix"], ["sv"]),
        helper.make_node("Reshape", ["sv", "style_shape"], ["sb"]),
        helper.make_node("Add", ["c", "sb"], ["pre"]),
        helper.make_node("Sigmoid", ["pre"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes, "multistyle_unit",
        [vinfo("content", TensorProto.FLOAT, [1, 3, "height", "width"]),
         vinfo("style_weights", TensorProto.FLOAT, [1, N_STYLES])],
        [vinfo("output", TensorProto.FLOAT, [1, 3, "height", "width"])],
        initializer=inits)
    return finish(graph, 17, metadata=UNIT_META)


def model_gan_pm1_mult8(rng):
    """Encoder of three stride-2 convs, decoder of three x2 Resizes, plus a 1x1 skip of the
    input, then Tanh. The Add only lines up when H and W are multiples of 8."""
    c = 4
    inits, nodes = [], []
    prev, cin = "input", 3
    for i in range(3):
        w = (rng.normal(0.0, 0.35, size=(c, cin, 3, 3))).astype(np.float32)
        b = rng.normal(0.0, 0.05, size=(c,)).astype(np.float32)
        inits += [init(f"down{i}.w", w), init(f"down{i}.b", b)]
        nodes += [
            helper.make_node("Conv", [prev, f"down{i}.w", f"down{i}.b"], [f"d{i}"],
                             kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
            helper.make_node("Relu", [f"d{i}"], [f"dr{i}"]),
        ]
        prev, cin = f"dr{i}", c
    inits.append(init("up.scales", np.array([1.0, 1.0, 2.0, 2.0], np.float32)))
    for i, mode in enumerate(["nearest", "linear", "nearest"]):
        nodes.append(helper.make_node("Resize", [prev, "", "up.scales"], [f"u{i}"], mode=mode))
        prev = f"u{i}"
    w_dec = (rng.normal(0.0, 0.3, size=(3, c, 1, 1))).astype(np.float32)
    w_skip, b_skip = mixing_conv(rng, 3, 3, 1, np.array(MIX) * 1.1, 0.05, [0.05, -0.1, 0.08])
    inits += [init("dec.w", w_dec), init("skip.w", w_skip), init("skip.b", b_skip)]
    nodes += [
        helper.make_node("Conv", [prev, "dec.w"], ["dec"], kernel_shape=[1, 1]),
        helper.make_node("Conv", ["input", "skip.w", "skip.b"], ["skip"], kernel_shape=[1, 1]),
        helper.make_node("Add", ["dec", "skip"], ["pre"]),
        helper.make_node("Tanh", ["pre"], ["output"]),
    ]
    graph = helper.make_graph(nodes, "gan_pm1_mult8",
                              [vinfo("input", TensorProto.FLOAT, [1, 3, "height", "width"])],
                              [vinfo("output", TensorProto.FLOAT, [1, 3, "height", "width"])],
                              initializer=inits)
    return finish(graph, 17)


def model_nhwc_unit_fp16(rng):
    """float16 NHWC in and out (computes in float32 inside, as fp16 exports with kept casts do)."""
    w, b = mixing_conv(rng, 3, 3, 3, np.array(MIX) * 4.0, 0.15, [-1.5, -2.0, -2.4])
    inits = [init("w", w), init("b", b)]
    nodes = [
        helper.make_node("Cast", ["image"], ["x32"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["x32"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "w", "b"], ["c"], kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c"], ["s"]),
        helper.make_node("Transpose", ["s"], ["nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Cast", ["nhwc"], ["stylized"], to=TensorProto.FLOAT16),
    ]
    graph = helper.make_graph(nodes, "nhwc_unit_fp16",
                              [vinfo("image", TensorProto.FLOAT16, [1, "height", "width", 3])],
                              [vinfo("stylized", TensorProto.FLOAT16, [1, "height", "width", 3])],
                              initializer=inits)
    meta = {"stylize.layout": "nhwc", "stylize.input_range": "0-1",
            "stylize.output_range": "0-1"}
    return finish(graph, 17, metadata=meta)


# --- bad models ---
def model_bad_classifier(rng):
    scale = init("scale", np.float32(0.5))
    nodes = [helper.make_node("Mul", ["input", "scale"], ["m"]),
             helper.make_node("Softmax", ["m"], ["probabilities"], axis=1)]
    graph = helper.make_graph(nodes, "bad_classifier",
                              [vinfo("input", TensorProto.FLOAT, [1, 1000])],
                              [vinfo("probabilities", TensorProto.FLOAT, [1, 1000])],
                              initializer=[scale])
    return finish(graph, 17)


def simple_conv_model(name, cin, in_elem=TensorProto.FLOAT, stride=1, out_dims=None):
    rng = np.random.default_rng(SEED + cin + stride)
    w = rng.normal(0.0, 0.3, size=(3, cin, 3, 3)).astype(np.float32)
    inits = [init("w", w)]
    nodes, src = [], "input"
    if in_elem != TensorProto.FLOAT:
        nodes.append(helper.make_node("Cast", ["input"], ["xf"], to=TensorProto.FLOAT))
        src = "xf"
    nodes.append(helper.make_node("Conv", [src, "w"], ["output"], kernel_shape=[3, 3],
                                  pads=[1, 1, 1, 1], strides=[stride, stride]))
    out_dims = out_dims or ["height", "width"]
    graph = helper.make_graph(nodes, name,
                              [vinfo("input", in_elem, [1, cin, "height", "width"])],
                              [vinfo("output", TensorProto.FLOAT, [1, 3] + out_dims)],
                              initializer=inits)
    return finish(graph, 17)


def model_bad_logits():
    """A real classifier's shape: an image in ([1,3,H,W]), class probabilities out ([1,10])."""
    rng = np.random.default_rng(SEED + 10)
    w = rng.normal(0.0, 0.2, size=(8, 3, 3, 3)).astype(np.float32)
    fc = rng.normal(0.0, 0.2, size=(10, 8)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                         strides=[2, 2]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fc"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(nodes, "bad_logits",
                              [vinfo("input", TensorProto.FLOAT, [1, 3, "height", "width"])],
                              [vinfo("probabilities", TensorProto.FLOAT, [1, 10])],
                              initializer=[init("w", w), init("fc", fc)])
    return finish(graph, 17)


def model_bad_nan():
    """An image generator whose output is NaN wherever an input value is below 100
    (16 * sqrt(x - 100), 0-255 range): NaN for dark pictures, finite for bright ones."""
    nodes = [
        helper.make_node("Sub", ["input", "floor"], ["d"]),
        helper.make_node("Sqrt", ["d"], ["s"]),
        helper.make_node("Mul", ["s", "gain"], ["output"]),
    ]
    graph = helper.make_graph(nodes, "bad_nan",
                              [vinfo("input", TensorProto.FLOAT, [1, 3, "height", "width"])],
                              [vinfo("output", TensorProto.FLOAT, [1, 3, "height", "width"])],
                              initializer=[init("floor", np.float32(100.0)),
                                           init("gain", np.float32(16.0))])
    return finish(graph, 17)


def model_bad_inf():
    """An image generator that divides by zero: +Inf where the input is above 0, NaN at 0."""
    nodes = [helper.make_node("Div", ["input", "zero"], ["output"])]
    graph = helper.make_graph(nodes, "bad_inf",
                              [vinfo("input", TensorProto.FLOAT, [1, 3, "height", "width"])],
                              [vinfo("output", TensorProto.FLOAT, [1, 3, "height", "width"])],
                              initializer=[init("zero", np.float32(0.0))])
    return finish(graph, 17)


def model_pointwise_1x1():
    """The cheapest sensible generator: a 1x1 colour-mixing conv and a clip, NCHW RGB 0-255,
    free size. For tests of very large frames (8K), where a real model would take seconds."""
    w, b = mixing_conv(np.random.default_rng(SEED + 11), 3, 3, 1, MIX, 0.0, [8.0, -4.0, 6.0])
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["c"], kernel_shape=[1, 1]),
        helper.make_node("Clip", ["c", "lo", "hi"], ["output"]),
    ]
    graph = helper.make_graph(nodes, "pointwise_1x1",
                              [vinfo("input", TensorProto.FLOAT, [1, 3, "height", "width"])],
                              [vinfo("output", TensorProto.FLOAT, [1, 3, "height", "width"])],
                              initializer=[init("w", w), init("b", b),
                                           init("lo", np.float32(0.0)),
                                           init("hi", np.float32(255.0))])
    return finish(graph, 17)


# --------------------------------------------------------------------------------------------
# Reference pre/post-processing (the Rust engine implements exactly this)
# --------------------------------------------------------------------------------------------
def session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def to_model(a, conv):
    x = a.astype(np.float32)
    if conv["channel_order"] == "bgr":
        x = x[..., ::-1]
    r = conv["input_range"]
    if r == "0-1":
        x = x / np.float32(255.0)
    elif r == "-1-1":
        x = x / np.float32(127.5) - np.float32(1.0)
    elif r != "0-255":
        raise ValueError(r)
    if conv["layout"] == "nchw":
        x = x.transpose(2, 0, 1)[None]
    else:
        x = x[None]
    x = np.ascontiguousarray(x, np.float32)
    if conv["input_dtype"] == "float16":
        x = x.astype(np.float16)
    return x


def from_model(y, conv, h, w):
    y = np.asarray(y).astype(np.float32)
    y = y[0].transpose(1, 2, 0) if conv["layout"] == "nchw" else y[0]
    if conv["channel_order"] == "bgr":
        y = y[..., ::-1]
    r = conv["output_range"]
    if r == "0-1":
        y = y * np.float32(255.0)
    elif r == "-1-1":
        y = (y + np.float32(1.0)) * np.float32(127.5)
    elif r != "0-255":
        raise ValueError(r)
    y = y[:h, :w]
    return np.clip(np.floor(y + np.float32(0.5)), 0, 255).astype(np.uint8)


def reference(sess, img, conv, extra_inputs):
    h, w = img.shape[:2]
    a = img
    resized = False
    if conv["fixed_size"] is not None:
        hm, wm = conv["fixed_size"]
        if (hm, wm) != (h, w):
            a = np.asarray(Image.fromarray(a, "RGB").resize((wm, hm), Image.BILINEAR))
            resized = True
    else:
        m = conv["multiple_of"]
        if m > 1:
            ph, pw = math.ceil(h / m) * m, math.ceil(w / m) * m
            a = np.pad(a, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
    ah, aw = a.shape[:2]
    feeds = {conv["input"]: to_model(a, conv)}
    for name, values in extra_inputs.items():
        feeds[name] = np.asarray(values, np.float32).reshape(1, -1)
    y = sess.run(None, feeds)[0]
    # crop to the unpadded size (a resized picture is kept whole, then resized back)
    out = from_model(y, conv, ah, aw) if resized else from_model(y, conv, h, w)
    if resized:
        out = np.asarray(Image.fromarray(out, "RGB").resize((w, h), Image.BILINEAR))
    assert out.shape == (h, w, 3), out.shape
    return out


# --------------------------------------------------------------------------------------------
def write_json(path, obj):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def rel(path, base):
    return os.path.relpath(path, base).replace(os.sep, "/")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data"),
                    help="output folder (default: tests/data under the repository root)")
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    models_dir = os.path.join(out, "models")
    ref_dir = os.path.join(out, "ref")
    os.makedirs(models_dir, exist_ok=True)
    os.makedirs(ref_dir, exist_ok=True)

    rng = np.random.default_rng(SEED)
    img = make_picture(rng)
    input_png = os.path.join(out, "input.png")
    save_png(input_png, img, "RGB")
    yy, xx = np.mgrid[0:H, 0:W]
    alpha = np.floor(255.0 * (1.0 - xx / (W - 1)) * (0.5 + 0.5 * (1.0 - yy / (H - 1))) + 0.5)
    rgba = np.concatenate([img, alpha.astype(np.uint8)[..., None]], axis=2)
    save_png(os.path.join(out, "input_rgba.png"), rgba, "RGBA")
    # what the Rust side loads: the RGB picture back from disk
    img = np.asarray(Image.open(input_png).convert("RGB"))
    assert img.shape == (H, W, 3)

    one_hot = [0.0] * N_STYLES
    one_hot[STYLE_INDEX] = 1.0

    def conv_of(layout="nchw", order="rgb", rin="0-255", rout="0-255", fixed=None,
                multiple_of=1, inp="input", outp="output", dtype="float32", extra=None):
        return {"layout": layout, "channel_order": order, "input_range": rin,
                "output_range": rout, "fixed_size": fixed, "multiple_of": multiple_of,
                "input": inp, "output": outp, "input_dtype": dtype,
                "extra_inputs": extra or {}}

    # name -> (builder, resolved convention, convention source, sidecar or None)
    good = [
        ("fns_bgr_224_opset7", model_fns_bgr_224_opset7,
         conv_of(order="bgr", fixed=[224, 224], inp="input1", outp="output1"), "sidecar",
         {"channel_order": "bgr", "input_range": "0-255", "output_range": "0-255"}),
        ("fns_rgb_720", model_fns_rgb_720, conv_of(fixed=[720, 720]), "defaults", None),
        ("multistyle_unit", model_multistyle_unit,
         conv_of(rin="0-1", rout="0-1", inp="content", extra={"style_weights": one_hot}),
         "metadata", None),
        ("gan_pm1_mult8", model_gan_pm1_mult8,
         conv_of(rin="-1-1", rout="-1-1", multiple_of=8), "sidecar",
         {"input_range": "-1-1", "output_range": "-1-1", "multiple_of": 8}),
        ("nhwc_unit_fp16", model_nhwc_unit_fp16,
         conv_of(layout="nhwc", rin="0-1", rout="0-1", inp="image", outp="stylized",
                 dtype="float16"), "metadata", None),
    ]

    manifest = {
        "about": "Written by scripts/make_test_models.py; do not edit. Paths are relative to "
                 "tests/data/. 'convention' is what the engine must resolve for the model, "
                 "from its stylize.* metadata, its sidecar <model>.onnx.json or the defaults "
                 "(nchw, rgb, 0-255, multiple_of 1); no model here has both metadata and a "
                 "sidecar.",
        "input": "input.png",
        "input_rgba": "input_rgba.png",
        "input_size": {"width": W, "height": H},
        "onnxruntime": ort.__version__,
        "reference_rounding": "clip(floor(y + 0.5), 0, 255) to uint8",
        "models": [],
        "bad_models": [],
        "helper_models": [],
    }

    summary = []
    for name, build, conv, source, sidecar in good:
        model_rng = np.random.default_rng([SEED, len(name)] + [ord(c) for c in name])
        model = build(model_rng)
        path = os.path.join(models_dir, name + ".onnx")
        onnx.save(model, path)
        sidecar_path = None
        if sidecar is not None:
            sidecar_path = path + ".json"
            write_json(sidecar_path, sidecar)
        sess = session(path)
        ins = sess.get_inputs()
        assert ins[0].name == conv["input"], [i.name for i in ins]
        assert sess.get_outputs()[0].name == conv["output"]
        meta = sess.get_modelmeta().custom_metadata_map
        extra = conv["extra_inputs"]
        assert sorted(i.name for i in ins[1:]) == sorted(extra), [i.name for i in ins]
        ref = reference(sess, img, conv, extra)
        ref_path = os.path.join(ref_dir, name + ".png")
        save_png(ref_path, ref, "RGB")

        # Sanity: the convention matters (a wrong channel order / range / extra input gives a
        # clearly different picture), and the output is not mostly clamped.
        def differs(alt, extra_alt=extra, what=""):
            other = reference(sess, img, alt, extra_alt)
            d = np.abs(other.astype(np.int32) - ref.astype(np.int32)).mean()
            assert d > 4.0, f"{name}: {what} changes the output by only {d:.2f}"
            return round(float(d), 1)

        checks = {}
        flipped = dict(conv, channel_order="rgb" if conv["channel_order"] == "bgr" else "bgr")
        checks["channel_order"] = differs(flipped, what="channel order")
        wrong_in = {"0-255": "0-1", "0-1": "0-255", "-1-1": "0-1"}[conv["input_range"]]
        checks["input_range"] = differs(dict(conv, input_range=wrong_in), what="input range")
        if extra:
            other_hot = [0.0] * N_STYLES
            other_hot[STYLE_INDEX + 5] = 1.0
            checks["extra_input"] = differs(conv, {"style_weights": other_hot}, "style_weights")
        clamped = float(((ref == 0) | (ref == 255)).mean())
        assert clamped < 0.2, f"{name}: {clamped:.0%} of the reference is clamped"

        entry = {
            "name": name,
            "file": rel(path, out),
            "sidecar": rel(sidecar_path, out) if sidecar_path else None,
            "convention_source": source,
            "metadata": dict(sorted(meta.items())),
            "opset": model.opset_import[0].version,
            "ir_version": model.ir_version,
            "convention": {
                "layout": conv["layout"],
                "channel_order": conv["channel_order"],
                "input_range": conv["input_range"],
                "output_range": conv["output_range"],
                "fixed_size": ({"width": conv["fixed_size"][1], "height": conv["fixed_size"][0]}
                               if conv["fixed_size"] else None),
                "multiple_of": conv["multiple_of"],
                "input": conv["input"],
                "output": conv["output"],
                "input_dtype": conv["input_dtype"],
                "output_dtype": conv["input_dtype"],
                "extra_inputs": {k: v for k, v in extra.items()},
            },
            "cli_extra_inputs": [f"{k}=" + ",".join(f"{v:g}" for v in vals)
                                 for k, vals in extra.items()],
            "reference": rel(ref_path, out),
            "reference_mean_abs_diff_if_wrong": checks,
        }
        if name == "gan_pm1_mult8":
            # It must genuinely fail on the unpadded 61x47 picture.
            x = to_model(img, conv)
            try:
                quiet = ort.RunOptions()
                quiet.log_severity_level = 4  # the failure is expected: keep its log quiet
                sess.run(None, {conv["input"]: x}, quiet)
            except Exception as e:  # onnxruntime raises a RuntimeException/Fail
                entry["unpadded_run_error"] = type(e).__name__
            else:
                raise AssertionError("gan_pm1_mult8 ran on 61x47 without padding")
        if name == "fns_bgr_224_opset7":
            entry["note"] = ("IR 3: the weights are also listed as graph inputs (with "
                             "initializers); onnxruntime does not report them as inputs.")
            entry["graph_inputs"] = [i.name for i in model.graph.input]
        manifest["models"].append(entry)
        summary.append(f"  {name + '.onnx':28s} {os.path.getsize(path):7d} B  ref {rel(ref_path, out)}"
                       f"  (wrong order/range diff {checks['channel_order']}/{checks['input_range']})")

    # --- bad models ---
    bad = [
        ("bad_classifier", lambda: model_bad_classifier(None),
         "input has rank 2 ([1,1000]), not an image tensor of rank 4"),
        ("bad_gray", lambda: simple_conv_model("bad_gray", 1),
         "input has 1 channel ([1,1,H,W]); 3 are needed"),
        ("bad_rgba", lambda: simple_conv_model("bad_rgba", 4),
         "input has 4 channels ([1,4,H,W]); 3 are needed"),
        ("bad_int8", lambda: simple_conv_model("bad_int8", 3, in_elem=TensorProto.INT8),
         "input element type is int8; float32 or float16 is needed"),
        ("bad_output_size", lambda: simple_conv_model(
            "bad_output_size", 3, stride=2, out_dims=["half_height", "half_width"]),
         "output spatial size is half the input's (a stride-2 conv); the output dims are "
         "symbolic, so this shows when the model is run"),
        ("bad_logits", model_bad_logits,
         "a classifier: image input [1,3,H,W], rank-2 output [1,10] (class probabilities)"),
        ("bad_nan", model_bad_nan,
         "an image generator whose output is NaN wherever an input value is below 100 "
         "(16 * sqrt(x - 100)); loads and runs, NaN for the test picture, finite for bright ones"),
        ("bad_inf", model_bad_inf,
         "an image generator that divides by zero: +Inf where the input is above 0, NaN at 0"),
    ]
    for name, build, reason in bad:
        path = os.path.join(models_dir, name + ".onnx")
        onnx.save(build(), path)
        session(path)  # a valid ONNX model: rejection must come from the engine's checks
        manifest["bad_models"].append({"name": name, "file": rel(path, out), "reason": reason,
                                       "loads_in_onnxruntime": True})
        summary.append(f"  {name + '.onnx':28s} {os.path.getsize(path):7d} B  bad")

    # NaN / Inf: check the outputs really are not finite (and finite where they should be)
    x = to_model(img, conv_of())
    y = session(os.path.join(models_dir, "bad_nan.onnx")).run(None, {"input": x})[0]
    assert np.isnan(y).any() and np.isfinite(y).any(), "bad_nan: mixed NaN and finite"
    bright = np.full_like(x, 180.0)
    y = session(os.path.join(models_dir, "bad_nan.onnx")).run(None, {"input": bright})[0]
    assert np.isfinite(y).all(), "bad_nan: finite for a bright picture"
    y = session(os.path.join(models_dir, "bad_inf.onnx")).run(None, {"input": x})[0]
    assert np.isinf(y).any() and not np.isfinite(y).any(), "bad_inf: all Inf or NaN"

    # helper models: small graphs for tests that need speed rather than a convention
    for name, build, purpose in [
        ("pointwise_1x1", model_pointwise_1x1,
         "1x1 colour-mixing conv + clip, NCHW RGB 0-255, free size: very large frames (8K)"),
    ]:
        path = os.path.join(models_dir, name + ".onnx")
        onnx.save(build(), path)
        y = session(path).run(None, {"input": to_model(img, conv_of())})[0]
        assert y.shape == (1, 3, H, W) and np.isfinite(y).all(), name
        manifest["helper_models"].append({"name": name, "file": rel(path, out),
                                          "purpose": purpose})
        summary.append(f"  {name + '.onnx':28s} {os.path.getsize(path):7d} B  helper")

    # bad output size: check it really halves the picture
    sess = session(os.path.join(models_dir, "bad_output_size.onnx"))
    y = sess.run(None, {"input": to_model(img, conv_of())})[0]
    assert y.shape == (1, 3, math.ceil(H / 2), math.ceil(W / 2)), y.shape

    not_onnx = os.path.join(models_dir, "not_onnx.onnx")
    with open(not_onnx, "wb") as f:
        f.write(b"This is not an ONNX model, just text.\n"
                + bytes(np.random.default_rng(SEED + 1).integers(0, 256, 64, dtype=np.uint8))
                + b"\nThe end.\n")
    src = os.path.join(models_dir, "fns_rgb_720.onnx")
    with open(src, "rb") as f:
        data = f.read()
    truncated = os.path.join(models_dir, "truncated.onnx")
    with open(truncated, "wb") as f:
        f.write(data[: len(data) // 2])
    for path, reason in [(not_onnx, "not an ONNX protobuf (text and random bytes)"),
                         (truncated, "the first half of the bytes of fns_rgb_720.onnx")]:
        try:
            session(path)
        except Exception:
            pass
        else:
            raise AssertionError(f"{path} loaded in onnxruntime")
        manifest["bad_models"].append({"name": os.path.basename(path)[:-5],
                                       "file": rel(path, out), "reason": reason,
                                       "loads_in_onnxruntime": False})
        summary.append(f"  {os.path.basename(path):28s} {os.path.getsize(path):7d} B  bad")

    write_json(os.path.join(models_dir, "manifest.json"), manifest)
    total = sum(os.path.getsize(os.path.join(models_dir, f)) for f in os.listdir(models_dir))
    print(f"make_test_models: wrote {rel(out, os.getcwd())}/ (onnxruntime {ort.__version__}, "
          f"models dir {total} B)")
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
