"""Random small affine motion for the temporal-consistency loss and the evaluation clips."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(n: int, max_shift: float, max_rot_deg: float, max_zoom: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """[N, 2, 3] affine matrices in normalised coordinates (for ``F.affine_grid``).

    ``max_shift`` is a fraction of the half-width (normalised units), ``max_zoom`` a relative scale.
    """
    u = torch.rand(n, 4, generator=generator) * 2 - 1
    ang = u[:, 0] * math.radians(max_rot_deg)
    scale = 1 + u[:, 1] * max_zoom
    cos, sin = torch.cos(ang) * scale, torch.sin(ang) * scale
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2] = cos, -sin, u[:, 2] * max_shift
    theta[:, 1, 0], theta[:, 1, 1], theta[:, 1, 2] = sin, cos, u[:, 3] * max_shift
    return theta


def warp(x: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp [N,C,H,W] by theta [N,2,3]; returns (warped, valid mask [N,1,H,W] of in-bounds pixels)."""
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    warped = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    inside = (grid.abs() <= 1).all(dim=-1, keepdim=True).permute(0, 3, 1, 2).to(x.dtype)
    return warped, inside


def centre_crop(t: torch.Tensor, margin: int) -> torch.Tensor:
    """[..., H, W] → [..., H−2m, W−2m], ``margin`` px cut from every side (a view, no copy)."""
    return t[..., margin:-margin, margin:-margin] if margin else t


def second_view(context: torch.Tensor, theta: torch.Tensor, margin: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The moved view of a crop with context, for the temporal loss: ``context`` [N,C,h+2m,w+2m]
    is warped by ``theta`` (normalised to the context) and centre-cropped to h×w, so the moved
    view is real picture everywhere, not a smeared border (which would also shift the
    generator's instance-norm statistics, something no camera does). The unmoved view is
    ``centre_crop(context, margin)``.

    Returns (moved view [N,C,h,w], theta [N,2,3] re-expressed for h×w images: the same pixel
    motion, so ``warp(G(x), theta_c)`` is what ``G(moved)`` should equal where ``warp``'s mask is
    valid). The translation, in units of the half-size, scales by (w+2m)/w and (h+2m)/h; for a
    non-square crop the linear part is rescaled the same way.
    """
    if margin < 0 or 2 * margin >= min(context.shape[-2:]):
        raise ValueError(f"margin {margin} does not fit a {tuple(context.shape[-2:])} px context")
    moved, _ = warp(context, theta)
    h, w = context.shape[-2:]
    m = margin
    # D maps the crop's normalised units to the context's: theta_c = D·[A | t]·diag(D⁻¹, 1)
    d = torch.tensor([w / (w - 2 * m), h / (h - 2 * m)], dtype=theta.dtype, device=theta.device)
    theta_c = torch.cat([d[:, None] * theta[:, :, :2] / d[None, :], d[:, None] * theta[:, :, 2:]], dim=2)
    return centre_crop(moved, m), theta_c
