"""The mixed-precision FP16 ONNX that TensorRT engines are built from (training/fp16.py).

ONNX Runtime's CPU provider has FP16 kernels for few of these ops: it inserts casts to FP32
around the rest (its CastFloat16Transformer / InsertCastTransformer, visible in its verbose log).
So the CPU parity test measures what FP16 *storage* does to the output (weights and every
activation between nodes rounded to FP16), not FP16 arithmetic inside a kernel; the latter is
covered by the activation-range test here and by the GPU parity test (tests/test_trt_gpu.py).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from tests.conftest import DATA, scrambled_generator

FP16_SAFE = 6e4 / 4  # FP16 max is 65504; keep a 4x margin for brighter or odder footage


def photos(n: int, size: tuple[int, int] = (640, 360)) -> list[np.ndarray]:
    files = sorted((DATA / "content").glob("*.jpg"))[:n]
    if not files:
        pytest.skip(f"no photos in {DATA / 'content'} (set STYLECAST_DATA to the shared data folder)")
    return [cv2.resize(cv2.imread(str(f)), size, interpolation=cv2.INTER_AREA) for f in files]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def session(path: Path):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def elem_types(model: onnx.ModelProto) -> dict[str, int]:
    g = onnx.shape_inference.infer_shapes(model).graph
    return {v.name: v.type.tensor_type.elem_type for v in (*g.value_info, *g.input, *g.output)} | {i.name: i.data_type for i in g.initializer}


def test_fp16_onnx_is_valid_mixed_precision_with_io_unchanged(tiny_model: Path) -> None:
    m = onnx.load(str(tiny_model.with_suffix(".fp16.onnx")))
    onnx.checker.check_model(m, full_check=True)
    F32, F16, U8 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.UINT8
    io = {v.name: v.type.tensor_type.elem_type for v in (*m.graph.input, *m.graph.output)}
    assert io == {"frame": U8, "style": F32, "strength": F32, "output": U8, "attention": U8, "check": F32}
    types = elem_types(m)
    norms = [n for n in m.graph.node if n.op_type == "InstanceNormalization"]
    assert norms and all(types[i] == F32 for n in norms for i in n.input), "instance norm and its scale/bias must stay FP32"
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    assert convs and all(types[i] == F16 for n in convs for i in n.input), "convolutions run in FP16"
    assert not [i.name for i in m.graph.initializer if i.data_type == F32 and i.name not in {x for n in norms for x in n.input}]


def test_fp16_matches_fp32_on_a_photo_in_onnx_runtime(tiny_model: Path) -> None:
    frame = photos(1)[0]
    feeds = {"frame": frame[None], "style": np.array([[0.3, 0.7]], np.float32), "strength": np.ones(1, np.float32)}
    out32, att32 = session(tiny_model).run(["output", "attention"], feeds)
    out16, att16, check = session(tiny_model.with_suffix(".fp16.onnx")).run(["output", "attention", "check"], feeds)
    assert psnr(out32, out16) >= 40.0 and psnr(att32, att16) >= 40.0, (psnr(out32, out16), psnr(att32, att16))
    assert check.dtype == np.float32 and check.shape == (1,) and np.isfinite(check[0])


@pytest.fixture(params=["tiny_run", "quality_tier", "bundled_fast", "bundled_quality"])
def trained_generator(request: pytest.FixtureRequest, tiny_run: Path):  # type: ignore[no-untyped-def]
    """(generator, style names): the tiny test run's (fast tier), a quality-tier generator with its
    weights moved off their init, and the bundled model's weights."""
    from streamer.config import bundled_model_path
    from training.export import ExportError, generator_weights_path, load_generator

    if request.param == "tiny_run":
        g, styles, _ = load_generator(tiny_run)
        return g, styles
    if request.param == "quality_tier":
        return scrambled_generator("quality", 2), ["a", "b"]
    weights = generator_weights_path(bundled_model_path(request.param.removeprefix("bundled_")))
    if not weights.is_file():
        pytest.skip(f"no bundled {request.param.removeprefix('bundled_')} model ({weights})")
    try:
        g, styles, _ = load_generator(weights)
    except ExportError as e:
        pytest.fail(f"the bundled model's weights are not this generator's (retrain and re-export it): {e}")
    return g, styles


def test_trained_generator_fp16_parity_in_onnx_runtime(trained_generator, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from training.export import export_onnx
    from training.fp16 import export_fp16

    g, styles = trained_generator
    export_onnx(g, tmp_path / "m.onnx", len(styles))
    export_fp16(g, tmp_path / "m.onnx", len(styles))
    s32, s16 = session(tmp_path / "m.onnx"), session(tmp_path / "m.fp16.onnx")
    worst = float("inf")
    for frame in photos(3):
        for i in range(len(styles)):
            feeds = {"frame": frame[None], "style": np.eye(len(styles), dtype=np.float32)[i : i + 1], "strength": np.ones(1, np.float32)}
            worst = min(worst, psnr(s32.run(["output"], feeds)[0], s16.run(["output"], feeds)[0]))
    assert worst >= 40.0, f"worst PSNR {worst:.1f} dB"


def test_no_activation_of_the_fp32_model_leaves_the_fp16_range(trained_generator) -> None:  # type: ignore[no-untyped-def]
    """Every stage (Generator.features) and every layer output (forward hooks, so conv outputs
    before their norm too) on real photos, each style: max |x| well inside FP16's 65504."""
    import torch

    g, styles = trained_generator
    peaks: dict[str, float] = {}

    def hook(name: str):  # type: ignore[no-untyped-def]
        def record(_m, _i, out) -> None:  # type: ignore[no-untyped-def]
            if isinstance(out, torch.Tensor):
                peaks[name] = max(peaks.get(name, 0.0), float(out.abs().max()))
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in g.named_modules() if n]
    try:
        with torch.no_grad():
            for frame in photos(6):
                x = torch.from_numpy(frame[:, :, ::-1].copy()).permute(2, 0, 1)[None].float() / 255.0
                for i in range(len(styles)):
                    feats = g.features(x, torch.eye(len(styles))[i : i + 1])
                    for k, v in feats.items():
                        peaks["stage." + k] = max(peaks.get("stage." + k, 0.0), float(v.abs().max()))
    finally:
        for h in handles:
            h.remove()
    assert peaks and all(np.isfinite(v) for v in peaks.values())
    worst = max(peaks, key=lambda k: peaks[k])
    assert peaks[worst] < FP16_SAFE, f"{worst} reaches {peaks[worst]:.0f} (FP16 max 65504)"
