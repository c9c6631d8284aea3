"""Shared fixtures: a tiny generator trained by our own training code (fake backbone, a few
steps) and exported to ONNX in a temporary directory, so tests need no weights file."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if not DATA.is_dir():
    DATA = Path(os.environ.get("STYLECAST_DATA", "../shared/data")).resolve()


def make_images(folder: Path, n: int, size: tuple[int, int], seed: int) -> Path:
    """Synthetic photos (gradients + shapes), for when ../shared/data is absent."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        h, w = size
        img = np.zeros((h, w, 3), np.uint8)
        img[:] = rng.integers(0, 255, 3)
        cv2.circle(img, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(5, h // 2)), rng.integers(0, 255, 3).tolist(), -1)
        cv2.imwrite(str(folder / f"img_{i:02d}.png"), img)
    return folder


def scrambled_generator(tier: str, num_styles: int, seed: int = 0):  # type: ignore[no-untyped-def]
    """A ``tier`` generator with every weight moved off its init (a fresh one's heads are near
    zero and would hide what they do), in eval mode: an untrained model of that architecture."""
    import torch

    from training.generator import Generator, tier_spec

    torch.manual_seed(seed)
    g = Generator(tier_spec(tier, num_styles))
    with torch.no_grad():
        for p in g.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return g.eval()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of a 2-style generator trained for 4 steps with the fake backbone."""
    from training.config import TrainConfig
    from training.train import train

    root = tmp_path_factory.mktemp("tiny")
    content = make_images(root / "content", 4, (48, 64), 0)
    s1 = make_images(root / "style_a", 2, (64, 64), 1)
    s2 = root / "style_b.png"
    cv2.imwrite(str(s2), np.tile(np.arange(64, dtype=np.uint8)[None, :, None] * 4, (64, 1, 3)))
    cfg = TrainConfig(content=str(content), styles=(str(s1), str(s2)), out=str(root / "runs"), steps=4, batch=2, crop=32,
                      style_size=64, tier="fast", backbone="fake", sample_every=2, ckpt_every=2, device="cpu")
    return train(cfg)


@pytest.fixture(scope="session")
def tiny_model(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.export import export_checkpoint

    return export_checkpoint(tiny_run, tmp_path_factory.mktemp("model") / "tiny.onnx")
