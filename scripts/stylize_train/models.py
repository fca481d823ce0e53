"""Generator (Johnson et al. 2016 family) and a small patch discriminator.

Generator: 9x9 stem conv -> two stride-2 3x3 convs -> N residual blocks -> two
(nearest-neighbour x2 resize, then 3x3 conv) upsampling stages -> 9x9 output conv.
Instance normalisation after every conv but the last, reflection padding, ReLU.
Input and output: RGB, 0-255, NCHW. The output is 127.5 + 150*tanh(last conv), clamped to 0-255
inside the network when `clamp_output=True` (export and evaluation); training uses the
unclamped value so the loss keeps its gradient where the network overshoots a little.
H and W must be multiples of 4 (two stride-2 convs, then two x2 upsamplings).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

WIDTHS = {"fast": (16, 32, 64), "quality": (32, 64, 128)}
MULTIPLE_OF = 4  # 2 ** (number of stride-2 convs)


class ConvLayer(nn.Sequential):
    def __init__(self, cin, cout, k, stride=1, norm=True, relu=True):
        layers = [nn.ReflectionPad2d(k // 2), nn.Conv2d(cin, cout, k, stride)]
        if norm:
            layers.append(nn.InstanceNorm2d(cout, affine=True))
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.body = nn.Sequential(ConvLayer(c, c, 3), ConvLayer(c, c, 3, relu=False))

    def forward(self, x):
        return x + self.body(x)


class UpsampleConv(nn.Module):
    """Resize (nearest, x2) then convolve: no transposed-conv checkerboard."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = ConvLayer(cin, cout, 3)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Generator(nn.Module):
    def __init__(self, width: str = "fast", n_res: int = 5):
        super().__init__()
        if width not in WIDTHS:
            raise ValueError(f"width must be one of {list(WIDTHS)}")
        c1, c2, c3 = WIDTHS[width]
        self.width = width
        self.clamp_output = False
        self.net = nn.Sequential(
            ConvLayer(3, c1, 9),
            ConvLayer(c1, c2, 3, stride=2),
            ConvLayer(c2, c3, 3, stride=2),
            *[ResidualBlock(c3) for _ in range(n_res)],
            UpsampleConv(c3, c2),
            UpsampleConv(c2, c1),
            ConvLayer(c1, 3, 9, norm=False, relu=False),
        )

    def forward(self, x):
        # Scaled tanh output (as in Johnson et al.): 127.5 + 150 tanh(.) covers 0-255 with a little
        # headroom, starts at mid-grey and keeps the last layer's weights O(1), so a short CPU run
        # does not spend its first few hundred steps just growing the output range.
        y = 127.5 + 150.0 * torch.tanh(self.net(x))
        if self.clamp_output:
            y = y.clamp(0.0, 255.0)
        return y


class PatchDiscriminator(nn.Module):
    """Small PatchGAN (70x70-style, fewer channels) on 0-255 RGB crops; outputs a logit map."""

    def __init__(self, ch: int = 32):
        super().__init__()
        sn = nn.utils.spectral_norm

        def block(cin, cout, stride):
            return [sn(nn.Conv2d(cin, cout, 4, stride, 1)), nn.LeakyReLU(0.2, inplace=True)]

        self.net = nn.Sequential(*block(3, ch, 2), *block(ch, ch * 2, 2), *block(ch * 2, ch * 4, 2),
                                 *block(ch * 4, ch * 4, 1), sn(nn.Conv2d(ch * 4, 1, 4, 1, 1)))

    def forward(self, x):
        return self.net(x / 127.5 - 1.0)


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
