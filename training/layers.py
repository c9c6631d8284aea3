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


class Blur2d(nn.Module):
    """Fixed binomial low-pass, depthwise, reflection-padded: the anti-aliasing filter in front
    of a subsampling step (Zhang 2019, "Making convolutional networks shift-invariant again").
    ``taps`` is the 1-D kernel ((1, 2, 1): 3×3; (1, 4, 6, 4, 1): 5×5, σ = 1 px); it is applied
    along both axes, normalised to sum 1. [N, C, H, W] → same shape. No parameters; the kernels
    are non-persistent buffers, so checkpoints are unchanged by it."""

    def __init__(self, channels: int, taps: tuple[float, ...] = (1.0, 2.0, 1.0)) -> None:
        super().__init__()
        k = torch.tensor(taps)
        row, col = separable_kernels(k / k.sum(), channels)
        self.register_buffer("row", row, persistent=False)
        self.register_buffer("col", col, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return separable_blur(x, self.row, self.col)


UP_DOWN_TAPS = (1.0, 3.0, 3.0, 1.0)
"""The 4-tap kernel that undoes a bilinear 2× upsampling (``align_corners=False``): its adjoint,
normalised. Applied with stride 2 it puts each output sample back on its input's grid."""


def filtered_relu(h: torch.Tensor, row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
    """ReLU with less aliasing (Karras et al. 2021, "Alias-free GANs", simplified): 2× bilinear
    upsampling, ReLU, then a [1, 3, 3, 1] low-pass and 2× subsampling back to the input's grid.
    A plain ReLU's kinks make harmonics above the grid's Nyquist rate that fold back as a pattern
    tied to the pixel grid, so the output changes when the picture moves by a fraction of a cell;
    here they are made at twice the rate and mostly filtered out first. [N, C, H, W] → same shape;
    ``row`` [C, 1, 1, 4] and ``col`` [C, 1, 4, 1] from ``separable_kernels`` (even taps allowed)."""
    c = h.shape[1]
    u = F.relu(F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False))
    u = F.pad(u, (1, 1, 1, 1), mode="replicate")
    u = F.conv2d(u, row.to(u.dtype), stride=(1, 2), groups=c)
    return F.conv2d(u, col.to(u.dtype), stride=(2, 1), groups=c)


class ConvNormAct(nn.Module):
    """Reflection-padded conv → conditional instance norm → ReLU (optional; ``filtered``: the
    anti-aliased ``filtered_relu``, same parameters, so weights move between the two)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, num_styles: int, act: bool = True, filtered: bool = False) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(k // 2)
        self.conv = nn.Conv2d(cin, cout, k, stride)
        self.norm = CondInstanceNorm(cout, num_styles)
        self.act = act
        self.filtered = filtered and act
        if self.filtered:
            k1 = torch.tensor(UP_DOWN_TAPS)
            row, col = separable_kernels(k1 / k1.sum(), cout)
            self.register_buffer("act_row", row, persistent=False)
            self.register_buffer("act_col", col, persistent=False)

    def activate(self, h: torch.Tensor) -> torch.Tensor:
        """The unit's nonlinearity on its normalised [N, C, H, W] features."""
        if not self.act:
            return h
        return filtered_relu(h, self.act_row, self.act_col) if self.filtered else F.relu(h)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.activate(self.norm(self.conv(self.pad(x)), w))


class ResBlock(nn.Module):
    """Two 3×3 ConvNormAct units with an identity skip (fast_neural_style's residual block);
    ``filtered``: the first one's ReLU is ``filtered_relu``."""

    def __init__(self, channels: int, num_styles: int, filtered: bool = False) -> None:
        super().__init__()
        self.a = ConvNormAct(channels, channels, 3, 1, num_styles, filtered=filtered)
        self.b = ConvNormAct(channels, channels, 3, 1, num_styles, act=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return x + self.b(self.a(x, w), w)


LANCZOS_LOBES = 3
"""Lobes ``a`` of the Lanczos window in ``lanczos_phase_taps``: 2a + 1 taps per phase."""


def lanczos_phase_taps(factor: int, a: int = LANCZOS_LOBES) -> torch.Tensor:
    """[factor, 2a + 1] float32: output phase r of a ``factor``× upsampling (``align_corners=False``:
    output pixel j reads input position (j + ½) / factor − ½) is the sum over input offsets
    −a … a of these weights, Lanczos-a (sinc(t)·sinc(t / a)) normalised to sum 1 per phase.

    Bilinear interpolation renders a signal differently at each sub-cell phase: at a phase of
    half a cell a sinusoid of f cycles/cell keeps cos(πf) of its amplitude, 0.71 at f = ¼, where
    at a whole cell it keeps all of it. So a stroke on the ¼-res grid gains and loses contrast as
    the camera moves 1–3 px. The largest error against the continuous sinusoid, over phases
    and pixels: bilinear 5 % at f = 0.1, 27 % at ¼; Lanczos-3 under 2.5 % up to f = 0.3."""
    rows = []
    for r in range(factor):
        d = (2 * r + 1 - factor) / (2 * factor)  # the phase's offset from its nearest input sample
        t = torch.tensor([d - k for k in range(-a, a + 1)], dtype=torch.float64)
        w = torch.where(t.abs() < a, torch.sinc(t) * torch.sinc(t / a), torch.zeros_like(t))
        rows.append(w / w.sum())
    return torch.stack(rows).float()


def replicate_pad(z: torch.Tensor, n: int) -> torch.Tensor:
    """[N, C, h, w] → [N, C, h + 2n, w + 2n], edge rows and columns repeated n times. Slices and
    concats rather than ``Pad(mode=edge)``, which not every TensorRT release's ONNX parser takes."""
    z = torch.cat([z[:, :, :1]] * n + [z] + [z[:, :, -1:]] * n, dim=2)  # concats, not expand: the
    return torch.cat([z[:, :, :, :1]] * n + [z] + [z[:, :, :, -1:]] * n, dim=3)  # graph stays in TensorRT's op list


def lanczos_phase_weight(channels: int, factor: int, a: int = LANCZOS_LOBES) -> torch.Tensor:
    """[channels·factor², 1, 2a + 1, 2a + 1]: a grouped conv (groups = ``channels``) whose
    depth-to-space by ``factor`` is the separable Lanczos upsampling of each channel (output
    channel ``c·factor² + i·factor + j`` is phase (i, j) of channel c)."""
    k = lanczos_phase_taps(factor, a)
    w2 = k[:, None, :, None] * k[None, :, None, :]  # [i, j, ky, kx]
    n = 2 * a + 1
    return w2.reshape(1, factor * factor, n, n).expand(channels, -1, -1, -1).reshape(channels * factor * factor, 1, n, n).contiguous()


def lanczos_upsample(z: torch.Tensor, factor: int, a: int = LANCZOS_LOBES) -> torch.Tensor:
    """[N, C, h, w] → [N, C, factor·h, factor·w], Lanczos-a, borders by edge replication (as
    bilinear's clamp). One grouped conv at the input's resolution, then depth-to-space."""
    c = z.shape[1]
    wt = lanczos_phase_weight(c, factor, a).to(z.dtype)
    return F.pixel_shuffle(F.conv2d(replicate_pad(z, a), wt, groups=c), factor)
