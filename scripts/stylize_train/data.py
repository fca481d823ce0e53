"""Training data: photos from ../shared/data/content, paintings from ../shared/data/styles.

The shared data folder is not part of the repository. Every entry point calls
`shared_data_dir()`, which fails with a clear message when it is missing.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[2]


class SharedDataMissing(SystemExit):
    pass


def shared_data_dir(explicit: str | None = None) -> Path:
    """Return the shared data directory (default: <repo>/../shared/data, or $STYLIZE_SHARED_DATA)."""
    cand = explicit or os.environ.get("STYLIZE_SHARED_DATA") or str(REPO_ROOT.parent / "shared" / "data")
    p = Path(cand)
    needed = [p / "content" / "bsds500", p / "styles", p / "vgg16" / "vgg16_imagenet_conv_to_relu4_3.safetensors"]
    missing = [str(n) for n in needed if not n.exists()]
    if missing:
        msg = (
            "error: the shared training data is missing.\n"
            f"  looked in: {p}\n  missing:   " + "\n             ".join(missing) + "\n"
            "  The training/evaluation scripts need the developers' shared folder at ../shared/data\n"
            "  relative to the repository root (or set STYLIZE_SHARED_DATA / --data-dir).\n"
            "  It is not part of the repository; a user's clone can use the shipped models in models/."
        )
        print(msg, file=sys.stderr)
        raise SharedDataMissing(2)
    return p


def content_files(data: Path, split: str) -> list[Path]:
    """split='train': bsds500 train_* + val_* + sun80/*; split='test': bsds500 test_* (held out)."""
    bsds = data / "content" / "bsds500"
    if split == "train":
        files = sorted(bsds.glob("train_*")) + sorted(bsds.glob("val_*"))
        sun = data / "content" / "sun80"
        if sun.exists():
            files += sorted(f for f in sun.iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png"))
    elif split == "test":
        files = sorted(bsds.glob("test_*"))
    else:
        raise ValueError(split)
    if not files:
        raise SystemExit(f"error: no content photos for split {split!r} under {data / 'content'}")
    return files


def load_rgb(path: Path, max_side: int | None = None) -> torch.Tensor:
    """uint8 tensor (3, H, W), RGB."""
    im = Image.open(path).convert("RGB")
    if max_side and max(im.size) > max_side:
        s = max_side / max(im.size)
        im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.LANCZOS)
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).contiguous()


def load_style(data: Path, name: str, size: int) -> torch.Tensor:
    """Style painting as float (1, 3, H, W) in 0-255, resized so its long side is `size`."""
    path = data / "styles" / f"{name}.jpg"
    if not path.exists():
        avail = sorted(p.stem for p in (data / "styles").glob("*.jpg"))
        raise SystemExit(f"error: style {name!r} not found in {data / 'styles'} (have: {', '.join(avail)})")
    im = Image.open(path).convert("RGB")
    s = size / max(im.size)
    im = im.resize((round(im.width * s), round(im.height * s)), Image.LANCZOS)
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float().unsqueeze(0)


class CropSampler:
    """Random crops with scale jitter and horizontal flips from photos held in memory.

    Scale jitter: each photo is resized so that its short side is between `crop*min_cover`
    and `crop*max_cover`... i.e. the crop covers between 1/max_zoom and 1/min_zoom of the
    short side, then a random crop x crop window is cut and flipped with p=0.5.
    """

    def __init__(self, files: list[Path], crop: int, seed: int, zoom=(1.0, 2.2), preload_side: int = 512):
        self.images = [load_rgb(f, preload_side) for f in files]
        self.crop = crop
        self.zoom = zoom
        self.rng = np.random.default_rng(seed)

    def state(self):
        return self.rng.bit_generator.state

    def set_state(self, st):
        self.rng.bit_generator.state = st

    def sample(self, batch: int) -> torch.Tensor:
        out = []
        c = self.crop
        for _ in range(batch):
            img = self.images[self.rng.integers(len(self.images))]
            _, h, w = img.shape
            short = min(h, w)
            target_short = c * self.rng.uniform(*self.zoom)
            s = target_short / short
            nh, nw = max(c, round(h * s)), max(c, round(w * s))
            x = F.interpolate(img.unsqueeze(0).float(), size=(nh, nw), mode="bilinear",
                              align_corners=False, antialias=s < 1)
            y0 = self.rng.integers(0, nh - c + 1)
            x0 = self.rng.integers(0, nw - c + 1)
            x = x[:, :, y0:y0 + c, x0:x0 + c]
            if self.rng.random() < 0.5:
                x = x.flip(3)
            out.append(x)
        return torch.cat(out, 0).clamp_(0, 255)
