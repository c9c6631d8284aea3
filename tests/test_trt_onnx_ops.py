"""The bundled ONNX graphs and what the exporter writes for each tier (FP32 and the
mixed-precision one TensorRT builds from) use only operators, and operator modes, that TensorRT
10's ONNX parser supports.

No machine here has TensorRT, so these graphs (bilinear Resize, reflection Pad, depth-to-space)
have never been parsed by it. This checks them against the parser's published support
matrix instead (onnx/onnx-tensorrt, docs/operators.md for TensorRT 10): the op types the
exporter emits, Resize's modes (linear or nearest, a half-pixel/asymmetric/align-corners
transform, no antialiasing, no cubic), Pad's modes, that Reduce* axes are constants, and that
uint8 tensors only meet Casts: TensorRT has no other layer that reads or writes UINT8, not even a
Transpose (NVIDIA/TensorRT#3985), so a uint8 input must feed a Cast directly and a uint8 output
must come straight out of one."""

from __future__ import annotations

from pathlib import Path

import pytest

onnx = pytest.importorskip("onnx")

from streamer.config import BUNDLED_MODELS, bundled_model_path  # noqa: E402

MODELS = [p for tier in sorted(BUNDLED_MODELS) for p in (bundled_model_path(tier), bundled_model_path(tier).with_suffix(".fp16.onnx"))]

# The subset of TensorRT 10's supported ONNX ops that an image-to-image exporter can emit.
TRT10_OPS = frozenset({
    "Abs", "Add", "AveragePool", "Cast", "Clip", "Concat", "Constant", "ConstantOfShape", "Conv", "ConvTranspose",
    "DepthToSpace", "Div", "Exp", "Gather", "Identity", "InstanceNormalization", "Log", "MatMul",
    "Max", "Min", "Mul", "Neg", "Pad", "ReduceMean", "ReduceSum", "Relu", "Reshape", "Resize",
    "Round", "Shape", "Sigmoid", "Slice", "SpaceToDepth", "Split", "Sqrt", "Squeeze", "Sub",
    "Tanh", "Transpose", "Unsqueeze", "Where",
})
RESIZE_MODES = {b"nearest", b"linear"}
RESIZE_TRANSFORMS = {b"half_pixel", b"pytorch_half_pixel", b"tf_half_pixel_for_nn", b"asymmetric", b"align_corners"}
PAD_MODES = {b"constant", b"reflect", b"edge"}


def unsupported(model: onnx.ModelProto) -> list[str]:
    """One line per node TensorRT 10's parser would reject, by the rules above."""
    u8 = onnx.TensorProto.UINT8
    outputs = {o.name for o in model.graph.output}
    u8_inputs = {i.name for i in model.graph.input if i.type.tensor_type.elem_type == u8}
    u8_outputs = {o.name for o in model.graph.output if o.type.tensor_type.elem_type == u8}
    constants = {i.name for i in model.graph.initializer} | {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    bad = []
    for n in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        to_u8 = n.op_type == "Cast" and attrs.get("to") == u8
        if n.op_type != "Cast" and (set(n.input) & u8_inputs or set(n.output) & u8_outputs):
            bad.append(f"{n.name}: {n.op_type} on a uint8 graph input or output (only a Cast may touch one)")
        if to_u8 and not set(n.output) <= outputs:
            bad.append(f"{n.name}: Cast to uint8 inside the graph (only a graph output may be uint8)")
        if n.op_type not in TRT10_OPS:
            bad.append(f"{n.name}: op {n.op_type}")
        elif n.op_type == "Resize":
            if attrs.get("mode", b"nearest") not in RESIZE_MODES:
                bad.append(f"{n.name}: Resize mode {attrs['mode']!r}")
            if attrs.get("coordinate_transformation_mode", b"half_pixel") not in RESIZE_TRANSFORMS:
                bad.append(f"{n.name}: Resize transform {attrs['coordinate_transformation_mode']!r}")
            if attrs.get("antialias", 0):
                bad.append(f"{n.name}: Resize antialias")
        elif n.op_type == "Pad" and attrs.get("mode", b"constant") not in PAD_MODES:
            bad.append(f"{n.name}: Pad mode {attrs['mode']!r}")
        elif n.op_type.startswith("Reduce") and len(n.input) > 1 and n.input[1] and n.input[1] not in constants:
            bad.append(f"{n.name}: {n.op_type} axes not a constant")
    return bad


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.name)
def test_bundled_graph_is_in_tensorrt10s_support_matrix(path: Path) -> None:
    if not path.is_file():
        pytest.skip(f"{path.name} is not bundled in this checkout")
    model = onnx.load(str(path))
    assert model.opset_import[0].version <= 20  # TensorRT 10.0 parses opsets 9–20
    assert unsupported(model) == []


