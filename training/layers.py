"""Building blocks of the generator: conditional instance norm and conv units.

All tensors are NCHW float32. Style weights ``w`` are ``[N, S]`` rows that sum to 1 for a
pure or mixed style (any non-negative mix is accepted; it is not renormalised here).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CondInstanceNorm(nn.Module):
    """Instance norm whose affine (gamma, beta) is a style-weighted mix of per-style rows.

    ``gamma``/``beta`` are ``[S, C]``; the per-sample affine is ``w @ gamma`` (``[N, C]``), so a
    mix of styles interpolates the normalisation statistics (Dumoulin et al. 2017).
    """

    def __init__(self, channels: int, num_styles: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(num_styles, channels))
        self.beta = nn.Parameter(torch.zeros(num_styles, channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        # Statistics in float32 even under autocast: instance norm in FP16 is the known
        # source of NaN / washed-out output.
        h = F.instance_norm(x.float(), eps=1e-5).to(x.dtype)
        g = (w @ self.gamma).to(x.dtype)[:, :, None, None]
        b = (w @ self.beta).to(x.dtype)[:, :, None, None]
        return h * g + b


def separable_kernels(taps: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The 1-D kernel ``taps`` [n] (n odd, normalised by the caller) as depthwise conv weights:
    a row [C, 1, 1, n] and a column [C, 1, n, 1]."""
    n = taps.numel()
    return taps.view(1, 1, 1, n).expand(channels, 1, 1, n).contiguous(), taps.view(1, 1, n, 1).expand(channels, 1, n, 1).contiguous()


def separable_blur(x: torch.Tensor, row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
    """Depthwise blur of [N, C, H, W] by ``separable_kernels``' row then column, edges reflected;
    same shape out. 2n taps a pixel, not n² (at full resolution most of a 2-D filter's cost in
    ONNX Runtime)."""
    p, c = row.shape[-1] // 2, x.shape[1]
    x = F.pad(x, (p, p, p, p), mode="reflect")
    return F.conv2d(F.conv2d(x, row.to(x.dtype), groups=c), col.to(x.dtype), groups=c)


class ConvNormAct(nn.Module):
    """Padded conv → conditional instance norm → ReLU (``act`` False: no ReLU). ``pad`` defaults
    to ``k // 2``, which keeps the size at stride 1; ``padding`` is ``reflect`` (its own layer,
    a Pad node in ONNX) or ``zeros`` (the conv's own padding, no extra node)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, num_styles: int, act: bool = True, pad: int | None = None,
                 padding: str = "reflect") -> None:
        super().__init__()
        p = k // 2 if pad is None else pad
        reflect = padding == "reflect"
        self.pad = nn.ReflectionPad2d(p) if reflect else nn.Identity()
        self.conv = nn.Conv2d(cin, cout, k, stride, padding=0 if reflect else p)
        self.norm = CondInstanceNorm(cout, num_styles)
        self.act = act

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.conv(self.pad(x)), w)
        return F.relu(h) if self.act else h


class ResBlock(nn.Module):
    """Two 3×3 ConvNormAct units with an identity skip (fast_neural_style's residual block)."""

    def __init__(self, channels: int, num_styles: int, padding: str = "reflect") -> None:
        super().__init__()
        self.a = ConvNormAct(channels, channels, 3, 1, num_styles, padding=padding)
        self.b = ConvNormAct(channels, channels, 3, 1, num_styles, act=False, padding=padding)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return x + self.b(self.a(x, w), w)


