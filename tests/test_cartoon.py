"""The cartoon prior: the fixed rendering (training.cartoon), its loss, and its use in training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from training import losses
from training.cartoon import CartoonFilter, bilateral, cartoon
from training.losses import luma


def _bilateral_reference(x: torch.Tensor, r: int, ss: float, sc: float) -> torch.Tensor:
    """The textbook bilateral filter, all windows at once (unfold), for one image."""
    n, c, h, w = x.shape
    k = 2 * r + 1
    p = F.unfold(F.pad(x, (r,) * 4, mode="reflect"), k).view(n, c, k * k, h, w)
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    space = torch.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * ss**2)).reshape(1, k * k, 1, 1)
    wgt = space * torch.exp(-(p - x[:, :, None]).pow(2).sum(1) / (2 * sc**2))
    return (p * wgt[:, None]).sum(2) / wgt.sum(1, keepdim=True)


def test_bilateral_is_the_textbook_filter_and_keeps_edges() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 3, 12, 15)
    assert torch.allclose(bilateral(x, 2, 3.0, 0.2), _bilateral_reference(x, 2, 3.0, 0.2), atol=1e-6)
    flat = torch.full((1, 3, 8, 8), 0.4)
    assert torch.allclose(bilateral(flat, 3, 5.0, 0.1), flat)
    step = torch.full((1, 3, 16, 16), 0.2)
    step[..., 8:] = 0.8
    noisy = step + 0.02 * torch.randn_like(step)
    out = bilateral(noisy, 3, 5.0, 30 / 255)
    assert float((out - step).abs().max()) < 0.06  # the edge is not smeared
    assert float((out - step)[..., 2:6].std()) < 0.5 * float((noisy - step)[..., 2:6].std())  # the noise is


def test_cartoon_flattens_saturates_and_outlines() -> None:
    f = CartoonFilter()
    grey = torch.full((1, 3, 24, 24), 0.5)
    assert torch.allclose(cartoon(grey, f), grey, atol=1e-6)  # a flat grey stays: no chroma, no edge
    tint = torch.tensor([0.6, 0.4, 0.3]).view(1, 3, 1, 1).expand(1, 3, 24, 24).contiguous()
    out = cartoon(tint, f)
    y = luma(tint)
    assert torch.allclose(out - luma(out), f.saturation * (tint - y), atol=1e-5)  # chroma × saturation, luma kept
    step = torch.full((1, 3, 24, 32), 0.2)
    step[..., 16:] = 0.8
    out = cartoon(step, f)[0].mean(0)
    assert float(out[:, 12:16].min()) < 0.2 * (1 - 0.5 * f.line)  # the dark side of the edge is outlined
    assert torch.allclose(out[:, :8], torch.tensor(0.2), atol=1e-4) and torch.allclose(out[:, 24:], torch.tensor(0.8), atol=1e-4)
    assert float(cartoon(torch.rand(2, 3, 20, 20)).min()) >= 0 and float(cartoon(torch.rand(2, 3, 20, 20)).max()) <= 1
    assert torch.allclose(cartoon(step, CartoonFilter(line=0.0))[..., 12:16], step[..., 12:16], atol=1e-6)  # no lines: only the (flat) fill


@pytest.mark.parametrize("bad", [{"iterations": -1}, {"radius": 0}, {"sigma_colour": 0.0}, {"line": 1.5}, {"line_k": 1.0}])
def test_cartoon_filter_rejects_bad_settings(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="out of range"):
        CartoonFilter(**bad)  # type: ignore[arg-type]


def test_prior_loss_and_its_per_style_weights() -> None:
    from training.config import TrainConfig

    x = torch.rand(2, 3, 8, 8)
    t = x.clone()
    t[1] += 0.1
    assert float(losses.prior_loss(x, x)) == 0.0
    assert float(losses.prior_loss(x, t)) == pytest.approx(0.05, abs=1e-6)
    assert float(losses.prior_loss(x, t, torch.tensor([1.0, 0.0]))) == 0.0
    assert float(losses.prior_loss(x, t, torch.tensor([0.0, 4.0]))) == pytest.approx(0.2, abs=1e-6)
    cfg = TrainConfig(content="c", styles=("a.jpg", "b"), cartoon_prior_weights={"b": 30.0})
    assert cfg.prior_weights(["a", "b"]) == [0.0, 30.0]
    with pytest.raises(ValueError, match="no style named c"):
        TrainConfig(content="c", styles=("a",), cartoon_prior_weights={"c": 1.0}).prior_weights(["a"])
    with pytest.raises(ValueError, match=r"cartoon_prior_weights\['b'\] must be ≥ 0"):
        TrainConfig(content="c", styles=("b",), cartoon_prior_weights={"b": -1.0})


def test_a_misnamed_style_fails_before_any_run_directory(tmp_path: Path) -> None:
    from training.config import TrainConfig
    from training.train import train

    cfg = TrainConfig(content=str(tmp_path), styles=(str(tmp_path / "a.jpg"),), out=str(tmp_path / "runs"), backbone="fake",
                      device="cpu", cartoon_prior_weights={"nope": 5.0})
    with pytest.raises(ValueError, match="no style named nope"):
        train(cfg)
    assert not (tmp_path / "runs").exists()


def test_training_with_a_cartoon_prior_on_one_style(tmp_path: Path) -> None:
    """It trains, logs the term, and the rendering is made for that style's samples only."""
    from tests.conftest import make_images
    from training.config import TrainConfig
    from training.train import Trainer, make_run_dir, train

    content = make_images(tmp_path / "content", 3, (64, 80), 0)
    a = make_images(tmp_path / "a", 1, (64, 64), 1)
    b = make_images(tmp_path / "b", 1, (64, 64), 2)
    cfg = TrainConfig(content=str(content), styles=(str(a), str(b)), out=str(tmp_path / "runs"), steps=2, batch=2, crop=32,
                      style_size=64, width=8, blocks=1, backbone="fake", sample_every=2, ckpt_every=2, device="cpu",
                      cartoon_prior_weights={b.name: 5.0})
    ck_path = train(cfg)
    stats = [json.loads(x) for x in (ck_path.parent / "stats.jsonl").read_text().splitlines()]
    assert all("prior" in s for s in stats)
    assert torch.load(ck_path, weights_only=False)["config"]["cartoon_prior_weights"] == {b.name: 5.0}

    tr = Trainer(cfg, make_run_dir(tmp_path / "again", "t"))
    x = torch.rand(2, 3, 32, 32)
    y = x.clone().requires_grad_(True)  # an identity generator: its loss is |x − cartoon(x)| where weighted
    only_a = tr.prior_term(x, y, y, torch.tensor([0, 0]))
    assert float(only_a.detach()) == 0.0
    both_b = tr.prior_term(x, y, y, torch.tensor([1, 1]))
    assert float(both_b.detach()) == pytest.approx(float((x - cartoon(x)).abs().mean()), rel=1e-5)
    both_b.backward()
    assert y.grad is not None and float(y.grad.abs().sum()) > 0


