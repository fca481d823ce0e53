#!/usr/bin/env python3
"""Temporal stability of per-frame stylisation: warping error on real video clips.

  python scripts/eval_stability.py models/starry_night.onnx .cache/export-notemporal/starry_night_notemporal.onnx

For each clip in ../shared/data/video (frames scaled to --width, cropped to a multiple of 4), each
model stylises every frame independently. Optical flow (OpenCV DIS, on the ORIGINAL frames)
warps stylised frame t onto frame t+1; the warping error is the mean squared difference
(0-255 scale) over pixels that the forward-backward flow check marks as not occluded
(Ruder et al. 2016). Lower = more stable. The same error on the original frames is printed as a
floor (what flow and occlusion errors alone cost). Dev-only: needs opencv-python-headless and
../shared/data.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stylize_train.data import shared_data_dir  # noqa: E402


def read_frames(path: Path, width: int, max_frames: int, step: int):
    import cv2
    cap = cv2.VideoCapture(str(path))
    frames, i = [], 0
    while len(frames) < max_frames:
        ok, bgr = cap.read()
        if not ok:
            break
        if i % step == 0:
            h = round(bgr.shape[0] * width / bgr.shape[1])
            bgr = cv2.resize(bgr, (width, h), interpolation=cv2.INTER_AREA)
            bgr = bgr[: h // 4 * 4, : width // 4 * 4]
            frames.append(np.ascontiguousarray(bgr[..., ::-1]))  # RGB
        i += 1
    if len(frames) < 2:
        raise SystemExit(f"error: could not decode {path} with OpenCV")
    return frames


def flows(frames):
    """(backward flow t+1 -> t, occlusion-free mask at t+1) for each consecutive pair."""
    import cv2
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    out = []
    h, w = gray[0].shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    for a, b in zip(gray[:-1], gray[1:]):
        fwd = dis.calc(a, b, None)  # t -> t+1
        bwd = dis.calc(b, a, None)  # t+1 -> t
        mx, my = gx + bwd[..., 0], gy + bwd[..., 1]
        fwd_at = cv2.remap(fwd, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        s = bwd + fwd_at
        lhs = (s ** 2).sum(-1)
        rhs = 0.01 * ((bwd ** 2).sum(-1) + (fwd_at ** 2).sum(-1)) + 0.5
        inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
        out.append(((mx, my), (lhs < rhs) & inside))
    return out


def warp_err(seq, fl):
    import cv2
    errs = []
    for (maps, mask), a, b in zip(fl, seq[:-1], seq[1:]):
        if mask.mean() < 0.2:  # scene cut or flow failure: nothing reliable to compare
            continue
        warped = cv2.remap(a.astype(np.float32), maps[0], maps[1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        d = ((b.astype(np.float32) - warped) ** 2).mean(-1)
        errs.append(float(d[mask].mean()))
    return float(np.mean(errs))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="ONNX models to compare")
    ap.add_argument("--width", type=int, default=480, help="frame width for stylisation")
    ap.add_argument("--frames", type=int, default=40, help="frames per clip")
    ap.add_argument("--step", type=int, default=1, help="use every Nth frame")
    ap.add_argument("--data-dir")
    args = ap.parse_args()
    data = shared_data_dir(args.data_dir)
    import onnxruntime as ort

    clips = sorted((data / "video").glob("*.mp4"))
    if not clips:
        raise SystemExit(f"error: no clips in {data / 'video'}")
    print(f"warping error (MSE over non-occluded pixels, 0-255 scale, lower is more stable); "
          f"{args.frames} frames per clip at width {args.width}")
    for clip in clips:
        frames = read_frames(clip, args.width, args.frames, args.step)
        fl = flows(frames)
        used = [m.mean() for _, m in fl if m.mean() >= 0.2]
        print(f"{clip.name} ({len(frames)} frames {frames[0].shape[1]}x{frames[0].shape[0]}; {len(used)} of "
              f"{len(fl)} frame pairs used (>= 20% consistent flow), {np.mean(used) * 100:.0f}% of their pixels "
              "non-occluded):")
        print(f"  {'original frames (floor)':40s} {warp_err(frames, fl):9.2f}")
        for m in args.models:
            s = ort.InferenceSession(m, providers=["CPUExecutionProvider"])
            styl = []
            for f in frames:
                y = s.run(["output"], {"input": f.transpose(2, 0, 1)[None].astype(np.float32)})[0][0]
                styl.append(np.clip(y.transpose(1, 2, 0), 0, 255))
            print(f"  {Path(m).name:40s} {warp_err(styl, fl):9.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
