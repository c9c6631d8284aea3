"""A cartoon rendering of a photo by fixed image operations: the target of the cartoon prior.

The cartoon set is clip-art: flat, saturated fills and dark outlines on white. A Gram loss
against it teaches its statistics, not how to turn a photo into one: the generator learnt to
cut the subject out onto white, or (with the white masked out) to paint yellow blobs. This
filter is what a person would call a cartoon of the photo, made the way non-photorealistic
renderers make one (Winnemöller et al. 2006, "Real-time video abstraction"; the surface and
structure representations of Wang & Yu 2020, "White-box cartoonization"):

1. flatten: ``iterations`` bilateral filters, so regions go flat and edges stay;
2. saturate: chroma × ``saturation`` around each pixel's luma;
3. outline: an XDoG edge map of the photo's luma, soft-thresholded, darkens the edges.

``losses.prior_loss`` pulls a style's output towards it, beside the Gram, adversarial and
temporal losses: the intent is a photo → cartoon mapping that the discriminator and Gram loss
then push towards the drawings. In 800-step fine-tunes of the bundled model the style learnt
the photo instead, and the rendering itself is no nearer the drawings by the Gram metric
(docs/QUALITY.md). All of it is smooth in the input (no quantisation, soft thresholds): on
``stylecast evaluate``'s clips the rendering's warp ratio is 1.36.

Images are RGB float [N, 3, H, W] in [0, 1]; everything is batched and runs on the images' device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from training.losses import gaussian_blur, luma


@dataclass(frozen=True)
class CartoonFilter:
    """The filter's settings. Defaults were chosen on the content photos by the look and by the
    target's own warp ratio on ``stylecast evaluate``'s clips (docs/QUALITY.md)."""

    iterations: int = 3  # bilateral passes
    radius: int = 3  # bilateral window half-width, px (7×7)
    sigma_space: float = 5.0  # px
    sigma_colour: float = 30 / 255  # RGB distance, 0–1 scale
    saturation: float = 1.5  # chroma gain
    line: float = 0.6  # how dark an outline is, 0 (none) … 1 (black)
    line_sigma: float = 1.5  # XDoG inner Gaussian, px
    line_k: float = 1.6  # outer Gaussian = line_k × line_sigma
    line_tau: float = 0.98
    line_eps: float = -1.0 / 255  # DoG level (0–1 scale) below which a pixel starts to darken
    line_phi: float = 0.2 * 255  # steepness of the soft threshold, per unit of DoG (0–1 scale)

    def __post_init__(self) -> None:
        if self.iterations < 0 or self.radius < 1 or self.sigma_space <= 0 or self.sigma_colour <= 0:
            raise ValueError(f"bilateral settings out of range: {self}")
        if self.saturation < 0 or not 0 <= self.line <= 1 or self.line_sigma <= 0 or self.line_k <= 1:
            raise ValueError(f"colour/outline settings out of range: {self}")


def bilateral(x: torch.Tensor, radius: int, sigma_space: float, sigma_colour: float) -> torch.Tensor:
    """One bilateral filter of [N, C, H, W] over a (2r+1)² window, reflected edges: each pixel
    the mean of its neighbours weighted by distance (``sigma_space``, px) and by colour distance
    (``sigma_colour``, in x's units). One shifted view at a time, so memory stays ~3× the input's."""
    h, w = x.shape[-2:]
    xp = F.pad(x, (radius,) * 4, mode="reflect")
    acc, norm = torch.zeros_like(x), torch.zeros_like(x[:, :1])
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            v = xp[:, :, dy:dy + h, dx:dx + w]
            space = math.exp(-((dy - radius) ** 2 + (dx - radius) ** 2) / (2 * sigma_space**2))
            wgt = space * torch.exp((v - x).pow(2).sum(1, keepdim=True) / (-2 * sigma_colour**2))
            acc += wgt * v
            norm += wgt
    return acc / norm


def outline(y: torch.Tensor, f: CartoonFilter) -> torch.Tensor:
    """[N, 1, H, W] luma → [N, 1, H, W] in [1 − f.line, 1]: 1 away from edges, darker on the
    dark side of each edge (XDoG with a tanh soft threshold)."""
    d = gaussian_blur(y, f.line_sigma) - f.line_tau * gaussian_blur(y, f.line_sigma * f.line_k)
    e = torch.where(d >= f.line_eps, torch.ones_like(d), 1 + torch.tanh(f.line_phi * (d - f.line_eps)))
    return 1 - f.line * (1 - e)


def cartoon(x: torch.Tensor, f: CartoonFilter = CartoonFilter()) -> torch.Tensor:
    """The cartoon rendering [N, 3, H, W] in [0, 1] of photos ``x`` [N, 3, H, W] RGB in [0, 1]."""
    s = x
    for _ in range(f.iterations):
        s = bilateral(s, f.radius, f.sigma_space, f.sigma_colour)
    y = luma(s)
    s = y + f.saturation * (s - y)
    return (s * outline(luma(x), f)).clamp(0, 1)
