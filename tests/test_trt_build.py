"""TensorRT builder logic against a strict fake ``tensorrt`` (tests/trt_fakes.py): call order,
TRT 10/11 API branches, every parser error reported, timing cache persisted, and the fake's
names checked against tensorrt-stubs so it cannot drift from the real API."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from engines.trt_build import EngineBuildError, OnnxParseError, build_plan
from engines.trt_manifest import DEFAULT_PROFILE
from tests.trt_fakes import install, make_tensorrt, stub_names

EXPECTED_ORDER = [
    "ILogger.__init__", "Builder.__init__", "Builder.create_network(2)", "OnnxParser.__init__", "OnnxParser.parse_from_file",
    "Builder.create_builder_config", "IBuilderConfig.set_memory_pool_limit", "Builder.create_optimization_profile",
    "IOptimizationProfile.set_shape", "IBuilderConfig.add_optimization_profile", "IBuilderConfig.create_timing_cache(b'')",
    "IBuilderConfig.set_timing_cache", "IProgressMonitor.__init__", "IBuilderConfig.progress_monitor=",
    "Builder.build_serialized_network", "IBuilderConfig.get_timing_cache", "ITimingCache.serialize",
]


@pytest.fixture
def fp16_onnx(tiny_model: Path) -> Path:
    return tiny_model.with_suffix(".fp16.onnx")


def test_build_calls_the_api_in_order_with_a_strongly_typed_network(monkeypatch: pytest.MonkeyPatch, fp16_onnx: Path, tmp_path: Path) -> None:
    calls: list[str] = []
    install(monkeypatch, make_tensorrt(calls))
    plan = build_plan(fp16_onnx, DEFAULT_PROFILE, tmp_path / "m.timing")
    assert calls == EXPECTED_ORDER  # create_network(1 << STRONGLY_TYPED), no FP16 builder flag anywhere
    assert plan.startswith(b"FAKEPLAN")
    assert b'"frame": [[1, 184, 320, 3], [1, 720, 1280, 3], [1, 1080, 1920, 3]]' in plan
    assert (tmp_path / "m.timing").read_bytes() == b"+timed"


def test_tensorrt_11_without_the_flag_or_progress_monitor(monkeypatch: pytest.MonkeyPatch, fp16_onnx: Path, tmp_path: Path) -> None:
    calls: list[str] = []
    install(monkeypatch, make_tensorrt(calls, version="11.0.0.114", strongly_typed_flag=False, progress_monitor=False))
    build_plan(fp16_onnx, DEFAULT_PROFILE, tmp_path / "m.timing")
    assert "Builder.create_network(0)" in calls
    assert not any("progress_monitor" in c or "IProgressMonitor" in c for c in calls)


def test_timing_cache_is_reused_by_the_next_build(monkeypatch: pytest.MonkeyPatch, fp16_onnx: Path, tmp_path: Path) -> None:
    calls: list[str] = []
    install(monkeypatch, make_tensorrt(calls))
    build_plan(fp16_onnx, DEFAULT_PROFILE, tmp_path / "m.timing")
    build_plan(fp16_onnx, DEFAULT_PROFILE, tmp_path / "m.timing")
    assert "IBuilderConfig.create_timing_cache(b'+timed')" in calls
    assert (tmp_path / "m.timing").read_bytes() == b"+timed+timed"


def test_every_parser_error_is_reported(monkeypatch: pytest.MonkeyPatch, fp16_onnx: Path, tmp_path: Path) -> None:
    errors = [(3, "Resize", "/g/Resize", "unsupported mode"), (7, "Pad", "/g/pad", "reflect needs constant pads"), (-1, "", "", "bad opset")]
    calls: list[str] = []
    install(monkeypatch, make_tensorrt(calls, parse_errors=errors))
    with pytest.raises(OnnxParseError) as exc:
        build_plan(fp16_onnx, DEFAULT_PROFILE, tmp_path / "m.timing")
    assert len(exc.value.errors) == 3 and calls.count("OnnxParser.get_error") == 3
    msg = str(exc.value)
    assert "3 error(s)" in msg and "node 3 (Resize /g/Resize)" in msg and "reflect needs constant pads" in msg and "model: " in msg
    assert "Builder.build_serialized_network" not in calls


def test_a_failed_build_is_a_typed_error_and_writes_nothing(monkeypatch: pytest.MonkeyPatch, fp16_onnx: Path, tmp_path: Path) -> None:
    install(monkeypatch, make_tensorrt([], build_fails=True))
    with pytest.raises(EngineBuildError, match="could not build"):
        build_plan(fp16_onnx, DEFAULT_PROFILE, tmp_path / "m.timing")
    assert list(tmp_path.iterdir()) == []


def test_the_fake_is_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    trt = make_tensorrt([])
    with pytest.raises(AttributeError):
        trt.BuilderFlag  # noqa: B018  (removed in TensorRT 11: the code must not use it)
    with pytest.raises(AttributeError):
        trt.Builder(trt.ILogger()).build_engine  # noqa: B018  (removed in TensorRT 10)
    with pytest.raises(AttributeError):
        trt.Builder(trt.ILogger()).create_builder_config().max_workspace_size = 1


def test_fake_names_exist_in_tensorrt_stubs() -> None:
    spec = importlib.util.find_spec("tensorrt_bindings")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("tensorrt-stubs not installed (pip install --no-deps tensorrt-stubs)")
    stubs = stub_names(Path(next(iter(spec.submodule_search_locations))))
    trt = make_tensorrt([])
    classes = ["Builder", "IBuilderConfig", "IOptimizationProfile", "OnnxParser", "ParserError", "ITimingCache", "Runtime", "ICudaEngine",
               "IExecutionContext", "Dims", "ILogger", "IProgressMonitor", "NetworkDefinitionCreationFlag", "MemoryPoolType", "TensorIOMode", "DataType"]
    for name in classes:
        assert name in stubs, f"{name} is not a TensorRT class"
        fake = getattr(trt, name)
        own = {k for k in (*vars(fake), *getattr(fake, "__slots__", ())) if not k.startswith("_")}
        own -= {"name", "value", "shapes", "profiles", "io", "profile", "data"}  # the fakes' own bookkeeping
        missing = {k for k in own if k not in stubs[name] and not k.isupper()}
        assert not missing, f"fake {name} has {missing}, which tensorrt.{name} does not"


def test_a_timing_cache_from_another_gpu_is_replaced_not_fatal(monkeypatch: pytest.MonkeyPatch, fp16_onnx: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []
    trt = make_tensorrt(calls)
    trt._state["timing_cache_mismatch"] = True  # type: ignore[attr-defined]
    install(monkeypatch, trt)
    (tmp_path / "m.timing").write_bytes(b"old-gpu")
    caplog.set_level("WARNING", "engines")
    assert build_plan(fp16_onnx, DEFAULT_PROFILE, tmp_path / "m.timing").startswith(b"FAKEPLAN")
    assert "IBuilderConfig.create_timing_cache(b'old-gpu')" in calls and "IBuilderConfig.create_timing_cache(b'')" in calls
    assert (tmp_path / "m.timing").read_bytes() == b"+timed"  # the refused cache is overwritten by the new one
    assert any("another GPU" in r.message for r in caplog.records)


def test_an_unwritable_timing_cache_only_warns(monkeypatch: pytest.MonkeyPatch, fp16_onnx: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    install(monkeypatch, make_tensorrt([]))
    (tmp_path / "file").write_text("not a folder")
    caplog.set_level("WARNING", "engines")
    assert build_plan(fp16_onnx, DEFAULT_PROFILE, tmp_path / "file" / "m.timing").startswith(b"FAKEPLAN")
    assert any("cannot save the TensorRT timing cache" in r.message for r in caplog.records)
