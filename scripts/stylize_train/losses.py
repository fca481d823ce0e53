"""Perceptual, total-variation and temporal (Eilertsen et al. 2019) losses."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

STYLE_LAYERS = ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]


def gram(f: torch.Tensor) -> torch.Tensor:
    """Gram matrix normalised by C*H*W."""
    b, c, h, w = f.shape
    f = f.reshape(b, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def content_loss(fy: torch.Tensor, fx: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(fy, fx)


def style_loss(feats: dict, style_grams: dict) -> torch.Tensor:
    total = 0.0
    for k, g_s in style_grams.items():
        g = gram(feats[k])
        total = total + F.mse_loss(g, g_s.expand_as(g))
    return total


def tv_loss(y: torch.Tensor) -> torch.Tensor:
    return ((y[:, :, 1:, :] - y[:, :, :-1, :]) ** 2).mean() + ((y[:, :, :, 1:] - y[:, :, :, :-1]) ** 2).mean()


def random_similarity(b: int, gen: torch.Generator, max_shift: float, max_zoom: float, max_rot_deg: float,
                      device) -> torch.Tensor:
    """Per-sample affine matrices (b, 2, 3) for F.affine_grid: small shift/zoom/rotation,
    the motion between two neighbouring video frames (Eilertsen et al. 2019)."""
    u = lambda: torch.rand(b, generator=gen) * 2 - 1  # noqa: E731
    tx, ty = u() * max_shift * 2, u() * max_shift * 2  # affine_grid units: 2 = full width
    s = 1.0 + u() * max_zoom
    r = u() * math.radians(max_rot_deg)
    cos, sin = torch.cos(r) / s, torch.sin(r) / s
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    return theta.to(device)


def warp(x: torch.Tensor, theta: torch.Tensor):
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    y = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    ones = torch.ones_like(x[:, :1])
    mask = F.grid_sample(ones, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return y, mask


def temporal_loss(gen, x: torch.Tensor, y: torch.Tensor, rng: torch.Generator, noise_std: float,
                  max_shift: float, max_zoom: float, max_rot_deg: float) -> torch.Tensor:
    """|| G(T(x) + n) - T(G(x)) ||^2 over the valid region (single-frame regularisation).

    x: content batch (0-255); y = G(x) already computed (gradients flow through both branches).
    """
    theta = random_similarity(x.shape[0], rng, max_shift, max_zoom, max_rot_deg, x.device)
    xt, mask = warp(x, theta)
    noise = torch.randn(xt.shape, generator=rng).to(x.device) * noise_std
    y_of_t = gen((xt + noise).clamp(0, 255))
    t_of_y, _ = warp(y, theta)
    d = (y_of_t - t_of_y) ** 2 * mask
    return d.sum() / (mask.sum() * x.shape[1]).clamp_min(1.0)
