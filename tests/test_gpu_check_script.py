"""``python -m training.gpu_check`` is the one call to make on a lent GPU machine (PyTorch, no
TensorRT): it must run before that machine is had. Here it runs on the CPU at a small size, on
a model of each tier (the tiny test run's fast one, an untrained quality one)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
ROOT = Path(__file__).parents[1]


def test_the_gpu_check_runs_on_cpu_and_reports_fp16_within_40_db(tiny_model: Path, tmp_path: Path) -> None:
    from tests.conftest import scrambled_generator
    from training.export import save_generator

    quality = tmp_path / "quality.generator.pt"
    save_generator(scrambled_generator("quality", 2), ["a", "b"], quality)
    models = ["--model", str(tiny_model.with_suffix(".generator.pt")), "--model", str(quality)]
    out = tmp_path / "check.json"
    run = subprocess.run([sys.executable, "-m", "training.gpu_check", "--device", "cpu", "--sizes", "96x64,128x72", *models,
                          "--photos", "1", "--runs", "2", "--warmup", "0", "--content", str(tmp_path / "none"), "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr
    r = json.loads(out.read_text())
    assert r["photos"] == 1 and [(m["tier"], len(m["styles"])) for m in r["models"]] == [("fast", 2), ("quality", 2)]
    for m in r["models"]:
        assert set(m["sizes"]) == {"96x64", "128x72"}
        for s in m["sizes"].values():
            assert s["fp16_head_finite"] and s["psnr_fp16_vs_fp32_db"]["min"] >= 40.0, (m["tier"], s)  # the bar for the FP16 model
            assert set(s["speed"]) == {"fp32", "fp16", "fp16_with_host_copies"} and all(set(v) == {"median_ms", "p95_ms"} for v in s["speed"].values())
    bad = subprocess.run([sys.executable, "-m", "training.gpu_check", "--device", "cpu", "--sizes", "100x64", *models],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "not a multiple of 8" in bad.stderr
