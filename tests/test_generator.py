"""The generator: its two tiers' architecture, the strength control, an attention head that
describes the output without gating it, style mixing, and its export per tier."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.conftest import scrambled_generator
from training.export import FramePipeline, export_onnx
from training.generator import TIERS, Generator, GeneratorSpec, blend, change_map, count_params, init_weights, tier_spec


def onnx_matches(g: Generator, path: Path, num_styles: int, seed: int) -> None:
    """ONNX Runtime on ``path`` gives ``FramePipeline(g)``'s uint8 output and attention within 1 grey level."""
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, (1, 40, 56, 3), dtype=np.uint8)
    style = rng.random((1, num_styles)).astype(np.float32)
    style /= style.sum()
    strength = np.array([rng.uniform(0.3, 1.0)], np.float32)
    with torch.no_grad():
        ref_out, ref_att = FramePipeline(g)(torch.from_numpy(frame), torch.from_numpy(style), torch.from_numpy(strength))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out, att = sess.run(None, {"frame": frame, "style": style, "strength": strength})
    assert out.dtype == np.uint8 and out.shape == (1, 40, 56, 3) and att.shape == (1, 40, 56, 1)
    assert np.abs(out.astype(int) - ref_out.numpy().astype(int)).max() <= 1
    assert np.abs(att.astype(int) - ref_att.numpy().astype(int)).max() <= 1


@pytest.mark.parametrize("tier", sorted(TIERS))
def test_onnx_matches_pytorch_for_each_tier(tier: str, tmp_path: Path) -> None:
    """Both tiers' graphs (the quality one has no depth-to-space and no frame pooling) export alike."""
    g = scrambled_generator(tier, 3)
    export_onnx(g, tmp_path / f"{tier}.onnx", 3)
    onnx_matches(g, tmp_path / f"{tier}.onnx", 3, seed=4)
    import onnx

    ops = [n.op_type for n in onnx.load(str(tmp_path / f"{tier}.onnx")).graph.node]
    # zero padding lives in the convs (no Pad node, no layout reorders around one in ONNX Runtime)
    assert ("Pad" in ops) == (g.spec.padding == "reflect") and ("DepthToSpace" in ops) == (g.spec.fine_scale == 2)


@pytest.mark.parametrize("tier", sorted(TIERS))
def test_tier_spec_and_every_stage_shape(tier: str) -> None:
    spec = tier_spec(tier, 3)
    assert spec.tier == tier and spec.num_styles == 3 and {k: getattr(spec, k) for k in TIERS[tier]} == TIERS[tier]
    assert spec.width == {"quality": 32, "fast": 16}[tier] and spec.fine_scale == {"quality": 1, "fast": 2}[tier]
    g = scrambled_generator(tier, 3)
    f, r, c, n, h, w = 2, spec.fine_scale, spec.width, 2, 32, 48
    x, style = torch.rand(n, 3, h, w), torch.eye(3)[:n]
    with torch.no_grad():
        feats = g.features(x, style)
        s, a = g(x, style)
    body = (n, 2 * c, h // (2 * f), w // (2 * f))
    want = {"stem": (n, c, h // f, w // f), "down": body, **{f"res{i}": body for i in range(spec.blocks)}, "up": (n, c, h // f, w // f),
            "fine": (n, c // 2, h // r, w // r), "rgb_logits": (n, 3, h, w)}
    assert [(k, tuple(v.shape)) for k, v in feats.items()] == list(want.items())  # data-flow order too
    assert s.shape == x.shape and a.shape == (n, 1, h, w)
    assert 0 < float(s.min()) and float(s.max()) < 1 and 0 <= float(a.min()) and float(a.max()) <= 1
    torch.testing.assert_close(s, torch.sigmoid(feats["rgb_logits"]))
    torch.testing.assert_close(a, change_map(s, x))


def test_bad_tiers_factors_and_spec_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown tier 'medium'"):
        tier_spec("medium", 2)
    with pytest.raises(ValueError, match="fine_scale must be one of"):
        GeneratorSpec(num_styles=1, fine_scale=4)
    with pytest.raises(ValueError, match="padding must be one of"):
        GeneratorSpec(num_styles=1, padding="circular")
    with pytest.raises(ValueError, match="stem stride 4"):  # the stride-4 design of an earlier session
        GeneratorSpec.from_dict({"num_styles": 1, "factor": 4})
    assert GeneratorSpec.from_dict({"num_styles": 1, "width": 32, "blocks": 5, "factor": 2, "tier": "quality"}) == tier_spec("quality", 1)
    with pytest.raises(ValueError, match="tier must be one of"):
        GeneratorSpec(num_styles=1, tier="medium")
    with pytest.raises(ValueError, match="width must be even"):
        GeneratorSpec(num_styles=1, width=7)
    spec = tier_spec("fast", 2)
    assert GeneratorSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="does not know: antialias, half_res"):  # a model from before the new generator
        GeneratorSpec.from_dict({**spec.to_dict(), "antialias": True, "half_res": 0})
    fast, quality = Generator(spec), Generator(tier_spec("quality", 2))
    assert count_params(fast) < count_params(quality) / 2
    with pytest.raises(RuntimeError):  # weights of one tier do not load into the other
        init_weights(quality, fast)
    src, dst = scrambled_generator("fast", 2), Generator(spec).eval()
    init_weights(dst, src)
    x, w = torch.rand(1, 3, 32, 32), torch.tensor([[0.4, 0.6]])
    with torch.no_grad():
        torch.testing.assert_close(dst(x, w)[0], src(x, w)[0])


def test_blend_is_the_strength_control() -> None:
    x, y = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    torch.testing.assert_close(blend(x, y, 0.0), x)
    torch.testing.assert_close(blend(x, y, 1.0), y)
    torch.testing.assert_close(blend(x, y, 0.25), 0.75 * x + 0.25 * y)
    per_sample = blend(x, y, torch.tensor([0.0, 1.0]).view(2, 1, 1, 1))
    torch.testing.assert_close(per_sample, torch.stack([x[0], y[1]]))


def test_the_output_is_repainted_and_the_attention_does_not_gate_it() -> None:
    """The old generator returned x + A·(G(x) − x): attention 0 gave the photo back. Now the
    output is decoded from features and the attention map is computed from it afterwards; the
    exported pipeline's strength blends toward the frame, and the map follows the painting, not
    the strength."""
    g = scrambled_generator("fast", 2)
    x, w = torch.rand(2, 3, 32, 48), torch.tensor([[1.0, 0.0], [0.3, 0.7]])
    with torch.no_grad():
        y, _ = g(x, w)
        assert float((y - x).abs().mean()) > 0.1  # not the photo passed through
        frame = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, 32, 48, 3), dtype=np.uint8))
        pipe = FramePipeline(g)
        at_one, att_one = pipe(frame, w[:1], torch.ones(1))
        at_half, att_half = pipe(frame, w[:1], torch.full((1,), 0.5))
        at_zero, att_zero = pipe(frame, w[:1], torch.zeros(1))
    assert float((at_one.float() - frame.float()).abs().mean()) > 20
    assert torch.equal(at_zero, frame)
    mid = (at_one.float() + frame.float()) / 2
    assert float((at_half.float() - mid).abs().max()) <= 1.0  # strength 0.5: half way, ±1 grey level of rounding
    assert torch.equal(att_one, att_half) and torch.equal(att_one, att_zero) and int(att_one.max()) > 60


