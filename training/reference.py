"""The field's quality reference: optimisation-based stylisation (Gatys et al.) of one photo.

No network is trained: the photo's pixels themselves are optimised (Adam, from the photo) to
match the painting's Gram statistics under the same loss network and normalised losses the
generator trains with (``training.losses``). A few hundred steps give what a feed-forward model
approximates in one pass, so ``stylecast evaluate --reference`` scores a model beside it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from training import losses
from training.backbone import Backbone
from training.data import load_rgb
from training.losses import gram

REFERENCE_STEPS = 250
REFERENCE_STYLE_WEIGHT = 100.0
REFERENCE_LR = 0.02


@dataclass(frozen=True)
class ReferenceSettings:
    steps: int = REFERENCE_STEPS
    style_weight: float = REFERENCE_STYLE_WEIGHT
    content_weight: float = 1.0
    lr: float = REFERENCE_LR


def style_targets(backbone: Backbone, painting: torch.Tensor) -> dict[str, torch.Tensor]:
    """Gram matrices [1, C, C] of ``painting`` (RGB [3, H, W] in [0, 1]) at the style layers."""
    with torch.no_grad():
        feats = backbone(painting.unsqueeze(0))
        return {k: gram(feats[k]) for k in backbone.style_layers}


def stylise(backbone: Backbone, photo: torch.Tensor, targets: dict[str, torch.Tensor], settings: ReferenceSettings = ReferenceSettings()) -> torch.Tensor:
    """``photo`` RGB [1, 3, H, W] in [0, 1] optimised for ``settings.steps`` Adam steps on
    content (the photo's features) + style (``targets``) loss; returns [1, 3, H, W] in [0, 1]."""
    with torch.no_grad():
        f_in = backbone(photo)
    y = photo.clone().requires_grad_(True)
    opt = torch.optim.Adam([y], lr=settings.lr)
    for _ in range(settings.steps):
        f = backbone(y)
        loss = settings.content_weight * losses.content_loss(f, f_in, backbone.content_layers) \
            + settings.style_weight * losses.style_loss(f, targets, backbone.style_layers)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            y.clamp_(0.0, 1.0)
    return y.detach()


def painting_targets(backbone: Backbone, paths: list[Path], max_side: int) -> dict[str, torch.Tensor]:
    """The mean Gram targets of a style's reference images (files), each read at ``max_side``."""
    per = [style_targets(backbone, load_rgb(Path(p), max_side)) for p in paths]
    return {k: torch.stack([t[k] for t in per]).mean(0) for k in per[0]}


def default_cache_dir() -> Path:
    """Where renderings are kept between runs: ``$XDG_CACHE_HOME/stylecast/reference``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "stylecast" / "reference"


def reference_renderer(paths_by_style: dict[str, list[Path]], max_side: int = 640, settings: ReferenceSettings = ReferenceSettings(),
                       cache: Path | None = None) -> ReferenceRenderer:
    """``ReferenceRenderer`` with the EfficientNet-Lite0 loss network the generator trains with,
    caching its renderings in ``cache`` (default ``default_cache_dir()``)."""
    from training.backbone import build_backbone

    return ReferenceRenderer(build_backbone("efficientnet_lite0"), paths_by_style, max_side, settings, cache or default_cache_dir())


class ReferenceRenderer:
    """Gatys renderings of BGR uint8 frames, one style at a time; style targets made once."""

    def __init__(self, backbone: Backbone, paths_by_style: dict[str, list[Path]], max_side: int, settings: ReferenceSettings, cache: Path | None = None) -> None:
        self.backbone, self.settings, self.cache = backbone, settings, cache
        self.targets = {name: painting_targets(backbone, paths, max_side) for name, paths in paths_by_style.items() if paths}
        self.keys = {name: _style_key(paths, max_side, settings) for name, paths in paths_by_style.items() if paths}

    def __call__(self, bgr: np.ndarray, style: str) -> np.ndarray:
        """[H, W, 3] uint8 BGR → the reference rendering, same shape and dtype (from the cache
        when this photo, style and settings were rendered before)."""
        path = None
        if self.cache is not None:
            key = hashlib.sha256(self.keys[style].encode() + bgr.tobytes() + repr(bgr.shape).encode()).hexdigest()[:32]
            path = self.cache / f"{key}.png"
            hit = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
            if hit is not None and hit.shape == bgr.shape:
                return hit
        x = torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).permute(2, 0, 1).float().unsqueeze(0) / 255.0
        y = stylise(self.backbone, x, self.targets[style], self.settings)
        out = np.ascontiguousarray((y[0].permute(1, 2, 0).numpy()[:, :, ::-1] * 255.0).round().clip(0, 255).astype(np.uint8))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), out)
        return out


def _style_key(paths: list[Path], max_side: int, settings: ReferenceSettings) -> str:
    """What a rendering depends on besides the photo: the paintings' bytes, their size, the settings."""
    h = hashlib.sha256(f"{max_side}{settings}".encode())
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()
