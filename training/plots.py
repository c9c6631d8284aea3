"""Loss curves of a run as a picture (OpenCV only: no plotting library in the install).

``plot_losses`` reads a run's ``stats.jsonl`` (one JSON object per logged step) and draws one panel
per loss term: the logged values in grey, a moving average in colour, the axis range in the corner.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]

SKIP = frozenset({"step", "sec", "video", "total", "attention_mean"})
"""Logged fields that are not loss terms."""


def read_stats(path: Path) -> dict[str, list[tuple[int, float]]]:
    """``stats.jsonl`` → term → [(step, value)], in file order; unreadable lines are skipped."""
    series: dict[str, list[tuple[int, float]]] = {}
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        for k, v in rec.items():
            if k not in SKIP and isinstance(v, (int, float)) and np.isfinite(v):
                series.setdefault(k, []).append((int(rec.get("step", 0)), float(v)))
    return series


def moving_average(v: npt.NDArray[np.float64], n: int) -> npt.NDArray[np.float64]:
    """Trailing mean over ``n`` samples (fewer at the start); same length as ``v``."""
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(idx - n, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def panel(name: str, points: list[tuple[int, float]], size: tuple[int, int] = (360, 200), x_label: str = "step") -> U8:
    """One term's curve [h, w, 3] uint8 BGR: raw values grey, moving average blue, range labelled
    (x is ``x_label``: a training step, or seconds for the soak tool)."""
    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    steps = np.array([p[0] for p in points], np.float64)
    vals = np.array([p[1] for p in points], np.float64)
    lo, hi = float(vals.min()), float(vals.max())
    span_s, span_v = max(steps.max() - steps.min(), 1.0), max(hi - lo, 1e-12)
    left, top, right, bottom = 8, 24, w - 8, h - 18

    def xy(s: npt.NDArray[np.float64], v: npt.NDArray[np.float64]) -> npt.NDArray[np.int32]:
        x = left + (s - steps.min()) / span_s * (right - left)
        y = bottom - (v - lo) / span_v * (bottom - top)
        return np.stack([x, y], axis=1).round().astype(np.int32)

    cv2.rectangle(img, (left, top), (right, bottom), (220, 220, 220), 1)
    cv2.polylines(img, [xy(steps, vals)], False, (190, 190, 190), 1, cv2.LINE_AA)
    cv2.polylines(img, [xy(steps, moving_average(vals, max(1, len(vals) // 20)))], False, (200, 90, 20), 2, cv2.LINE_AA)
    cv2.putText(img, name, (left, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f"{lo:.3g} .. {hi:.3g}", (w - 150, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (80, 80, 80), 1, cv2.LINE_AA)
    cv2.putText(img, f"{x_label} {int(steps.min())} .. {int(steps.max())}", (left, h - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (80, 80, 80), 1, cv2.LINE_AA)
    return img


def plot_losses(stats: Path, out: Path, columns: int = 3) -> Path | None:
    """Write ``out`` (PNG): one ``panel`` per logged term of ``stats``; None when it holds none."""
    series = read_stats(stats)
    panels = [panel(k, v) for k, v in series.items() if v]
    if not panels:
        return None
    while len(panels) % columns:
        panels.append(np.full_like(panels[0], 255))
    grid = np.vstack([np.hstack(panels[i : i + columns]) for i in range(0, len(panels), columns)])
    cv2.imwrite(str(out), grid)
    return out
