"""docs/bench/gpu/generator_fp16_check.py is the one call to make on a lent GPU machine (PyTorch, no
TensorRT): it must run before that machine is had. Here it runs on the CPU at a small size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
ROOT = Path(__file__).parents[1]


def test_the_gpu_check_runs_on_cpu_and_reports_fp16_within_40_db(tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    run = subprocess.run([sys.executable, "docs/bench/gpu/generator_fp16_check.py", "--device", "cpu", "--sizes", "96x64,128x72",
                          "--photos", "1", "--runs", "2", "--warmup", "0", "--content", str(tmp_path / "none"), "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr
    r = json.loads(out.read_text())
    assert r["photos"] == 1 and len(r["styles"]) == 4 and set(r["sizes"]) == {"96x64", "128x72"}
    for s in r["sizes"].values():
        assert s["fp16_head_finite"] and s["psnr_fp16_vs_fp32_db"]["min"] >= 40.0  # the bar for the FP16 model
        assert set(s["speed"]) == {"fp32", "fp16", "fp16_with_host_copies"} and all(v["median_ms"] > 0 for v in s["speed"].values())
    bad = subprocess.run([sys.executable, "docs/bench/gpu/generator_fp16_check.py", "--device", "cpu", "--sizes", "100x64"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "not a multiple of 8" in bad.stderr
