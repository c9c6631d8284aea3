"""Image loading and random crops for training. Images are RGB float [3, H, W] in [0, 1]."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from engines.model import IMAGE_SUFFIXES  # what OpenCV reads and writes here; one list for every command


class DataError(ValueError):
    """A training input (folder, image, style) is missing or unreadable."""


def list_images(path: Path) -> list[Path]:
    """One image file, or every image in a folder (sorted, non-recursive)."""
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            return files
        raise DataError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {path}")
    raise DataError(f"{path} does not exist")


def load_rgb(path: Path, max_side: int) -> torch.Tensor:
    """Read an image as RGB float [3,H,W] in [0,1], downscaled so its longer side ≤ max_side."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataError(f"cannot read image {path}")
    h, w = bgr.shape[:2]
    s = max_side / max(h, w)
    if s < 1:
        bgr = cv2.resize(bgr, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    return torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0


def random_crop(img: torch.Tensor, size: int, rng: random.Random, scale: tuple[float, float] = (0.5, 1.0)) -> torch.Tensor:
    """A random square crop covering ``scale`` of the shorter side, resized to ``size``, random h-flip."""
    _, h, w = img.shape
    side = max(8, int(min(h, w) * rng.uniform(*scale)))
    y, x = rng.randint(0, h - side), rng.randint(0, w - side)
    crop = img[:, y : y + side, x : x + side].unsqueeze(0)
    crop = torch.nn.functional.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
    return crop.flip(-1) if rng.random() < 0.5 else crop


BACKGROUND_TOL = 0.06
"""How far (max over RGB, 0–1 scale) a pixel may be from the border's colour and still be background."""


def background_mask(img: torch.Tensor, tol: float = BACKGROUND_TOL, min_border_share: float = 0.8, min_area: float = 0.05) -> torch.Tensor | None:
    """The flat background of a cut-out drawing, or None.

    A clip-art image whose transparency was flattened onto one colour (the cartoon set: white,
    41–81 % of each image) teaches a style loss that half of every frame is that colour: the
    first models turned photos into cut-outs on white. ``img`` is RGB float [3, H, W] in [0, 1].
    When at least ``min_border_share`` of the border pixels are within ``tol`` of their median
    colour, the background is every pixel within ``tol`` of it that is 8-connected to the border
    (a white eye inside the drawing stays foreground); returned as bool [H, W] when it covers at
    least ``min_area`` of the image. A painting or a photo has no such border: None."""
    rgb = img.permute(1, 2, 0).numpy()
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    colour = np.median(border, axis=0)
    if float((np.abs(border - colour).max(axis=1) <= tol).mean()) < min_border_share:
        return None
    near = (np.abs(rgb - colour).max(axis=2) <= tol).astype(np.uint8)
    _, labels = cv2.connectedComponents(near, connectivity=8)
    edge_labels = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    bg = np.isin(labels, edge_labels[edge_labels > 0]) & (near > 0)
    if float(bg.mean()) < min_area:
        return None
    return torch.from_numpy(bg)


def foreground_mask(img: torch.Tensor) -> torch.Tensor | None:
    """float [1, H, W]: 1 on the drawing, 0 on ``img``'s flat background; None when it has none."""
    bg = background_mask(img)
    return None if bg is None else (~bg).float()[None]


@dataclass
class StyleSet:
    """One style: a name and one or more reference images (a painting, or an artist's folder).

    ``foreground``: per image, a float [1, H, W] mask, 1 on the drawing and 0 on a flat
    background (``background_mask``), or None where the whole image is the style."""

    name: str
    images: list[torch.Tensor]
    foreground: list[torch.Tensor | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.foreground:
            self.foreground = [None] * len(self.images)
        if len(self.foreground) != len(self.images):
            raise ValueError(f"style {self.name}: {len(self.foreground)} masks for {len(self.images)} images")

    def crop(self, size: int, rng: random.Random, scale: tuple[float, float], tries: int = 8) -> torch.Tensor:
        """A random crop [3, size, size] of a random image (``random_crop``); for an image with a
        flat background, the one of ``tries`` crops that holds the most drawing."""
        i = rng.randrange(len(self.images))
        img, fg = self.images[i], self.foreground[i]
        if fg is None:
            return random_crop(img, size, rng, scale)
        crops = [random_crop(torch.cat([img, fg]), size, rng, scale) for _ in range(tries)]
        return max(crops, key=lambda c: float(c[3].mean()))[:3]


def style_name(path: Path) -> str:
    return path.stem if path.is_file() else path.name


def load_style(path: Path, max_side: int, mask_background: bool = True) -> StyleSet:
    """One ``--style``: a painting or a folder of an artist's works; with ``mask_background``,
    flat backgrounds (``background_mask``) are left out of its targets."""
    images = [load_rgb(f, max_side) for f in list_images(path)]
    return StyleSet(style_name(path), images, [foreground_mask(img) if mask_background else None for img in images])


def load_styles(paths: list[Path], max_side: int, mask_background: bool = True) -> list[StyleSet]:
    if not paths:
        raise DataError("at least one --style is required")
    styles = [load_style(p, max_side, mask_background) for p in paths]
    names = [s.name for s in styles]
    if len(set(names)) != len(names):
        raise DataError(f"style names must be unique, got {names}")
    return styles


class ContentSampler:
    """Random crops from a folder of photos, held in memory (the shared set is ~100 images)."""

    def __init__(self, folder: Path, crop: int, max_side: int, seed: int, scale: tuple[float, float] = (0.5, 1.0)) -> None:
        self.images = [load_rgb(p, max_side) for p in list_images(folder)]
        self.crop = crop
        self.scale = scale  # ``random_crop``'s: the crop's side as a share of the photo's shorter side
        self.rng = random.Random(seed)

    def batch(self, n: int) -> torch.Tensor:
        """[n, 3, crop, crop] float in [0, 1]."""
        return torch.stack([random_crop(self.rng.choice(self.images), self.crop, self.rng, self.scale) for _ in range(n)])
