"""``serve`` without ``--model`` picks the bundled tier that fits its backend: the quality model
where a GPU runs it (TensorRT, ONNX Runtime's CUDA provider), the fast one on a CPU."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import streamer.daemon
from streamer.config import BUNDLED_MODELS, ServeConfig, bundled_model_path, default_model_path
from streamer.daemon import pick_tier, with_model


def test_the_bundled_files() -> None:
    """Both tiers ship; every command but serve on a GPU uses the fast one."""
    assert BUNDLED_MODELS == {"fast": "default.onnx", "quality": "quality.onnx"}
    assert all(bundled_model_path(t).is_file() for t in BUNDLED_MODELS)
    assert default_model_path() == bundled_model_path("fast") != bundled_model_path("quality")
    assert ServeConfig().model_path == default_model_path()  # every other command


@pytest.mark.parametrize(("backend", "cuda", "tier"), [
    ("tensorrt", False, "quality"), ("tensorrt", True, "quality"),
    ("onnxruntime", True, "quality"), ("onnxruntime", False, "fast"),
])
def test_pick_tier_by_backend(backend: str, cuda: bool, tier: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streamer.daemon, "ort_has_cuda", lambda: cuda)
    got, why = pick_tier(backend)
    assert got == tier and why


def _bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiers: tuple[str, ...]) -> dict[str, Path]:
    """Stand-in bundled model files for ``tiers``, as if those were what ships."""
    paths = {t: tmp_path / f"{t}.onnx" for t in tiers}
    for p in paths.values():
        p.write_bytes(b"onnx")
    monkeypatch.setattr(streamer.daemon, "BUNDLED_MODELS", {t: p.name for t, p in paths.items()})
    monkeypatch.setattr(streamer.daemon, "bundled_model_path", lambda t: paths.get(t, paths["quality"]))
    return paths


def test_with_model_names_the_tier_for_the_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    paths = _bundle(tmp_path, monkeypatch, ("quality", "fast"))
    monkeypatch.setattr(streamer.daemon, "ort_has_cuda", lambda: False)
    caplog.set_level(logging.INFO, "streamer.daemon")
    assert with_model(ServeConfig(), "tensorrt").model_path == paths["quality"]
    assert not caplog.records  # quiet by default
    assert with_model(ServeConfig(), "onnxruntime", quiet=False).model_path == paths["fast"]
    assert any("bundled fast tier" in r.message and "CPU" in r.message for r in caplog.records)
    monkeypatch.setattr(streamer.daemon, "ort_has_cuda", lambda: True)
    assert with_model(ServeConfig(), "onnxruntime").model_path == paths["quality"]


def test_with_model_keeps_an_explicit_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _bundle(tmp_path, monkeypatch, ("quality", "fast"))
    mine = ServeConfig(model=str(tmp_path / "mine.onnx"))
    for backend in ("tensorrt", "onnxruntime"):
        assert with_model(mine, backend) == mine


def test_a_cpu_gets_the_quality_model_while_no_fast_one_ships_and_is_told(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    paths = _bundle(tmp_path, monkeypatch, ("quality",))
    monkeypatch.setattr(streamer.daemon, "ort_has_cuda", lambda: False)
    caplog.set_level(logging.INFO, "streamer.daemon")
    assert with_model(ServeConfig(), "onnxruntime", quiet=False).model_path == paths["quality"]
    assert any("bundled quality tier" in r.message and "fast tier is not bundled" in r.message for r in caplog.records)
