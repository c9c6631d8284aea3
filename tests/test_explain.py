"""`stylecast explain` on a tiny trained model: files and their shapes (not their pixels)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")


@pytest.fixture()
def photo(tmp_path: Path) -> Path:
    p = tmp_path / "photo.png"
    img = np.zeros((90, 130, 3), np.uint8)
    cv2.circle(img, (60, 45), 30, (30, 160, 240), -1)
    cv2.imwrite(str(p), img)
    return p


def test_explain_writes_every_panel(tiny_model: Path, photo: Path, tmp_path: Path) -> None:
    weights = tiny_model.with_suffix(".generator.pt")
    assert weights.is_file(), "export must write the generator weights beside the ONNX"
    out = tmp_path / "report"
    r = subprocess.run([sys.executable, "-m", "streamer", "explain", str(photo), "--out", str(out), "--weights", str(weights), "--all-styles"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    styles = ["style_a", "style_b"]
    expected = {"input.png", "style_features.png", "interpolation.png", "mixing_grid.png", "report.html", "summary.json"}
    expected |= {f"{kind}_{s}.png" for kind in ("attention", "features", "sensitivity") for s in styles}
    assert expected <= {p.name for p in out.iterdir()}
    h, w = cv2.imread(str(out / "input.png")).shape[:2]
    assert (h, w) == (88, 128)  # cropped to multiples of 8
    att = cv2.imread(str(out / "attention_style_a.png"))
    assert att.shape[1] > 4 * w and att.shape[0] > h  # four labelled panels side by side
    feats = cv2.imread(str(out / "features_style_b.png"))
    # one row per stage (stem, down, res, up, fine), each a 2 px-padded row of 160 px-wide tiles:
    # an 18 px caption over the 88×128 frame's features at 160 × 110
    assert feats.shape[0] == 5 * (2 + 18 + 110 + 2)
    summary = json.loads((out / "summary.json").read_text())
    for s in styles:
        att_stats, rob = summary["styles"][s]["attention"], summary["styles"][s]["robustness"]
        assert 0 <= att_stats["mean"] <= 1 and -1 <= att_stats["corr_with_change"] <= 1
        assert rob["epsilon"] == pytest.approx(2.0) and rob["mean_input_change"] <= 2.0 + 1e-6
        assert rob["sensitivity"] >= 0 and rob["mean_output_change"] >= 0
    page = (out / "report.html").read_text()
    for name in expected - {"report.html", "summary.json", "input.png"}:
        assert f'src="{name}"' in page


def test_explain_unknown_style_and_bad_photo(tiny_run: Path, photo: Path, tmp_path: Path) -> None:
    from training.explain import ExplainError, explain

    with pytest.raises(ExplainError, match="unknown style"):
        explain(tiny_run, photo, tmp_path / "o", ["nope"])
    with pytest.raises(ExplainError, match="cannot read image"):
        explain(tiny_run, tmp_path / "missing.png", tmp_path / "o")


def test_adversarial_perturbation_is_bounded_and_beats_random(tiny_run: Path, photo: Path) -> None:
    import torch

    from training.explain import adversarial, load_photo, load_weights, one_hot

    g, names = load_weights(tiny_run)
    x = load_photo(photo, 64)
    delta, dy, rob = adversarial(g, x, one_hot(0, len(names)), eps=2 / 255, steps=5)
    assert float(delta.abs().max()) <= 2 / 255 + 1e-6
    assert float((x + delta).min()) >= 0 and float((x + delta).max()) <= 1
    assert dy.shape == x.shape and rob.sensitivity >= rob.random_sensitivity * 0.9
    assert torch.isfinite(dy).all()