def test_the_attention_map_is_where_the_painting_changes_the_photo() -> None:
    x = torch.rand(2, 3, 32, 32) * 0.2 + 0.4
    y = x.clone()
    y[..., 8:16, 8:16] += 0.4  # the style repainted one patch
    a = change_map(y, x)
    assert a.shape == (2, 1, 32, 32) and float(a.min()) >= 0 and float(a.max()) <= 1
    assert float(a[..., 10:14, 10:14].min()) == 1.0 and float(a[..., 20:, 20:].max()) == 0.0
    assert float(change_map(x, x).abs().max()) == 0.0  # nothing changed: nowhere
    # the border is averaged over the pixels inside the frame, not darkened by zero padding
    y2 = x + 0.2
    torch.testing.assert_close(change_map(y2, x), torch.full((2, 1, 32, 32), 1 / 3))


def test_models_with_the_old_learned_attention_head_still_load() -> None:
    g = scrambled_generator("fast", 2)
    legacy = {**g.state_dict(), "attention.weight": torch.zeros(1, g.spec.width, 1, 1), "attention.bias": torch.zeros(1)}
    g2 = Generator(g.spec)
    g2.load_state_dict(legacy)
    x, w = torch.rand(1, 3, 16, 16), torch.eye(2)[:1]
    with torch.no_grad():
        torch.testing.assert_close(g2(x, w)[0], g(x, w)[0])
    with pytest.raises(RuntimeError, match="Unexpected"):
        g2.load_state_dict({**legacy, "stray.weight": torch.zeros(1)})


def test_style_mix_interpolates_cin_parameters() -> None:
    g = scrambled_generator("fast", 2)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        pure = [g(x, torch.tensor([[1.0, 0.0]]))[0], g(x, torch.tensor([[0.0, 1.0]]))[0]]
        mixed = g(x, torch.tensor([[0.5, 0.5]]))[0]
    assert not torch.allclose(pure[0], pure[1])
    assert not torch.allclose(mixed, pure[0]) and not torch.allclose(mixed, pure[1])


def test_baseline_is_the_johnson_architecture_and_exports(tmp_path: Path) -> None:
    from training.baseline import TransformerNet, count_macs, export_baseline

    net = TransformerNet()
    assert count_params(net) == 1_679_235  # pytorch/examples' TransformerNet
    w1 = torch.ones(1, 1)
    frame = torch.zeros(1, 3, 360, 640)
    johnson = count_macs(net, frame, w1)
    assert johnson == pytest.approx(35.43e9, rel=1e-3)
    fast, quality = (count_macs(Generator(tier_spec(t, 4)), frame, torch.eye(4)[:1]) for t in ("fast", "quality"))
    assert fast < johnson / 10 and fast < quality < johnson / 2

    class Functional(torch.nn.Module):  # functional F.conv2d calls are counted too
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.conv2d(torch.nn.functional.conv2d(x, torch.ones(5, 3, 3, 3), padding=1), torch.ones(5, 1, 2, 2), stride=2, groups=5)

    assert count_macs(Functional(), torch.zeros(1, 3, 8, 8)) == 8 * 8 * 5 * 3 * 9 + 4 * 4 * 5 * 4
    path = export_baseline(tmp_path / "b.onnx")
    import engines

    with engines.create_engine("onnxruntime", path, threads=1) as e:
        assert e.infer(np.zeros((32, 48, 3), np.uint8), np.ones(1, np.float32), 1.0).output.shape == (32, 48, 3)