def test_a_shut_attention_still_lets_the_prior_teach_the_style_branch(tmp_path: Path) -> None:
    """With attention 0 the blended output is the photo whatever the branch paints; the prior
    must still reach the branch, or the style switches itself off for good."""
    from tests.conftest import make_images
    from training.config import TrainConfig
    from training.generator import blend
    from training.train import Trainer, make_run_dir

    content = make_images(tmp_path / "content", 2, (48, 48), 0)
    a = make_images(tmp_path / "a", 1, (48, 48), 1)
    cfg = TrainConfig(content=str(content), styles=(str(a),), out=str(tmp_path / "runs"), batch=2, crop=32, style_size=48,
                      width=8, blocks=1, backbone="fake", device="cpu", cartoon_prior_weights={a.name: 1.0})
    tr = Trainer(cfg, make_run_dir(tmp_path / "r", "t"))
    x = torch.rand(2, 3, 32, 32)
    g = torch.rand(2, 3, 32, 32, requires_grad=True)
    att = torch.zeros(2, 1, 32, 32, requires_grad=True)
    tr.prior_term(x, blend(x, g, att, 1.0), g, torch.tensor([0, 0])).backward()
    assert g.grad is not None and float(g.grad.abs().sum()) > 0
    assert att.grad is not None and float(att.grad.abs().sum()) > 0  # and the gate is told to open where g helps
