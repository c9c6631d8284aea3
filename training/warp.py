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
