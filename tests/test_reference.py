"""training/reference.py (the optimisation-based reference) and the scores evaluate reports beside it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from training import losses  # noqa: E402
from training.backbone import FakeBackbone  # noqa: E402
from training.evaluate import attention_correlation, reference_scores  # noqa: E402
from training.reference import ReferenceRenderer, ReferenceSettings, style_targets, stylise  # noqa: E402


def _painting(tmp_path: Path) -> Path:
    p = tmp_path / "stripes.png"
    img = np.zeros((64, 64, 3), np.uint8)
    img[:, ::4] = (255, 40, 0)
    cv2.imwrite(str(p), img)
    return p


def test_stylise_moves_the_photo_toward_the_paintings_statistics(tmp_path: Path) -> None:
    bb = FakeBackbone()
    painting = torch.from_numpy(cv2.imread(str(_painting(tmp_path)))[:, :, ::-1].copy()).permute(2, 0, 1).float() / 255
    targets = style_targets(bb, painting)
    photo = torch.full((1, 3, 32, 48), 0.5) + 0.05 * torch.randn(1, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    y = stylise(bb, photo, targets, ReferenceSettings(steps=30))
    before = float(losses.style_loss(bb(photo), targets, bb.style_layers))
    after = float(losses.style_loss(bb(y), targets, bb.style_layers))
    assert y.shape == photo.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    assert after < 0.5 * before


def test_renderings_are_cached_per_photo_and_style(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r = ReferenceRenderer(FakeBackbone(), {"s": [_painting(tmp_path)]}, 64, ReferenceSettings(steps=2), tmp_path / "cache")
    frame = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    first = r(frame, "s")
    assert first.shape == frame.shape and first.dtype == np.uint8 and len(list((tmp_path / "cache").iterdir())) == 1
    calls = []
    monkeypatch.setattr("training.reference.stylise", lambda *a, **k: calls.append(1))
    assert np.array_equal(r(frame, "s"), first) and not calls  # read back, not rendered again
    with pytest.raises(TypeError):
        r(frame[:8], "s")  # another photo is not a cache hit: it renders (here, the patched stub)


def test_attention_correlation() -> None:
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    out = photo.copy()
    out[:, 15:] = 255 - out[:, 15:]  # the right half changed
    change = np.abs(out.astype(int) - photo.astype(int)).mean(axis=2).astype(np.uint8)
    assert attention_correlation(photo, out, change) == pytest.approx(1.0, abs=1e-3)  # change rounded to uint8
    assert attention_correlation(photo, out, 255 - change) == pytest.approx(-1.0, abs=1e-3)
    assert attention_correlation(photo, out, np.zeros((20, 30), np.uint8)) == 0.0


def test_reference_scores_give_the_models_share_of_the_references_texture_cut() -> None:
    m = {"ref_in": 2.0, "ref_out": 1.0, "ref_tex_in": 10.0, "ref_tex_out": 5.0, "ref_model_out": 1.5, "ref_model_tex_out": 8.0}
    s = reference_scores(m, 3)
    assert s["texture_distance_reduction"] == pytest.approx(0.5) and s["model_texture_distance_reduction"] == pytest.approx(0.2)
    assert s["model_share_of_texture_cut"] == pytest.approx(0.4) and s["photos"] == 3
    assert reference_scores({**m, "ref_tex_out": 11.0}, 3)["model_share_of_texture_cut"] is None  # the reference cut nothing
