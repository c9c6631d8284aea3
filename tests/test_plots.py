"""training/plots.py: a run's loss curves as a PNG, from its stats.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")

from training.plots import moving_average, plot_losses, read_stats  # noqa: E402


def test_plot_has_one_panel_per_term_and_skips_bookkeeping(tmp_path: Path) -> None:
    stats = tmp_path / "stats.jsonl"
    lines = [json.dumps({"step": i, "style": 1.0 / (i + 1), "content": 0.5, "sec": i * 0.3, "video": 0.0}) for i in range(0, 100, 10)]
    stats.write_text("\n".join(lines + ["not json"]) + "\n")
    series = read_stats(stats)
    assert set(series) == {"style", "content"} and series["style"][0] == (0, 1.0) and len(series["style"]) == 10
    out = plot_losses(stats, tmp_path / "losses.png", columns=3)
    assert out is not None
    img = cv2.imread(str(out))
    assert img.shape == (200, 3 * 360, 3)
    assert img[:, :360].min() < 100 and img[:, 720:].min() == 255  # two panels drawn, the third blank


def test_no_terms_no_picture(tmp_path: Path) -> None:
    stats = tmp_path / "stats.jsonl"
    stats.write_text(json.dumps({"step": 1, "sec": 0.1}) + "\n")
    assert plot_losses(stats, tmp_path / "losses.png") is None and not (tmp_path / "losses.png").exists()


def test_moving_average_is_a_trailing_mean() -> None:
    assert np.allclose(moving_average(np.array([1.0, 3.0, 5.0, 7.0]), 2), [1.0, 2.0, 4.0, 6.0])
