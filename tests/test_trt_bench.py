"""The parts of the TensorRT serving/bench path that run without a GPU: ``auto`` falls back to
ONNX Runtime with a reason, and the bench's size loop (what ``--backend tensorrt`` runs at
640x360, 1280x720, 1920x1080) exercised with ONNX Runtime at small sizes."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from streamer.bench import BENCH_SIZES, format_sizes_table, parse_sizes, run_bench_sizes
from streamer.config import ConfigError, ServeConfig, validate
from streamer.daemon import resolve_backend
from tests.trt_fakes import install, make_pycuda, make_tensorrt


def test_auto_without_a_usable_tensorrt_picks_onnxruntime_and_says_why(tiny_model: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "streamer.daemon")
    name, options = resolve_backend(ServeConfig(model=str(tiny_model)))
    assert name == "onnxruntime" and options["provider"] == "auto"
    assert any("backend auto → onnxruntime" in r.message and "tensorrt not used:" in r.message for r in caplog.records)


def test_auto_falls_back_to_onnxruntime_for_a_size_outside_the_profile(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    """With TensorRT usable, ``auto`` must not pick an engine whose profile rejects every frame of
    the configured size (``backend = "tensorrt"`` is refused by ``validate`` for it)."""
    install(monkeypatch, make_tensorrt([]), make_pycuda([]))
    caplog.set_level(logging.INFO, "streamer.daemon")
    base = {"model": str(tiny_model), "trt_profile": "16x16:64x48:128x96", "engine_cache": str(tmp_path)}
    assert resolve_backend(validate(ServeConfig(width=128, height=96, **base)))[0] == "tensorrt"
    name, options = resolve_backend(validate(ServeConfig(width=256, height=144, **base)))
    assert name == "onnxruntime" and options["provider"] == "auto"
    assert any("tensorrt not used: 256x144 is outside trt_profile 16x16:64x48:128x96" in r.message for r in caplog.records)


@pytest.mark.parametrize("failure", ["exception", "wrong shape"])
def test_auto_falls_back_to_onnxruntime_when_tensorrt_fails_its_trial_frame(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                            caplog: pytest.LogCaptureFixture, failure: str) -> None:
    """``auto`` runs one frame through the TensorRT engine before choosing it. An error the engine
    does not map to EngineError (a TensorRT whose API differs, say), or an output of the wrong
    shape, falls back to ONNX Runtime with the reason, where the daemon exited and restarted."""
    import numpy as np

    import engines.tensorrt

    install(monkeypatch, make_tensorrt([]), make_pycuda([]))
    cfg = validate(ServeConfig(model=str(tiny_model), width=128, height=96, trt_profile="16x16:64x48:128x96", engine_cache=str(tmp_path)))
    assert resolve_backend(cfg)[0] == "tensorrt"  # the fakes pass the trial frame

    def broken(self: object, frame: np.ndarray, style: np.ndarray, strength: float) -> tuple[np.ndarray, np.ndarray]:
        if failure == "exception":
            raise TypeError("execute_async_v3() takes 1 positional argument")
        n, h, w, _ = frame.shape
        return np.zeros((n, h // 2, w, 3), np.uint8), np.zeros((n, h // 2, w, 1), np.uint8)

    monkeypatch.setattr(engines.tensorrt.TensorRTEngine, "_run", broken)
    caplog.set_level(logging.INFO, "streamer.daemon")
    name, options = resolve_backend(cfg)
    assert name == "onnxruntime" and options["provider"] == "auto"
    why = "TypeError: execute_async_v3()" if failure == "exception" else "output 'output': expected uint8 [1, 96, 128, 3], got uint8 [1, 48, 128, 3]"
    assert any("backend auto → onnxruntime" in r.message and why in r.message for r in caplog.records)


def test_tensorrt_options_come_from_the_config(tiny_model: Path) -> None:
    name, options = resolve_backend(ServeConfig(model=str(tiny_model), backend="tensorrt", trt_profile="64x64:320x180:640x360", cuda_graph=True))
    assert name == "tensorrt" and options["profile"] == "64x64:320x180:640x360" and options["cuda_graph"] is True


def test_config_rejects_sizes_outside_the_profile(tiny_model: Path) -> None:
    with pytest.raises(ConfigError, match="trt_profile"):
        validate(ServeConfig(model=str(tiny_model), backend="tensorrt", width=2560, height=1440))
    with pytest.raises(ConfigError, match="trt_profile: expected MIN:OPT:MAX"):
        validate(ServeConfig(model=str(tiny_model), trt_profile="1280x720"))


def test_bench_sizes_default_and_parse() -> None:
    assert BENCH_SIZES == ((640, 360), (1280, 720), (1920, 1080))
    assert parse_sizes("640x360, 1280x720") == [(640, 360), (1280, 720)]


@pytest.mark.timeout(120)
def test_bench_size_loop_runs_with_onnxruntime(tiny_model: Path) -> None:
    cfg = ServeConfig(model=str(tiny_model), backend="onnxruntime", threads=1, fps=60.0)
    r = run_bench_sizes(cfg, [(128, 72), (160, 96)], seconds=0.8, warmup=0.3)
    assert [run["size"] for run in r["runs"]] == [[128, 72], [160, 96]]
    assert r["backend"] == "onnxruntime" and r["device"].startswith("CPU")
    assert all(run["fps"] and run["stage_ms"]["infer"] > 0 for run in r["runs"])
    table = format_sizes_table(r)
    assert "128x72" in table and "160x96" in table
