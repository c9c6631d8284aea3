"""The export-time rewrite of the generator computes the same function as the generator."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from training.export import FramePipeline, frame_pipeline
from training.fast_graph import FastFramePipeline, FastGenerator, block_reflect_pad, phase_conv_weight, replicate_pad1, strided_enc1_weight
from training.generator import Generator, GeneratorSpec


def scrambled_generator(seed: int, num_styles: int = 3, antialias: bool = False, head_taps: int = 3, alias_free: bool = False, smooth_body: bool = False, half_res: int = 0, stroke_mlp: int = 0, in_taps: int = 5, lanczos: bool = False) -> Generator:
    """Random weights everywhere (a fresh head is ~0 and would hide a wrong head rewrite);
    ``antialias`` turns on every anti-aliasing option of the spec, with a ``head_taps`` head blur;
    ``alias_free`` the filtered ⅛-res ReLUs, ``smooth_body`` the blur of the ⅛-res output,
    ``half_res`` a ½-res stage of that many channels, ``stroke_mlp`` a stroke head of that many,
    ``in_taps`` the frame blur's taps, ``lanczos`` the Lanczos head upsampling."""
    torch.manual_seed(seed)
    g = Generator(GeneratorSpec(num_styles=num_styles, width=8, blocks=1, antialias=antialias, smooth_head=antialias, head_blur_taps=head_taps, alias_free=alias_free, smooth_body=smooth_body, half_res=half_res, stroke_mlp=stroke_mlp, in_blur_taps=in_taps, head_lanczos=lanczos))
    with torch.no_grad():
        for p in g.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return g.eval()


@pytest.mark.parametrize(("antialias", "head_taps", "alias_free", "smooth_body", "half_res", "stroke_mlp"),
                         [(False, 3, False, False, 0, 0), (True, 3, False, False, 0, 0), (True, 5, False, False, 0, 0), (True, 3, True, False, 0, 0), (True, 3, True, True, 0, 0),
                          (True, 3, True, False, 4, 0), (True, 5, True, False, 0, 6), (False, 3, False, False, 0, 3)])
