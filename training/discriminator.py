"""Multi-scale, style-conditioned PatchGAN discriminator with spectral norm."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class PatchD(nn.Module):
    """A 70×70-ish PatchGAN; one logit map per style, the sample's style picks its map.

    Input RGB [N,3,H,W] in [0,1] and style index [N] → logits [N,1,H/8,W/8].
    """

    def __init__(self, num_styles: int, width: int = 32) -> None:
        super().__init__()
        c = width
        self.body = nn.Sequential(
            spectral_norm(nn.Conv2d(3, c, 4, 2, 1)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(c, 2 * c, 4, 2, 1)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(2 * c, 4 * c, 4, 2, 1)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(4 * c, 4 * c, 3, 1, 1)), nn.LeakyReLU(0.2),
        )
        self.out = spectral_norm(nn.Conv2d(4 * c, num_styles, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        logits = self.out(self.body(x * 2 - 1))
        return logits.gather(1, style.view(-1, 1, 1, 1).expand(-1, 1, *logits.shape[2:]))


class MultiScaleD(nn.Module):
    """Two PatchDs, at full and half resolution; returns one logit map per scale."""

    def __init__(self, num_styles: int, width: int = 32, scales: int = 2) -> None:
        super().__init__()
        self.ds = nn.ModuleList([PatchD(num_styles, width) for _ in range(scales)])

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i, d in enumerate(self.ds):
            outs.append(d(x if i == 0 else F.avg_pool2d(x, 2 ** i), style))
        return outs
