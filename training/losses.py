"""Small pure loss functions. Images are RGB float [N, C, H, W]; features are dicts of such maps.

Perceptual losses are normalised by their target's scale, because raw Gram magnitudes differ
~20× between layers and would otherwise let one layer dominate.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from training.layers import separable_blur, separable_kernels


def gram(f: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """[N, C, H, W] → [N, C, C] Gram matrix normalised by C·H·W (fast_neural_style's convention).

    ``mask`` [N, 1, h, w] in [0, 1] (any size; area-averaged to H×W) weights each position: the
    Gram of the masked region alone, normalised by C times its area. All ones is ``gram(f)``."""
    n, c, h, w = f.shape
    v = f.reshape(n, c, h * w)
    if mask is None:
        return v @ v.transpose(1, 2) / (c * h * w)
    m = F.adaptive_avg_pool2d(mask.to(f.dtype), (h, w)).reshape(n, 1, h * w)
    return (v * m) @ v.transpose(1, 2) / (c * m.sum(dim=2, keepdim=True).clamp_min(1e-6))


def content_loss(feat_out: dict[str, torch.Tensor], feat_in: dict[str, torch.Tensor], layers: tuple[str, ...]) -> torch.Tensor:
    """Mean over layers of MSE(out, in) / mean(in²)."""
    terms = [F.mse_loss(feat_out[k], feat_in[k]) / feat_in[k].pow(2).mean().clamp_min(1e-8) for k in layers]
    return torch.stack(terms).mean()


def style_loss(feat_out: dict[str, torch.Tensor], gram_target: dict[str, torch.Tensor], layers: tuple[str, ...]) -> torch.Tensor:
    """Mean over layers of MSE(Gram(out), target) / mean(target²); target is [N, C, C] per sample."""
    terms = []
    for k in layers:
        t = gram_target[k]
        terms.append(F.mse_loss(gram(feat_out[k]), t) / t.pow(2).mean().clamp_min(1e-12))
    return torch.stack(terms).mean()


def tv_loss(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation, mean absolute neighbour difference."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def gaussian_radius(sigma: float) -> int:
    """Half-width (px) of the Gaussian kernel ``gaussian_blur`` uses: ⌈3σ⌉, at least 1."""
    return max(1, math.ceil(3 * sigma))


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [N, C, H, W] (radius ``gaussian_radius``, reflected edges);
    σ ≤ 0 is identity."""
    if sigma <= 0:
        return x
    t = torch.arange(-gaussian_radius(sigma), gaussian_radius(sigma) + 1, dtype=torch.float32, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return separable_blur(x, *separable_kernels(k / k.sum(), x.shape[1]))


def temporal_loss(out_of_warped: torch.Tensor, warped_out: torch.Tensor, valid: torch.Tensor, sigma: float = 0.0,
                  sample_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Compound regularisation (Wang et al. 2020): |G(warp(x)+n) − warp(G(x))| on valid pixels.

    With ``sigma`` > 0 the difference is first blurred with a Gaussian of that σ (px) and the valid
    mask shrunk by the blur's radius — what ``stylecast evaluate``'s warp error measures. Unblurred,
    the loss is dominated by what no generator can remove: the second view's noise, which the
    generator's full-resolution path passes through, and the bilinear warp's softening of
    ``G(x)``; under L1 that floor drowns the gradient of the flicker it is meant to remove.

    With ``sample_weights`` [N], the mean over samples of each one's masked mean times its weight.
    """
    diff = out_of_warped - warped_out
    if sigma > 0:
        r = gaussian_radius(sigma)
        diff = gaussian_blur(diff * valid, sigma)
        valid = -F.max_pool2d(-valid, 2 * r + 1, stride=1, padding=r)  # erode by r
    diff = diff.abs() * valid
    c = out_of_warped.shape[1]
    if sample_weights is not None:
        per_sample = diff.sum(dim=(1, 2, 3)) / (valid.sum(dim=(1, 2, 3)) * c).clamp_min(1.0)
        return (per_sample * sample_weights).mean()
    return diff.sum() / (valid.sum() * c).clamp_min(1.0)


LUMA_RGB = (0.299, 0.587, 0.114)
"""Rec. 601 luma weights, OpenCV's ``COLOR_BGR2GRAY``."""


def luma(img: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] RGB → [N, 1, H, W] luma (``LUMA_RGB``)."""
    return (img * torch.tensor(LUMA_RGB, dtype=img.dtype, device=img.device).view(1, 3, 1, 1)).sum(1, keepdim=True)


def soft_edges(img: torch.Tensor, sigma: float = 1.0, threshold: float = 100 / 255, softness: float = 20 / 255) -> torch.Tensor:
    """A differentiable Canny-like edge map [N,1,H,W] in (0, 1) of RGB images [N,3,H,W] in [0, 1].

    Luma blurred with a Gaussian of ``sigma`` px, then OpenCV's 3×3 Sobel gradient with its L1
    magnitude |gx| + |gy| (what ``cv2.Canny`` thresholds), through a sigmoid centred on
    ``threshold`` with width ``softness`` (0–1 scale). The defaults sit between the 50 and 150
    (0–255) hysteresis thresholds ``stylecast evaluate``'s edge F1 uses, so gradients well
    below Canny's (faint strokes, texture) count for nothing and edges it would find count fully.
    """
    g = F.pad(gaussian_blur(luma(img), sigma), (1, 1, 1, 1), mode="replicate")
    sx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=img.dtype, device=img.device)
    k = torch.stack([sx, sx.t()]).unsqueeze(1)  # [2,1,3,3]: x and y derivatives
    grad = F.conv2d(g, k)
    return torch.sigmoid((grad.abs().sum(1, keepdim=True) - threshold) / softness)


def edge_loss(out: torch.Tensor, inp: torch.Tensor, sample_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean |soft_edges(out) − soft_edges(inp)|: edges the output adds or loses against the
    photo's (both [N,3,H,W] RGB in [0, 1]). What edge F1 scores, as a loss. With
    ``sample_weights`` [N], the mean over samples of each one's loss times its weight."""
    with torch.no_grad():
        target = soft_edges(inp)
    return _sample_mean((soft_edges(out) - target).abs().mean(dim=(1, 2, 3)), sample_weights)


def _sample_mean(per_sample: torch.Tensor, sample_weights: torch.Tensor | None) -> torch.Tensor:
    """[N] per-sample losses → their mean, each times its weight when ``sample_weights`` [N] is given."""
    return per_sample.mean() if sample_weights is None else (per_sample * sample_weights).mean()


def distill_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Match the teacher's output [N,3,H,W] (mean absolute error)."""
    return (student - teacher).abs().mean()


def d_hinge_loss(real_logits: list[torch.Tensor], fake_logits: list[torch.Tensor]) -> torch.Tensor:
    """Hinge loss for the discriminator, summed over scales."""
    return sum((F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real_logits, fake_logits, strict=True)), torch.zeros(()))


def g_hinge_loss(fake_logits: list[torch.Tensor]) -> torch.Tensor:
    """Hinge loss for the generator, summed over scales."""
    return sum((-f.mean() for f in fake_logits), torch.zeros(()))