@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize(("n", "h", "w"), [(1, 16, 16), (2, 16, 40), (1, 48, 64), (1, 72, 96)])
def test_fast_generator_matches_the_generator(n: int, h: int, w: int, fuse: bool, antialias: bool, head_taps: int, alias_free: bool, smooth_body: bool, half_res: int, stroke_mlp: int) -> None:
    if smooth_body and h * w <= 16 * 16:
        pytest.skip("a 2×2 ⅛-res map blurs to nearly one value; the next instance norm then magnifies float rounding past the tolerance")
    g = scrambled_generator(h * w, antialias=antialias, head_taps=head_taps, alias_free=alias_free, smooth_body=smooth_body, half_res=half_res, stroke_mlp=stroke_mlp)
    x = torch.rand(n, 3, h, w)
    style = torch.softmax(torch.randn(n, 3), 1)
    with torch.no_grad():
        ref_head = g.features(x, style)["head"]
        ref_s, ref_a = g(x, style)
        s, a, head = FastGenerator(g, fuse_norm_affine=fuse)(x.flip(1), style)  # BGR in, BGR out
    torch.testing.assert_close(head, ref_head[:, [2, 1, 0, 3]], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(s, ref_s.flip(1), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(a, ref_a, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("antialias", [False, True])
def test_frame_pipelines_agree_on_uint8_frames(antialias: bool) -> None:
    g = scrambled_generator(7, antialias=antialias)
    frame = torch.randint(0, 256, (1, 40, 56, 3), dtype=torch.uint8)
    style, strength = torch.tensor([[0.2, 0.5, 0.3]]), torch.tensor([0.8])
    with torch.no_grad():
        ref = FramePipeline(g)(frame, style, strength)
        fast = FastFramePipeline(g)(frame, style, strength)
    for r, f in zip(ref, fast, strict=True):
        assert r.dtype == f.dtype == torch.uint8 and r.shape == f.shape
        assert int((r.int() - f.int()).abs().max()) <= 1


def test_fast_generator_follows_a_wider_frame_blur() -> None:
    g = scrambled_generator(3, antialias=True, alias_free=True, in_taps=17)
    x, style = torch.rand(1, 3, 24, 40), torch.softmax(torch.randn(1, 3), 1)
    with torch.no_grad():
        ref_s, _ = g(x, style)
        s, _, _ = FastGenerator(g)(x.flip(1), style)
        five, _ = scrambled_generator(3, antialias=True, alias_free=True)(x, style)
    torch.testing.assert_close(s, ref_s.flip(1), atol=1e-5, rtol=1e-4)
    assert float((five - ref_s).abs().max()) > 1e-3  # the taps change the function: the test above sees them


@pytest.mark.parametrize("stroke_mlp", [0, 4])
@pytest.mark.parametrize(("n", "h", "w"), [(1, 16, 16), (2, 24, 40), (1, 72, 96)])
def test_fast_generator_matches_the_lanczos_head(n: int, h: int, w: int, stroke_mlp: int) -> None:
    g = scrambled_generator(h + w, antialias=True, alias_free=True, stroke_mlp=stroke_mlp, lanczos=True)
    x, style = torch.rand(n, 3, h, w), torch.softmax(torch.randn(n, 3), 1)
    with torch.no_grad():
        ref_head = g.features(x, style)["head"]
        ref_s, ref_a = g(x, style)
        s, a, head = FastGenerator(g)(x.flip(1), style)
    torch.testing.assert_close(head, ref_head[:, [2, 1, 0, 3]], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(s, ref_s.flip(1), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(a, ref_a, atol=1e-5, rtol=1e-4)


def test_export_traces_the_fast_graph_for_our_generator_only() -> None:
    from training.baseline import TransformerNet

    assert isinstance(frame_pipeline(scrambled_generator(0)), FastFramePipeline)
    assert isinstance(frame_pipeline(TransformerNet()), FramePipeline)


def test_shift_in_logit_space_is_sigmoid_of_shifted_logit() -> None:
    from training.fast_graph import shift_in_logit_space
    from training.generator import _logit

    x = torch.cat([torch.tensor([0.0, 1e-4, 0.5, 1.0]), torch.rand(60)]).view(1, 1, 8, 8)
    d = torch.cat([torch.tensor([-200.0, 30.0, 0.0, 200.0]), torch.randn(60) * 4]).view(1, 1, 8, 8)
    torch.testing.assert_close(shift_in_logit_space(x, d), torch.sigmoid(_logit(x) + d), atol=1e-6, rtol=1e-5)
    assert torch.isfinite(shift_in_logit_space(x.half(), d.half())).all()  # e^200 overflows to inf: result 0, not NaN


def test_strided_enc1_is_unshuffle_then_conv() -> None:
    torch.manual_seed(0)
    w, x = torch.randn(5, 48, 3, 3), torch.rand(1, 3, 16, 24)
    ref = torch.nn.functional.conv2d(torch.nn.functional.pixel_unshuffle(x, 4), w)  # no padding: interior only
    got = torch.nn.functional.conv2d(x.flip(1), strided_enc1_weight(w), stride=4)
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)


def test_block_reflect_pad_is_reflection_of_the_unshuffled_tensor() -> None:
    x = torch.rand(1, 3, 16, 24)
    ref = torch.nn.functional.pad(torch.nn.functional.pixel_unshuffle(x, 4), (1, 1, 1, 1), mode="reflect")
    torch.testing.assert_close(torch.nn.functional.pixel_unshuffle(block_reflect_pad(x), 4), ref)


def test_phase_conv_is_upsample_then_conv_in_the_interior() -> None:
    F = torch.nn.functional
    torch.manual_seed(1)
    w_up, z = torch.randn(4, 6, 3, 3), torch.randn(1, 6, 10, 12)
    ref = F.conv2d(F.interpolate(z, scale_factor=4.0, mode="bilinear", align_corners=False), w_up, padding=1)
    got = F.pixel_shuffle(F.conv2d(z, phase_conv_weight(w_up)), 4)  # valid conv: output starts at ¼-res row 1
    torch.testing.assert_close(got, ref[:, :, 4:-4, 4:-4], atol=1e-4, rtol=1e-4)


def test_replicate_pad1_is_torch_replicate_padding() -> None:
    z = torch.rand(1, 2, 5, 7)
    torch.testing.assert_close(replicate_pad1(z), torch.nn.functional.pad(z, (1, 1, 1, 1), mode="replicate"))
