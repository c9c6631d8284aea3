"""Style targets leave a cut-out drawing's flat background out (``training.data.background_mask``)."""

from __future__ import annotations

import random
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.conftest import DATA
from training import losses
from training.data import StyleSet, background_mask, load_style, random_crop


def clip_art(h: int = 96, w: int = 128, bg: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """BGR uint8: a flat ``bg`` canvas with an outlined orange disk holding a white eye."""
    img = np.full((h, w, 3), bg, np.uint8)
    cv2.circle(img, (w // 2, h // 2), 30, (0, 140, 255), -1)
    cv2.circle(img, (w // 2, h // 2), 30, (0, 0, 0), 2)
    cv2.circle(img, (w // 2 + 8, h // 2 - 8), 6, (255, 255, 255), -1)
    return img


def as_rgb(bgr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).permute(2, 0, 1).float() / 255.0


@pytest.mark.parametrize("bg", [(255, 255, 255), (20, 20, 20)])
def test_background_is_the_flat_border_colour_connected_to_the_border(bg: tuple[int, int, int]) -> None:
    img = clip_art(bg=bg)
    mask = background_mask(as_rgb(img))
    assert mask is not None and mask.shape == (96, 128) and mask.dtype == torch.bool
    yy, xx = np.mgrid[:96, :128]
    r = np.hypot(yy - 48, xx - 64)
    assert bool(mask[torch.from_numpy(r > 33)].all())  # outside the disk and its outline
    assert not bool(mask[torch.from_numpy(r < 29)].any())  # the disk, and the white eye inside it
    assert float(mask.float().mean()) == pytest.approx(1 - np.pi * 31**2 / (96 * 128), abs=0.02)


def test_a_painting_or_a_photo_has_no_background() -> None:
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8), (0, 0), 2)
    assert background_mask(as_rgb(texture)) is None
    framed = texture.copy()  # a one-pixel flat frame is a border, but not a background
    framed[0], framed[-1], framed[:, 0], framed[:, -1] = 255, 255, 255, 255
    assert background_mask(as_rgb(framed)) is None


def test_masked_gram_is_the_gram_of_the_masked_region() -> None:
    f = torch.randn(2, 5, 8, 8)
    torch.testing.assert_close(losses.gram(f, torch.ones(2, 1, 8, 8)), losses.gram(f))
    left = torch.zeros(2, 1, 32, 32)
    left[..., :16] = 1.0  # at 4× the features' size: area-averaged down to them
    torch.testing.assert_close(losses.gram(f, left), losses.gram(f[..., :4]))
    assert float((losses.gram(f, left) - losses.gram(f)).abs().max()) > 1e-3


def test_style_crops_prefer_the_drawing_and_leave_paintings_as_they_were(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "art.png"), clip_art(192, 256))
    art = load_style(tmp_path / "art.png", 384)
    fg = art.foreground[0]
    assert fg is not None and fg.shape == (1, 192, 256)
    plain = load_style(tmp_path / "art.png", 384, mask_background=False)
    assert plain.foreground == [None]

    def drawn(style: StyleSet) -> float:  # mean share of the disk's colour in 40 crops
        rng = random.Random(0)
        crops = [style.crop(32, rng, (0.3, 0.5)) for _ in range(40)]
        return float(np.mean([float(((c[0] - c[2]) > 0.5).float().mean()) for c in crops]))

    assert drawn(art) > 1.5 * drawn(plain)
    a, b = random.Random(3), random.Random(3)  # without a mask: the same crops as before masks existed
    torch.testing.assert_close(plain.crop(32, a, (0.3, 0.8)), random_crop(plain.images[b.randrange(1)], 32, b, (0.3, 0.8)))


def test_style_with_one_mask_per_image() -> None:
    with pytest.raises(ValueError, match="masks for"):
        StyleSet("x", [torch.zeros(3, 8, 8)], [None, None])


@pytest.mark.skipif(not (DATA / "styles" / "cartoon").is_dir(), reason="needs ../shared/data (the cartoon set)")
def test_the_shipped_cartoon_set_is_masked_and_the_paintings_are_not() -> None:
    cartoon = load_style(DATA / "styles" / "cartoon", 384)
    shares = [1 - float(m.mean()) for m in cartoon.foreground if m is not None]
    assert len(shares) == len(cartoon.images) == 40
    assert 0.35 < min(shares) and max(shares) < 0.9  # the README's "transparent background flattened onto white"
    for name in ("hokusai_great_wave.jpg", "kandinsky_composition_viii.jpg", "van_gogh_night_cafe.jpg"):
        assert load_style(DATA / "styles" / name, 384).foreground == [None]


def test_content_photos_are_held_at_twice_the_crop_and_crops_zoom_by_their_share(tmp_path: Path) -> None:
    """Photos are held at max(2 × crop, 384) px before cropping; a crop's share of the photo's
    shorter side sets the zoom the generator trains on."""
    from training.config import TrainConfig
    from training.data import ContentSampler

    assert TrainConfig(content="c", styles=("a",)).content_max_side() == 384
    assert TrainConfig(content="c", styles=("a",), crop=256).content_max_side() == 512
    # a photo of 1 px vertical stripes: a crop of a small share keeps them (zoom ~1), the whole
    # short side shrinks them ~4× into grey
    stripes = np.zeros((256, 256, 3), np.uint8)
    stripes[:, ::2] = 255
    (tmp_path / "c").mkdir()
    cv2.imwrite(str(tmp_path / "c" / "s.png"), stripes)
    near = ContentSampler(tmp_path / "c", 64, max_side=256, seed=0, scale=(0.25, 0.25)).batch(4)
    far = ContentSampler(tmp_path / "c", 64, max_side=256, seed=0, scale=(1.0, 1.0)).batch(4)
    assert near.shape == far.shape == (4, 3, 64, 64)
    assert near.std() > 0.4 and far.std() < 0.1
