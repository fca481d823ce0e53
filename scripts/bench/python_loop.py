#!/usr/bin/env python3
"""Plain Python baseline for `stylize convert`: the loop a Python user would write.

OpenCV decode -> numpy -> onnxruntime (CPUExecutionProvider, default threads)
-> OpenCV encode (cv2.VideoWriter; no sound).

The model takes and gives NCHW float32 RGB 0-255 pictures of any size that is a
multiple of `stylize.multiple_of` (metadata; 4 for the shipped models).

Prints one JSON object: frames, wall_s, fps (and a few details). The timed span
starts before the ONNX session is created and ends after the writer is released,
like `stylize convert`'s own wall_s (which starts before its pipeline, and so its
session, is brought up and ends after the output is finalised).

With --size WxH every decoded frame is first resized to WxH (cv2.INTER_AREA), and the
output is written at that size, like `stylize convert --size WxH`.

Usage:
  python python_loop.py IN.mp4 OUT.mp4 --model models/starry_night.onnx \
      [--inference-scale 0.5] [--frames N] [--size 640x360]
"""

import argparse
import json
import sys
import time

import cv2
import numpy as np
import onnxruntime as ort


def pad_to_multiple(img: np.ndarray, m: int) -> np.ndarray:
    h, w = img.shape[:2]
    ph, pw = (-h) % m, (-w) % m
    if ph == 0 and pw == 0:
        return img
    return cv2.copyMakeBorder(img, 0, ph, 0, pw, cv2.BORDER_REPLICATE)


def open_writer(path: str, fps: float, size: tuple[int, int]):
    """First FourCC this OpenCV build can write to `path`, and its name."""
    for code in ("avc1", "mp4v"):
        w = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*code), fps, size)
        if w.isOpened():
            return w, code
        w.release()
    raise SystemExit(f"cv2.VideoWriter cannot open {path} with avc1 or mp4v")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--model", required=True)
    ap.add_argument("--inference-scale", type=float, default=1.0)
    ap.add_argument("--frames", type=int, default=None, help="convert at most N frames")
    ap.add_argument("--size", default=None, help="output size WxH (default: the input's)")
    args = ap.parse_args()
    out_size = None
    if args.size:
        try:
            out_size = tuple(int(v) for v in args.size.lower().split("x"))
            assert len(out_size) == 2 and min(out_size) > 0
        except (ValueError, AssertionError):
            ap.error(f"--size must be WxH, got {args.size!r}")
    if not 0 < args.inference_scale <= 1:
        ap.error("--inference-scale must be in (0, 1]")

    t0 = time.perf_counter()
    sess = ort.InferenceSession(args.model, providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    multiple = int(meta.get("stylize.multiple_of", "1") or 1)
    in_name = sess.get_inputs()[0].name
    out_name = sess.get_outputs()[0].name

    cap = cv2.VideoCapture(args.input)
    if not cap.isOpened():
        raise SystemExit(f"cannot open {args.input}")
    fps_in = cap.get(cv2.CAP_PROP_FPS) or 25.0
    width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    resize_input = out_size is not None and out_size != (width, height)
    if out_size is not None:
        width, height = out_size
    writer, fourcc = open_writer(args.output, fps_in, (width, height))

    scale = args.inference_scale
    iw, ih = round(width * scale), round(height * scale)
    frames = 0
    infer_s = 0.0
    while args.frames is None or frames < args.frames:
        ok, bgr = cap.read()
        if not ok:
            break
        if resize_input:
            bgr = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if scale < 1:
            rgb = cv2.resize(rgb, (iw, ih), interpolation=cv2.INTER_LINEAR)
        h, w = rgb.shape[:2]
        padded = pad_to_multiple(rgb, multiple)
        x = np.ascontiguousarray(padded.transpose(2, 0, 1)[None], dtype=np.float32)
        ti = time.perf_counter()
        y = sess.run([out_name], {in_name: x})[0]
        infer_s += time.perf_counter() - ti
        out = np.clip(y[0], 0, 255).transpose(1, 2, 0)[:h, :w].astype(np.uint8)
        if scale < 1:
            out = cv2.resize(out, (width, height), interpolation=cv2.INTER_LINEAR)
        writer.write(cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
        frames += 1
    cap.release()
    writer.release()
    wall = time.perf_counter() - t0

    print(json.dumps({
        "frames": frames,
        "wall_s": wall,
        "fps": frames / wall if wall > 0 else 0.0,
        "infer_ms_mean": 1000 * infer_s / frames if frames else 0.0,
        "inference_size": [iw + (-iw) % multiple, ih + (-ih) % multiple],
        "fourcc": fourcc,
        "opencv": cv2.__version__,
        "onnxruntime": ort.__version__,
        "output": args.output,
    }, indent=2))
    return 0 if frames else 1


if __name__ == "__main__":
    sys.exit(main())