@pytest.mark.parametrize("tier", ["quality", "fast"])
def test_each_tiers_exported_graphs_are_in_tensorrt10s_support_matrix(tier: str, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from tests.conftest import scrambled_generator
    from training.export import export_onnx
    from training.fp16 import export_fp16

    g = scrambled_generator(tier, 2)
    export_onnx(g, tmp_path / "m.onnx", 2)
    for path in (tmp_path / "m.onnx", export_fp16(g, tmp_path / "m.onnx", 2)):
        model = onnx.load(str(path))
        assert model.opset_import[0].version <= 20 and unsupported(model) == [], path.name
        assert "Resize" in {n.op_type for n in model.graph.node}  # the bilinear upsamplings: checked above, not absent


def test_the_check_rejects_what_tensorrt_does_not_parse() -> None:
    h = onnx.helper
    nodes = [
        h.make_node("Resize", ["x", "", "scales"], ["a"], name="cubic", mode="cubic"),
        h.make_node("Resize", ["x", "", "scales"], ["b"], name="aa", mode="linear", antialias=1),
        h.make_node("Pad", ["x", "pads"], ["c"], name="wrap", mode="wrap"),
        h.make_node("ReduceSum", ["x", "axes_in"], ["d"], name="dyn_axes"),
        h.make_node("DFT", ["x"], ["e"], name="dft"),
        h.make_node("Resize", ["x", "", "scales"], ["f"], name="ok", mode="linear", coordinate_transformation_mode="half_pixel"),
    ]
    f = onnx.TensorProto.FLOAT
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", f, [1, 1, 4, 4]), h.make_tensor_value_info("axes_in", onnx.TensorProto.INT64, [1])],
                         [h.make_tensor_value_info(o, f, None) for o in "abcdef"],
                         initializer=[h.make_tensor("scales", f, [4], [1, 1, 2, 2]), h.make_tensor("pads", onnx.TensorProto.INT64, [8], [0] * 8)])
    bad = unsupported(h.make_model(graph))
    assert [b.split(":")[0] for b in bad] == ["cubic", "aa", "wrap", "dyn_axes", "dft"]


def test_the_check_wants_uint8_to_meet_only_casts() -> None:
    h, T = onnx.helper, onnx.TensorProto
    def graph(nodes: list[onnx.NodeProto]) -> onnx.ModelProto:
        return h.make_model(h.make_graph(nodes, "g", [h.make_tensor_value_info("frame", T.UINT8, [1, 4, 4, 3])],
                                         [h.make_tensor_value_info("out", T.UINT8, [1, 4, 4, 3])]))
    trt_ok = [h.make_node("Cast", ["frame"], ["f"], name="in", to=T.FLOAT), h.make_node("Transpose", ["f"], ["t"], name="t", perm=[0, 1, 2, 3]),
              h.make_node("Cast", ["t"], ["out"], name="out", to=T.UINT8)]
    transposed_u8 = [h.make_node("Transpose", ["frame"], ["t"], name="t_in", perm=[0, 1, 2, 3]), h.make_node("Cast", ["t"], ["f"], name="in", to=T.FLOAT),
                     h.make_node("Cast", ["f"], ["c"], name="c", to=T.UINT8), h.make_node("Transpose", ["c"], ["out"], name="t_out", perm=[0, 1, 2, 3])]
    assert unsupported(graph(trt_ok)) == []
    assert [b.split(":")[0] for b in unsupported(graph(transposed_u8))] == ["t_in", "c", "t_out"]
