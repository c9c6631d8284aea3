"""Model files that lie (issue 32, defects 5 and 6): each is refused when it is opened, with a
ModelError naming the file and the mismatch; ``serve`` and ``serve --dry-run`` exit 2 with one
line, not a traceback and not a healthy daemon publishing garbage."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

import engines  # noqa: E402
from streamer.bench import free_tcp_port  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _graph(nodes: list[onnx.NodeProto], out_type: int = TensorProto.UINT8, out_rank: int = 4, att_rank: int = 4,
           inputs: tuple[str, str, str] = ("frame", "style", "strength"), styles: int = 2) -> onnx.ModelProto:
    """A hand-made model with the contract's inputs and two outputs computed by ``nodes``."""
    dims = ["N", "H", "W", "C"]
    g = helper.make_graph(
        nodes, "bad",
        [helper.make_tensor_value_info(inputs[0], TensorProto.UINT8, [1, "H", "W", 3]),
         helper.make_tensor_value_info(inputs[1], TensorProto.FLOAT, [1, styles]),
         helper.make_tensor_value_info(inputs[2], TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("output", out_type, dims[:out_rank]), helper.make_tensor_value_info("attention", TensorProto.UINT8, dims[:att_rank])],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _f(frame: str = "frame") -> list[onnx.NodeProto]:
    return [helper.make_node("Cast", [frame], ["f"], to=TensorProto.FLOAT), helper.make_node("ReduceMean", ["f"], ["m"], axes=[3], keepdims=1)]


def _att(keepdims: int = 1) -> list[onnx.NodeProto]:
    return [helper.make_node("ReduceMean", ["f"], ["m2"], axes=[3], keepdims=keepdims), helper.make_node("Cast", ["m2"], ["attention"], to=TensorProto.UINT8)]


def _slice(axis: int, end: int, step: int) -> list[onnx.NodeProto]:
    consts = [helper.make_node("Constant", [], [n], value=helper.make_tensor(n, TensorProto.INT64, [1], [v])) for n, v in (("s0", 0), ("s1", end), ("ax", axis), ("st", step))]
    return [*consts, helper.make_node("Slice", ["frame", "s0", "s1", "ax", "st"], ["output"])]


BAD_GRAPHS: dict[str, tuple[Callable[[], onnx.ModelProto], str]] = {
    "float32 output": (lambda: _graph([*_f(), helper.make_node("Identity", ["f"], ["output"]), *_att()], out_type=TensorProto.FLOAT), "tensor(float)"),
    "rank-3 attention": (lambda: _graph([*_f(), helper.make_node("Identity", ["frame"], ["output"]), *_att(keepdims=0)], att_rank=3), "rank 4"),
    "half-size output": (lambda: _graph([*_f(), *_slice(1, 1 << 30, 2), *_att()]), "expected uint8 [1, 64, 96, 3], got uint8 [1, 32, 96, 3]"),
    "1-channel output": (lambda: _graph([*_f(), *_slice(3, 1, 1), *_att()]), "has 1 channels, expected 3"),
    "wrong input names": (lambda: _graph([*_f("image"), helper.make_node("Identity", ["image"], ["output"]), *_att()], inputs=("image", "style", "strength")), "expected inputs"),
    "3 style weights": (lambda: _graph([*_f(), helper.make_node("Identity", ["frame"], ["output"]), *_att()], styles=3), "takes 3 style weights, the sidecar lists 2"),
}


def _write(tmp_path: Path, tiny_model: Path, name: str, onnx_bytes: bytes, styles: list[str] | None = None) -> Path:
    path = tmp_path / f"{name.replace(' ', '_')}.onnx"
    path.write_bytes(onnx_bytes)
    side = json.loads(tiny_model.with_suffix(".json").read_text())
    side["onnx"] = path.name
    side.pop("onnx_sha256", None)
    if styles is not None:
        side["styles"] = styles
    path.with_suffix(".json").write_text(json.dumps(side))
    return path


def _bad_models(tmp_path: Path, tiny_model: Path) -> dict[str, tuple[Path, str]]:
    out = {name: (_write(tmp_path, tiny_model, name, make().SerializeToString()), words) for name, (make, words) in BAD_GRAPHS.items()}
    good = tiny_model.read_bytes()
    out["random bytes"] = (_write(tmp_path, tiny_model, "random bytes", np.random.default_rng(0).bytes(5000)), "cannot load")
    out["truncated"] = (_write(tmp_path, tiny_model, "truncated", good[: len(good) // 2]), "cannot load")
    out["sidecar lists 5 styles"] = (_write(tmp_path, tiny_model, "five", good, ["a", "b", "c", "d", "e"]), "takes 2 style weights, the sidecar lists 5")
    out["sidecar lists 1 style"] = (_write(tmp_path, tiny_model, "one", good, ["a"]), "takes 2 style weights, the sidecar lists 1")
    return out


def test_each_lying_model_is_a_model_error_at_open_or_first_frame(tmp_path: Path, tiny_model: Path) -> None:
    frame = np.full((64, 96, 3), 128, np.uint8)
    for name, (path, words) in _bad_models(tmp_path, tiny_model).items():
        eng = engines.create_engine("onnxruntime", path, threads=1)
        with pytest.raises(engines.ModelError) as e:
            eng.open()
            style = np.zeros(eng.model.num_styles, np.float32)
            style[0] = 1
            eng.infer(frame, style, 1.0)
        eng.close()
        assert words in str(e.value), (name, str(e.value))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamer", *args], capture_output=True, text=True, timeout=120, cwd=REPO)


def test_serve_and_its_dry_run_refuse_them_with_exit_2_and_one_line(tmp_path: Path, tiny_model: Path) -> None:
    bad = _bad_models(tmp_path, tiny_model)
    for name in ("float32 output", "sidecar lists 5 styles", "rank-3 attention", "random bytes", "half-size output"):
        path, words = bad[name]
        for extra in (["--dry-run"], ["--max-frames", "3", "--stabilise", "0"]):
            out = _cli("serve", "--model", str(path), "--width", "96", "--height", "64", "--publish", f"tcp://127.0.0.1:{free_tcp_port()}",
                       "--control", f"tcp://127.0.0.1:{free_tcp_port()}", *extra)
            lines = [ln for ln in out.stderr.splitlines() if "error" in ln]
            assert out.returncode == 2, (name, extra, out.stderr[-800:])
            assert "Traceback" not in out.stderr and len(lines) == 1 and words in lines[0] and path.name in lines[0], (name, extra, out.stderr[-800:])
    ok = _cli("serve", "--model", str(tiny_model), "--width", "96", "--height", "64", "--dry-run")
    assert ok.returncode == 0 and "ran one 96x64 frame" in ok.stderr, ok.stderr
