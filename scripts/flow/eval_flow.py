#!/usr/bin/env python3
"""Compare our DIS optical flow (examples/dis_flow.rs) with OpenCV's DISOpticalFlow.

Development script (not run in CI). Needs the shared data at ../shared (see
../shared/README.md): data/flow/middlebury (8 pairs with ground truth), data/flow/sintel
(10 frames) and data/video/bigbuckbunny.mp4; and a venv:

    python3 -m venv .cache/venv-flow
    .cache/venv-flow/bin/pip install -r scripts/flow/requirements.txt
    .cache/venv-flow/bin/python scripts/flow/eval_flow.py [--json OUT.json]

For each preset (ultrafast, fast, medium), both single-threaded:
- Middlebury: mean end-point error (EPE) against ground truth and photometric error
  (mean |A(x) - B(x + flow)|, B sampled bilinearly, in grey levels);
- Sintel (no ground truth here): photometric error over the 9 consecutive pairs, and EPE
  against OpenCV's medium preset as a reference;
- speed: median ms per call at 320x180, 640x360 and 1280x720 on consecutive frames of
  bigbuckbunny.mp4 (1280x720, downscaled with INTER_AREA); ours and OpenCV alternate over
  --rounds rounds and each keeps its best median.
Our binary is built once with `cargo build --release --example dis_flow`; it times its own
calls, OpenCV's are timed around `calc` here.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}
SPEED_SIZES = [(320, 180), (640, 360), (1280, 720)]


def die(msg):
    sys.exit(f"eval_flow: error: {msg}")


def read_flo(path, np):
    with open(path, "rb") as f:
        magic = np.fromfile(f, np.float32, 1)
        if magic.size != 1 or magic[0] != 202021.25:
            die(f"{path}: not a .flo file")
        w, h = (int(v) for v in np.fromfile(f, np.int32, 2))
        return np.fromfile(f, np.float32, w * h * 2).reshape(h, w, 2)


def epe(flow, gt, np):
    known = (np.abs(gt) <= 1e9).all(-1) & np.isfinite(gt).all(-1)
    return float(np.sqrt(((flow - gt) ** 2).sum(-1))[known].mean())


def photometric(a, b, flow, np):
    """Mean |a(x) - b(x + flow)|, b sampled bilinearly with clamped coordinates."""
    h, w = a.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    x = np.clip(xs + flow[..., 0], 0, w - 1)
    y = np.clip(ys + flow[..., 1], 0, h - 1)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = x - x0, y - y0
    b = b.astype(np.float32)
    top = b[y0, x0] + (b[y0, x1] - b[y0, x0]) * fx
    bottom = b[y1, x0] + (b[y1, x1] - b[y1, x0]) * fx
    return float(np.abs(a.astype(np.float32) - (top + (bottom - top) * fy)).mean())


class Ours:
    def __init__(self, binary, tmp, np):
        self.binary, self.tmp, self.np = binary, Path(tmp), np

    def __call__(self, a_path, b_path, preset, repeat=1):
        out = self.tmp / "ours.flo"
        cmd = [str(self.binary), "--preset", preset, "--repeat", str(repeat), "--out", str(out),
               str(a_path), str(b_path)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            die(f"{' '.join(cmd)}: {res.stderr.strip()}")
        info = json.loads(res.stdout)
        return read_flo(out, self.np), info["ms_per_call"]


def opencv_flow(cv2, np, a, b, preset, repeat=1):
    import time

    dis = cv2.DISOpticalFlow_create(PRESETS[preset])
    flow = dis.calc(a, b, None)  # the first call allocates
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        flow = dis.calc(a, b, None)
        times.append((time.perf_counter() - t) * 1e3)
    return flow, float(np.median(times))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared",
                    help="the shared data folder (default: ../shared)")
    ap.add_argument("--json", type=Path, help="also write all results to this file")
    ap.add_argument("--no-build", action="store_true", help="use the binary as built")
    ap.add_argument("--repeat", type=int, default=15, help="timed calls per speed case")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternating rounds per speed case (the best median is kept)")
    args = ap.parse_args()

    flow_dir = args.shared / "data" / "flow"
    mb = flow_dir / "middlebury"
    video = args.shared / "data" / "video" / "bigbuckbunny.mp4"
    for p in (mb / "other-data", mb / "other-gt-flow", flow_dir / "sintel", video):
        if not p.exists():
            die(f"{p} not found: this script needs the shared data at ../shared "
                "(see ../shared/README.md), or --shared PATH")
    try:
        import cv2
        import numpy as np
    except ImportError as e:
        die(f"{e}; install the tools with: python3 -m venv .cache/venv-flow && "
            ".cache/venv-flow/bin/pip install -r scripts/flow/requirements.txt")
    cv2.setNumThreads(1)

    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--example", "dis_flow"], cwd=ROOT,
                       check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    binary = target / "release" / "examples" / "dis_flow"
    if not binary.exists():
        die(f"{binary} not found")

    results = {"opencv_version": cv2.__version__, "middlebury": {}, "sintel": {}, "speed": []}
    with tempfile.TemporaryDirectory() as tmp:
        ours = Ours(binary, tmp, np)
        read = lambda p: cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)

        # Middlebury, with ground truth.
        seqs = sorted(p.name for p in (mb / "other-gt-flow").iterdir()
                      if (p / "flow10.flo").exists())
        for seq in seqs:
            pa, pb = mb / "other-data" / seq / "frame10.png", mb / "other-data" / seq / "frame11.png"
            a, b = read(pa), read(pb)
            gt = read_flo(mb / "other-gt-flow" / seq / "flow10.flo", np)
            row = {}
            for preset in PRESETS:
                fo, _ = ours(pa, pb, preset)
                fc, _ = opencv_flow(cv2, np, a, b, preset)
                row[preset] = {"ours_epe": epe(fo, gt, np), "opencv_epe": epe(fc, gt, np),
                               "ours_photometric": photometric(a, b, fo, np),
                               "opencv_photometric": photometric(a, b, fc, np)}
            results["middlebury"][seq] = row

        # Sintel: consecutive pairs, no ground truth.
        frames = sorted((flow_dir / "sintel").glob("frame_*.png"))
        sintel = {p: {"ours_photometric": [], "opencv_photometric": [],
                      "ours_epe_vs_opencv_medium": [], "opencv_epe_vs_opencv_medium": []}
                  for p in PRESETS}
        for pa, pb in zip(frames, frames[1:]):
            a, b = read(pa), read(pb)
            ref, _ = opencv_flow(cv2, np, a, b, "medium")
            for preset in PRESETS:
                fo, _ = ours(pa, pb, preset)
                fc, _ = opencv_flow(cv2, np, a, b, preset)
                s = sintel[preset]
                s["ours_photometric"].append(photometric(a, b, fo, np))
                s["opencv_photometric"].append(photometric(a, b, fc, np))
                s["ours_epe_vs_opencv_medium"].append(epe(fo, ref, np))
                s["opencv_epe_vs_opencv_medium"].append(epe(fc, ref, np))
        results["sintel"] = {p: {k: float(np.mean(v)) for k, v in s.items()}
                             for p, s in sintel.items()}
        results["sintel_pairs"] = len(frames) - 1

        # Speed on real consecutive frames.
        cap = cv2.VideoCapture(str(video))
        grabbed = []
        for _ in range(41):
            ok, f = cap.read()
            if not ok:
                die(f"{video}: cannot read 41 frames")
            grabbed.append(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY))
        src_a, src_b = grabbed[39], grabbed[40]
        for w, h in SPEED_SIZES:
            a = cv2.resize(src_a, (w, h), interpolation=cv2.INTER_AREA)
            b = cv2.resize(src_b, (w, h), interpolation=cv2.INTER_AREA)
            pa, pb = Path(tmp) / f"a{w}.png", Path(tmp) / f"b{w}.png"
            cv2.imwrite(str(pa), a)
            cv2.imwrite(str(pb), b)
            for preset in PRESETS:
                # Alternate the two over a few rounds and keep each one's best median, so
                # that a burst of load on the machine does not decide the comparison.
                ms_ours, ms_cv = float("inf"), float("inf")
                for _ in range(args.rounds):
                    fo, t = ours(pa, pb, preset, args.repeat)
                    ms_ours = min(ms_ours, t)
                    fc, t = opencv_flow(cv2, np, a, b, preset, args.repeat)
                    ms_cv = min(ms_cv, t)
                results["speed"].append({"size": f"{w}x{h}", "preset": preset,
                                         "ours_ms": ms_ours, "opencv_ms": ms_cv,
                                         "ours_photometric": photometric(a, b, fo, np),
                                         "opencv_photometric": photometric(a, b, fc, np)})

    print_tables(results, np)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def print_tables(r, np):
    presets = list(PRESETS)
    mb = r["middlebury"]
    print(f"OpenCV {r['opencv_version']}, one thread.\n")
    print("### Middlebury EPE (px), ours / OpenCV\n")
    print("| sequence | " + " | ".join(presets) + " |")
    print("|---|" + "---|" * len(presets))
    for seq, row in mb.items():
        cells = [f"{row[p]['ours_epe']:.3f} / {row[p]['opencv_epe']:.3f}" for p in presets]
        print(f"| {seq} | " + " | ".join(cells) + " |")
    cells = []
    for p in presets:
        o = np.mean([row[p]["ours_epe"] for row in mb.values()])
        c = np.mean([row[p]["opencv_epe"] for row in mb.values()])
        cells.append(f"**{o:.3f} / {c:.3f}** ({(o / c - 1) * 100:+.1f}%)")
    print("| **mean** | " + " | ".join(cells) + " |")
    cells = []
    for p in presets:
        o = np.mean([row[p]["ours_photometric"] for row in mb.values()])
        c = np.mean([row[p]["opencv_photometric"] for row in mb.values()])
        cells.append(f"{o:.2f} / {c:.2f}")
    print("| photometric (grey levels) | " + " | ".join(cells) + " |")

    print(f"\n### Sintel ({r['sintel_pairs']} consecutive pairs, 1024x436), ours / OpenCV\n")
    print("| preset | photometric (grey levels) | EPE vs OpenCV medium (px; 0 for itself) |")
    print("|---|---|---|")
    for p in presets:
        s = r["sintel"][p]
        print(f"| {p} | {s['ours_photometric']:.2f} / {s['opencv_photometric']:.2f} | "
              f"{s['ours_epe_vs_opencv_medium']:.3f} / {s['opencv_epe_vs_opencv_medium']:.3f} |")

    print("\n### Speed (ms per call, best of the rounds' medians, one thread; "
          "bigbuckbunny frames 39-40)\n")
    print("| size | preset | ours | OpenCV | ours/OpenCV | photometric ours / OpenCV |")
    print("|---|---|---|---|---|---|")
    for s in r["speed"]:
        print(f"| {s['size']} | {s['preset']} | {s['ours_ms']:.3f} | {s['opencv_ms']:.3f} | "
              f"{s['ours_ms'] / s['opencv_ms']:.2f} | "
              f"{s['ours_photometric']:.2f} / {s['opencv_photometric']:.2f} |")


if __name__ == "__main__":
    main()
