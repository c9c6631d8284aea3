"""Image loading and random crops for training. Images are RGB float [3, H, W] in [0, 1]."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


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
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {path}")
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


@dataclass
class StyleSet:
    """One style: a name and one or more reference images (a painting, or an artist's folder)."""

    name: str
    images: list[torch.Tensor]


def style_name(path: Path) -> str:
    return path.stem if path.is_file() else path.name


def load_styles(paths: list[Path], max_side: int) -> list[StyleSet]:
    if not paths:
        raise DataError("at least one --style is required")
    styles = [StyleSet(style_name(p), [load_rgb(f, max_side) for f in list_images(p)]) for p in paths]
    names = [s.name for s in styles]
    if len(set(names)) != len(names):
        raise DataError(f"style names must be unique, got {names}")
    return styles


class ContentSampler:
    """Random crops from a folder of photos, held in memory (the shared set is ~100 images)."""

    def __init__(self, folder: Path, crop: int, max_side: int, seed: int) -> None:
        self.images = [load_rgb(p, max_side) for p in list_images(folder)]
        self.crop = crop
        self.rng = random.Random(seed)

    def batch(self, n: int) -> torch.Tensor:
        return torch.stack([random_crop(self.rng.choice(self.images), self.crop, self.rng) for _ in range(n)])
