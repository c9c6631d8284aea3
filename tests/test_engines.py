"""Engine protocol, input checks, model sidecar and the ONNX Runtime backend."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import engines
from engines.base import check_strength, check_style, pad_to_multiple


@pytest.mark.parametrize(
    "frame, match",
    [
        ([[1, 2, 3]], "expected numpy.ndarray"),
        (np.zeros((16, 16, 3), np.float32), "expected dtype uint8, got float32"),
        (np.zeros((16, 16), np.uint8), r"expected shape \[H,W,3\], got \[16, 16\]"),
        (np.zeros((16, 16, 4), np.uint8), r"got \[16, 16, 4\]"),
        (np.zeros((8, 16, 3), np.uint8), "H, W >= 16, got 8x16"),
    ],
)
def test_check_frame_says_expected_and_actual(frame: object, match: str) -> None:
    with pytest.raises(engines.InputError, match=match):
        engines.check_frame(frame)


def test_check_style_and_strength() -> None:
    assert check_style([0.5, 0.5], 2).tolist() == [0.5, 0.5]
    for bad, match in (([1.0], "expected 2 weights"), ([np.nan, 1], "finite"), ([-1, 2], "non-negative"), ([0, 0], "positive sum")):
        with pytest.raises(engines.InputError, match=match):
            check_style(bad, 2)
    for bad in (1.5, -0.1, "x", None, True, float("nan")):
        with pytest.raises(engines.InputError, match="strength"):
            check_strength(bad)


def test_pad_to_multiple() -> None:
    f = np.arange(10 * 13 * 3, dtype=np.uint8).reshape(10, 13, 3)
    p = pad_to_multiple(f, 8)
    assert p.shape == (16, 16, 3)
    np.testing.assert_array_equal(p[:10, :13], f)
    same = np.zeros((16, 24, 3), np.uint8)
    assert pad_to_multiple(same, 8) is same


def test_registry_unknown_backend_and_lazy_import() -> None:
    assert "onnxruntime" in engines.available_backends()
    with pytest.raises(engines.EngineError, match="unknown backend 'nope'"):
        engines.backend_class("nope")


def test_model_info_errors(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(engines.ModelError, match="model file not found"):
        engines.load_model_info(tmp_path / "missing.onnx")
    lone = tmp_path / "lone.onnx"
    shutil.copy(tiny_model, lone)
    with pytest.raises(engines.ModelError, match="sidecar not found"):
        engines.load_model_info(lone)
    side = json.loads(tiny_model.with_suffix(".json").read_text())
    for patch, match in (({"format": "x"}, "'format'"), ({"format_version": 99}, "format_version"), ({"styles": []}, "styles"), ({"size_multiple": 0}, "size_multiple")):
        lone.with_suffix(".json").write_text(json.dumps({**side, **patch}))
        with pytest.raises(engines.ModelError, match=match):
            engines.load_model_info(lone)
    for junk in (b"{not json", b"\xff\xfe{", b"[" * 100_000):  # bad JSON, not UTF-8 (was a bare UnicodeDecodeError), too deep
        lone.with_suffix(".json").write_bytes(junk)
        with pytest.raises(engines.ModelError, match="unreadable"):
            engines.load_model_info(lone)


def test_corrupt_onnx_is_a_model_error(tiny_model: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage")
    shutil.copy(tiny_model.with_suffix(".json"), bad.with_suffix(".json"))
    with pytest.raises(engines.ModelError, match="onnxruntime cannot load"):
        engines.create_engine("onnxruntime", bad).open()


def test_a_device_failure_at_load_is_an_engine_error_not_a_model_error(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CUDA out of memory while the session starts is the machine's state: exit 1 (restarted),
    not the exit 2 of a bad model, which systemd does not restart."""
    import onnxruntime as ort
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    def oom(*a: object, **k: object) -> None:
        raise state.RuntimeException("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : CUDA failure 2: out of memory")

    monkeypatch.setattr(ort, "InferenceSession", oom)
    with pytest.raises(engines.EngineError, match="could not start") as info:
        engines.create_engine("onnxruntime", tiny_model).open()
    assert not isinstance(info.value, engines.ModelError)


def test_ort_engine_lifecycle_and_shapes(tiny_model: Path) -> None:
    eng = engines.create_engine("onnxruntime", tiny_model, threads=1)
    assert isinstance(eng, engines.Engine)
    with pytest.raises(engines.EngineClosed):
        eng.infer(np.zeros((16, 16, 3), np.uint8), np.array([1, 0], np.float32), 1.0)
    with eng:
        rng = np.random.default_rng(0)
        for h, w in ((64, 96), (37, 53), (16, 17)):  # sizes not multiples of 8 are padded and cropped
            frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            res = eng.infer(frame, np.array([0.3, 0.7], np.float32), 1.0)
            assert res.output.shape == (h, w, 3) and res.output.dtype == np.uint8
            assert res.attention.shape == (h, w) and res.attention.dtype == np.uint8
        zero = eng.infer(frame, np.array([1, 0], np.float32), 0.0)
        np.testing.assert_array_equal(zero.output, frame)  # strength 0 = input unchanged
        with pytest.raises(engines.InputError):
            eng.infer(frame, np.array([1, 0, 0], np.float32), 1.0)
    eng.close()  # idempotent
    assert not eng.is_open
