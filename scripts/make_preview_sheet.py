#!/usr/bin/env python3
"""Side-by-side preview sheet (original | stylised) of held-out bsds500 test_* photos.

  python scripts/make_preview_sheet.py models/starry_night.onnx   # -> models/starry_night.jpg

Runs the shipped ONNX file with ONNX Runtime at the photos' full size (481x321 cropped to a
multiple of 4), then scales each pair down for a sheet of modest size (JPEG). Needs ../shared/data.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stylize_train.data import content_files, load_rgb, shared_data_dir  # noqa: E402

DEFAULT_PHOTOS = ["test_100007", "test_106005", "test_130014", "test_157032"]


def stylise_onnx(path: Path, rgb: np.ndarray) -> np.ndarray:
    """rgb: HxWx3 uint8 (H, W multiples of 4) -> HxWx3 uint8 via the ONNX model."""
    import onnxruntime as ort
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = rgb.transpose(2, 0, 1)[None].astype(np.float32)
    if s.get_inputs()[0].type == "tensor(float16)":
        x = x.astype(np.float16)
    y = s.run(["output"], {"input": x})[0][0].astype(np.float32)
    return np.clip(y.transpose(1, 2, 0) + 0.5, 0, 255).astype(np.uint8)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="models/<name>.onnx")
    ap.add_argument("--out", help="default: the model path with .jpg")
    ap.add_argument("--photos", nargs="*", default=DEFAULT_PHOTOS, help="test_* photo stems")
    ap.add_argument("--cell-width", type=int, default=320, help="width of each image in the sheet")
    ap.add_argument("--quality", type=int, default=82)
    ap.add_argument("--data-dir")
    args = ap.parse_args()
    from PIL import Image

    data = shared_data_dir(args.data_dir)
    files = {f.stem: f for f in content_files(data, "test")}
    rows = []
    for stem in args.photos:
        if stem not in files:
            raise SystemExit(f"error: {stem} is not a held-out test_* photo")
        rgb = load_rgb(files[stem]).numpy().transpose(1, 2, 0)
        h, w = rgb.shape[0] // 4 * 4, rgb.shape[1] // 4 * 4
        rgb = np.ascontiguousarray(rgb[:h, :w])
        out = stylise_onnx(Path(args.model), rgb)
        cw = args.cell_width
        ch = round(h * cw / w)
        a = np.asarray(Image.fromarray(rgb).resize((cw, ch), Image.LANCZOS))
        b = np.asarray(Image.fromarray(out).resize((cw, ch), Image.LANCZOS))
        gap = np.full((ch, 4, 3), 255, np.uint8)
        rows.append(np.concatenate([a, gap, b], 1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    sheet = np.concatenate(rows, 0)[:-4]
    out = Path(args.out) if args.out else Path(args.model).with_suffix(".jpg")
    Image.fromarray(sheet).save(out, quality=args.quality, optimize=True, progressive=True)
    print(f"{out}: {sheet.shape[1]}x{sheet.shape[0]}, {out.stat().st_size / 1024:.0f} KB "
          f"(left: original held-out photo, right: {Path(args.model).name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
