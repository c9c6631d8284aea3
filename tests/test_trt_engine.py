"""TensorRTEngine on CPU against strict fakes of tensorrt and pycuda: engine cache reuse and
staleness, the CUDA resource lifecycle (context pushed on open, everything freed before the pop),
frame-size changes, CUDA graphs and the NaN/Inf guard."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

import engines
from engines import InputError, ModelError
from engines.tensorrt import TensorRTEngine
from engines.trt_store import StaleEngine
from tests.trt_fakes import install, make_pycuda, make_tensorrt

W = np.array([1.0, 0.0], np.float32)


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    trt_calls: list[str] = []
    cuda_calls: list[str] = []
    trt = make_tensorrt(trt_calls)
    pycuda = make_pycuda(cuda_calls)
    install(monkeypatch, trt, pycuda)
    return {"trt": trt, "trt_calls": trt_calls, "cuda_calls": cuda_calls, "drv": pycuda[1]}


def make(tiny_model: Path, cache: Path, **kw: object) -> TensorRTEngine:
    kw.setdefault("profile", "16x16:64x48:128x96")  # tiny frames keep the fake GPU cheap
    return engines.create_engine("tensorrt", tiny_model, cache_dir=cache, **kw)  # type: ignore[return-value]


def test_registry_and_first_open_builds_then_reuses(fakes: dict, tiny_model: Path, tmp_path: Path) -> None:
    with make(tiny_model, tmp_path) as eng:
        assert eng.name == "tensorrt" and eng.device_name == "Fake GPU"
        res = eng.infer(np.full((40, 64, 3), 10, np.uint8), W, 1.0)
        assert res.output.shape == (40, 64, 3) and np.all(res.output == 245) and np.all(res.attention == 128)
    manifest = json.loads(_plan(tmp_path).with_suffix(".plan.json").read_text())
    assert manifest["gpu_name"] == "Fake GPU" and manifest["compute_capability"] == [8, 9] and manifest["precision"] == "fp16"
    assert manifest["io"]["check"] == ["output", "float32", [1]] and manifest["styles"] == list(eng.model.styles)
    assert fakes["trt_calls"].count("Builder.build_serialized_network") == 1
    with make(tiny_model, tmp_path) as eng:  # second start: no build
        eng.infer(np.zeros((40, 64, 3), np.uint8), W, 1.0)
    assert fakes["trt_calls"].count("Builder.build_serialized_network") == 1


@pytest.mark.parametrize("tamper, reason", [
    (lambda p: _edit(p, trt_version="9.0.0"), "trt_version"),
    (lambda p: _edit(p, compute_capability=[7, 5]), "compute_capability"),
    (lambda p: _edit(p, profile={"min": [8, 8], "opt": [8, 8], "max": [8, 8]}), "profile"),
    (lambda p: Path(f"{p}.json").unlink(), "no manifest"),
    (lambda p: p.write_bytes(b"garbage"), "sha256"),
])
def test_stale_engines_are_rebuilt_with_the_reason_logged(fakes: dict, tiny_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                          tamper: object, reason: str) -> None:
    with make(tiny_model, tmp_path):
        pass
    tamper(_plan(tmp_path))  # type: ignore[operator]
    caplog.set_level(logging.INFO, "engines")
    with make(tiny_model, tmp_path) as eng:
        eng.infer(np.zeros((40, 64, 3), np.uint8), W, 1.0)
    assert fakes["trt_calls"].count("Builder.build_serialized_network") == 2
    assert any("building TensorRT engine" in r.message and reason in r.message for r in caplog.records)


def test_a_plan_that_does_not_deserialize_is_rebuilt(fakes: dict, tiny_model: Path, tmp_path: Path) -> None:
    with make(tiny_model, tmp_path):
        pass
    plan = _plan(tmp_path)
    import hashlib

    plan.write_bytes(b"NOT A PLAN FROM THIS TENSORRT")
    _edit(plan, plan_sha256=hashlib.sha256(plan.read_bytes()).hexdigest())  # manifest agrees, TensorRT does not
    with make(tiny_model, tmp_path):
        pass
    assert fakes["trt_calls"].count("Builder.build_serialized_network") == 2
    assert plan.read_bytes().startswith(b"FAKEPLAN")


def test_stale_engine_without_rebuild_is_a_typed_error_listing_reasons(fakes: dict, tiny_model: Path, tmp_path: Path) -> None:
    with make(tiny_model, tmp_path):
        pass
    _edit(_plan(tmp_path), gpu_name="Tesla T4", trt_version="10.0.0")
    eng = make(tiny_model, tmp_path, rebuild=False)
    with pytest.raises(StaleEngine) as exc:
        eng.open()
    assert {r.split(":")[0] for r in exc.value.reasons} == {"trt_version", "gpu_name"}
    assert fakes["drv"]._live["contexts"] == 0 and fakes["drv"]._live["allocs"] == 0  # a failed open still frees and pops
    assert fakes["cuda_calls"][-1] == "Context.pop"


def test_missing_fp16_onnx_is_a_model_error(fakes: dict, tiny_model: Path, tmp_path: Path) -> None:
    model = tmp_path / "copy.onnx"
    shutil.copy(tiny_model, model)
    shutil.copy(tiny_model.with_suffix(".json"), model.with_suffix(".json"))
    with pytest.raises(ModelError, match="fp16.onnx not found"):
        make(model, tmp_path / "cache").open()
    with make(model, tmp_path / "cache", precision="fp32") as eng:  # the FP32 ONNX gives an FP32 engine, no check output
        assert np.all(eng.infer(np.zeros((16, 16, 3), np.uint8), W, 1.0).output == 255)


def test_lifecycle_frees_everything_before_popping_the_context_twice(fakes: dict, tiny_model: Path, tmp_path: Path) -> None:
    calls, live = fakes["cuda_calls"], fakes["drv"]._live
    for _ in range(2):
        eng = make(tiny_model, tmp_path)
        eng.open()
        eng.infer(np.zeros((40, 64, 3), np.uint8), W, 1.0)
        eng.close()
        eng.close()  # idempotent
        assert live["contexts"] == 0 and live["allocs"] == 0
    assert calls[:4] == ["init", "Device.retain_primary_context", "Context.push", "Stream.__init__"]
    last = calls[len(calls) - calls[::-1].index("Stream.synchronize") - 1:]
    assert last == ["Stream.synchronize"] + ["DeviceAllocation.free", "HostAllocation.free"] * 6 + ["Context.pop"]
    assert calls.count("Context.push") == calls.count("Context.pop") == 2


def test_frame_size_changes_reset_shapes_without_reallocating(fakes: dict, tiny_model: Path, tmp_path: Path) -> None:
    with make(tiny_model, tmp_path) as eng:
        allocs = fakes["drv"]._live["allocs"]
        for h, w in ((40, 64), (90, 120), (40, 64), (21, 30)):  # 21x30 is padded to 24x32
            out = eng.infer(np.full((h, w, 3), 7, np.uint8), W, 0.5).output
            assert out.shape == (h, w, 3) and np.all(out == 248)
        assert fakes["drv"]._live["allocs"] == allocs
        shapes = [c for c in fakes["trt_calls"] if c.startswith("IExecutionContext.set_input_shape")]
        assert shapes == [f"IExecutionContext.set_input_shape(frame, [1, {h}, {w}, 3])" for h, w in ((40, 64), (96, 120), (40, 64), (24, 32))]
        with pytest.raises(InputError, match="outside the engine's profile 16x16 .. 128x96"):
            eng.infer(np.zeros((100, 200, 3), np.uint8), W, 1.0)


def test_cuda_graph_is_captured_after_the_first_frame_and_replayed(fakes: dict, tiny_model: Path, tmp_path: Path) -> None:
    calls = fakes["cuda_calls"]
    with make(tiny_model, tmp_path, cuda_graph=True) as eng:
        for v in (1, 2, 3):
            assert np.all(eng.infer(np.full((40, 64, 3), v, np.uint8), W, 1.0).output == 255 - v)
        assert eng.counters["graph_captures"] == 1
    assert calls.count("Stream.begin_capture") == 1 and calls.count("GraphExec.launch") == 2


def test_cuda_graph_falls_back_when_capture_is_unsupported(monkeypatch: pytest.MonkeyPatch, tiny_model: Path, tmp_path: Path) -> None:
    calls: list[str] = []
    install(monkeypatch, make_tensorrt([]), make_pycuda(calls, graphs=False))
    with make(tiny_model, tmp_path, cuda_graph=True) as eng:
        for v in (1, 2):
            assert np.all(eng.infer(np.full((40, 64, 3), v, np.uint8), W, 1.0).output == 255 - v)
        assert eng.counters["graph_captures"] == 0
    assert "GraphExec.launch" not in calls


def test_cuda_graph_falls_back_when_an_op_cannot_be_captured(fakes: dict, tiny_model: Path, tmp_path: Path) -> None:
    """execute_async_v3 (or a copy) failing inside the capture stopped the pipeline; the docstring
    promised plain launches."""
    calls = fakes["cuda_calls"]
    with make(tiny_model, tmp_path, cuda_graph=True) as eng:
        plain, n = eng._enqueue, [0]

        def enqueue_once_then_refuse() -> None:
            n[0] += 1
            if n[0] == 2:  # the second call is the one being captured
                raise engines.EngineError("TensorRT execute_async_v3 failed")
            plain()

        eng._enqueue = enqueue_once_then_refuse  # type: ignore[method-assign]
        for v in (1, 2, 3):
            assert np.all(eng.infer(np.full((40, 64, 3), v, np.uint8), W, 1.0).output == 255 - v)
        assert eng.counters["graph_captures"] == 0
    assert calls.count("Stream.begin_capture") == 1 and calls.count("Stream.end_capture") == 1 and "GraphExec.launch" not in calls


def test_non_finite_output_switches_to_fp32_and_is_counted(fakes: dict, tiny_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fakes["trt"]._state["check_value"] = float("nan")
    caplog.set_level(logging.WARNING, "engines")
    from engines.tensorrt import FALLBACK_BUILD_S

    long_calls: list[float] = []
    with make(tiny_model, tmp_path) as eng:
        eng.on_long_call = long_calls.append
        out = eng.infer(np.full((40, 64, 3), 5, np.uint8), W, 1.0).output
        assert np.all(out == 250)  # the frame re-ran on the FP32 engine: no garbage returned
        assert long_calls == [FALLBACK_BUILD_S]  # the watchdog was told before the (re)build
        assert eng.precision == "fp32" and eng.counters["nonfinite_frames"] == 1 and eng.counters["fp32_fallbacks"] == 1
        eng.infer(np.full((40, 64, 3), 5, np.uint8), W, 1.0)
    assert _plan(tmp_path, "fp32").is_file()
    assert sum("NaN/Inf" in r.message for r in caplog.records) == 1
    assert fakes["drv"]._live["allocs"] == 0


def test_an_unwritable_engine_cache_still_gives_a_working_engine(fakes: dict, tiny_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "file").write_text("not a folder")  # e.g. a read-only state directory
    caplog.set_level(logging.WARNING, "engines")
    with make(tiny_model, tmp_path / "file" / "engines") as eng:
        assert np.all(eng.infer(np.full((40, 64, 3), 5, np.uint8), W, 1.0).output == 250)
    assert any("running it uncached" in r.message for r in caplog.records)


def test_no_gpu_is_backend_unavailable(monkeypatch: pytest.MonkeyPatch, tiny_model: Path, tmp_path: Path) -> None:
    install(monkeypatch, make_tensorrt([]), make_pycuda([], devices=0))
    from engines.tensorrt import probe

    assert probe() == (False, "no CUDA device found")
    with pytest.raises(engines.BackendUnavailable, match="no CUDA device"):
        make(tiny_model, tmp_path).open()


def test_each_profile_and_model_folder_keeps_its_own_plan(fakes: dict, tiny_model: Path, tmp_path: Path) -> None:
    """Two cameras sharing one cache (one StateDirectory, a unit per camera) at different sizes, or
    two models of the same name: each builds once, then every start reuses its own plan."""
    other = tmp_path / "other" / tiny_model.name
    other.parent.mkdir()
    for src in tiny_model.parent.glob(f"{tiny_model.stem}.*"):
        shutil.copy(src, other.parent / src.name)
    cache = tmp_path / "cache"
    starts = [(tiny_model, "16x16:64x48:128x96"), (tiny_model, "16x16:32x32:64x64"), (other, "16x16:64x48:128x96")]
    for _ in range(2):
        for model, profile in starts:
            with engines.create_engine("tensorrt", model, cache_dir=cache, profile=profile) as eng:
                eng.infer(np.zeros((40, 64, 3) if "128x96" in profile else (32, 32, 3), np.uint8), W, 1.0)
    assert fakes["trt_calls"].count("Builder.build_serialized_network") == 3
    assert len(list(cache.glob("tiny.fp16.*.plan"))) == 3 and len(list(cache.glob("*.timing"))) == 1


def _plan(cache: Path, precision: str = "fp16") -> Path:
    """The one ``tiny.<precision>.….plan`` in ``cache``."""
    (plan,) = cache.glob(f"tiny.{precision}.*.plan")
    return plan


def _edit(plan: Path, **fields: object) -> None:
    path = plan.with_suffix(".plan.json")
    m = json.loads(path.read_text())
    m.update(fields)
    path.write_text(json.dumps(m))
