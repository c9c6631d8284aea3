"""TensorRT on a real GPU: build from the tiny exported generator, parity with FP32 ONNX Runtime,
lifecycle without leaks, cache reuse and rebuild. Skipped (with the reason) without a GPU,
TensorRT and pycuda: ``pip install 'stylecast[gpu]'`` on a CUDA machine, then ``pytest -m gpu``."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.tensorrt import probe

_OK, _WHY = probe()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not _OK, reason=f"needs an NVIDIA GPU with TensorRT and pycuda: {_WHY}"), pytest.mark.timeout(900)]

PROFILE = "64x64:320x192:640x368"


def engine(model: Path, cache: Path, **kw: object):  # type: ignore[no-untyped-def]
    import engines

    return engines.create_engine("tensorrt", model, cache_dir=cache, profile=PROFILE, **kw)


def photo(tiny_model: Path) -> np.ndarray:
    from tests.conftest import DATA

    files = sorted((DATA / "content").glob("*.jpg"))
    if files:
        return cv2.resize(cv2.imread(str(files[0])), (320, 184), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    return cv2.GaussianBlur(rng.integers(0, 255, (184, 320, 3), dtype=np.uint8), (7, 7), 0)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize("precision, min_psnr", [("fp16", 40.0), ("fp32", 50.0)])
def test_parity_with_fp32_onnx_runtime(tiny_model: Path, tmp_path: Path, precision: str, min_psnr: float) -> None:
    import engines

    frame, w = photo(tiny_model), np.array([0.3, 0.7], np.float32)
    with engines.create_engine("onnxruntime", tiny_model) as ref:
        want = ref.infer(frame, w, 1.0)
        want_out, want_att = want.output.copy(), want.attention.copy()
    with engine(tiny_model, tmp_path, precision=precision) as eng:
        got = eng.infer(frame, w, 1.0)
        assert eng.counters["nonfinite_frames"] == 0
        assert psnr(want_out, got.output) >= min_psnr and psnr(want_att, got.attention) >= min_psnr


def _free_bytes() -> int:
    from engines.trt_runtime import CudaDevice

    with CudaDevice(0) as dev:
        free, _ = dev._cuda.mem_get_info()
        return int(free)


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_open_close_twice_leaks_nothing(tiny_model: Path, tmp_path: Path, cuda_graph: bool) -> None:
    frame = photo(tiny_model)
    free = []
    for _ in range(2):
        with engine(tiny_model, tmp_path, cuda_graph=cuda_graph) as eng:
            for size in ((184, 320), (96, 128), (184, 320)):
                eng.infer(cv2.resize(frame, size[::-1]), np.array([1, 0], np.float32), 1.0)
        free.append(_free_bytes())
    assert abs(free[1] - free[0]) < 16 << 20, f"free GPU memory moved by {(free[0] - free[1]) / 2**20:.1f} MiB between two open/close cycles"


def test_engine_reused_on_second_start_and_stale_rebuilt(tiny_model: Path, tmp_path: Path) -> None:
    with engine(tiny_model, tmp_path) as eng:
        plan = eng.spec.paths.plan
    built = json.loads(plan.with_suffix(".plan.json").read_text())["built_at"]
    mtime = plan.stat().st_mtime_ns
    with engine(tiny_model, tmp_path):
        pass
    assert plan.stat().st_mtime_ns == mtime  # reused
    m = json.loads(plan.with_suffix(".plan.json").read_text())
    m["trt_version"] = "0.0.0"
    plan.with_suffix(".plan.json").write_text(json.dumps(m))
    with engine(tiny_model, tmp_path) as eng:
        eng.infer(photo(tiny_model), np.array([1, 0], np.float32), 1.0)
    m = json.loads(plan.with_suffix(".plan.json").read_text())
    assert m["trt_version"] != "0.0.0" and (m["built_at"] != built or plan.stat().st_mtime_ns != mtime)
