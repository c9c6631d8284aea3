"""Mixed-precision FP16 ONNX for TensorRT's strongly typed builds.

TensorRT 11 removed ``BuilderFlag.FP16``: precision now comes from the graph itself. This module
writes ``<model>.fp16.onnx`` from the same generator as ``<model>.onnx``:

- weights and activations in FP16, so TensorRT picks FP16 kernels;
- ``InstanceNormalization`` (and its scale/bias), the finite-check reduction and the attention
  map's frame mean (``ReduceMean``) kept in FP32: instance norm computed in FP16 is the known
  source of NaN or washed-out output (the variance of a 1080p channel overflows or loses every
  significant bit), and a 1080p sum overflows FP16 the same way;
- the uint8 ``frame``/``output``/``attention`` and float32 ``style``/``strength`` I/O unchanged;
- one extra output, ``check`` float32 ``[1]``: the FP32 sum of the generator head (its colour
  logits, ``[1,3,H,W]``, before the sigmoid or uint8 cast). It is finite exactly
  when no NaN/Inf reached the head; the runtime reads these 4 bytes per frame to refuse garbage
  (uint8 outputs cannot show a NaN: the cast turns it into an arbitrary byte, and an Inf squashed
  by the sigmoid looks like a plausible, washed-out pixel).

The pass is ours (about 100 lines) rather than onnxconverter-common's: it must keep the casts that
``CondInstanceNorm`` already puts around the norm, keep Resize's ``scales`` in FP32 as the ONNX
schema requires, and it avoids a dependency pinned to older onnx/protobuf releases.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from training.export import OPSET, FramePipeline
from training.generator import Generator

log = logging.getLogger(__name__)

BLOCK_OPS = frozenset({"InstanceNormalization", "ReduceSum", "ReduceMean"})
"""Ops computed in FP32: their float inputs are cast up and their outputs cast back to FP16."""

FP32_INPUTS = {"Resize": (1, 2)}
"""Inputs the ONNX schema requires to be float32 whatever the data type (roi, scales)."""

CHECK_OUTPUT = "check"

F32, F16 = TensorProto.FLOAT, TensorProto.FLOAT16


class CheckedFramePipeline(nn.Module):
    """``FramePipeline`` with its ``check`` output (see the module docstring)."""

    def __init__(self, pipe: FramePipeline) -> None:
        super().__init__()
        self.pipe = pipe

    def forward(self, frame: torch.Tensor, style: torch.Tensor, strength: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.pipe.run(frame, style, strength)


def export_checked_onnx(g: Generator, path: Path, num_styles: int, sample_hw: tuple[int, int] = (64, 96)) -> None:
    """FP32 ONNX of ``CheckedFramePipeline`` (same contract as ``export_onnx`` + ``check``)."""
    h, w = sample_hw
    frame = torch.zeros(1, h, w, 3, dtype=torch.uint8)
    style = torch.zeros(1, num_styles)
    style[0, 0] = 1.0
    dyn = {1: "height", 2: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            CheckedFramePipeline(FramePipeline(g)), (frame, style, torch.ones(1)), str(path), dynamo=False, opset_version=OPSET,
            input_names=["frame", "style", "strength"], output_names=["output", "attention", CHECK_OUTPUT],
            dynamic_axes={"frame": dyn, "output": dyn, "attention": dyn},
        )


def _float_tensors(model: onnx.ModelProto) -> set[str]:
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    g = inferred.graph
    names = {v.name for v in (*g.value_info, *g.input, *g.output) if v.type.tensor_type.elem_type == F32}
    names |= {i.name for i in g.initializer if i.data_type == F32}
    return names


def _keep_fp32(model: onnx.ModelProto, floats: set[str]) -> set[str]:
    """Constant/initializer tensors consumed only by FP32 inputs (blocked ops, Resize scales)."""
    fp32_uses: dict[str, bool] = {}
    for node in model.graph.node:
        keep_idx = FP32_INPUTS.get(node.op_type, ())
        for i, name in enumerate(node.input):
            if name in floats:
                fp32_uses[name] = fp32_uses.get(name, True) and (node.op_type in BLOCK_OPS or i in keep_idx)
    consts = {o for n in model.graph.node if n.op_type == "Constant" for o in n.output} | {i.name for i in model.graph.initializer}
    return {name for name, only in fp32_uses.items() if only and name in consts}


def _to_fp16_tensor(t: TensorProto) -> TensorProto:
    arr = numpy_helper.to_array(t).astype("float16")
    return numpy_helper.from_array(arr, t.name)


def convert_to_mixed_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """A new model: FP16 inside, FP32 for ``BLOCK_OPS``, I/O types unchanged. Checked."""
    floats = _float_tensors(model)
    keep = _keep_fp32(model, floats)
    g = model.graph
    out_names = {o.name for o in g.output}
    nodes: list[onnx.NodeProto] = []
    rename: dict[str, str] = {}  # float32 graph input → its FP16 cast
    for inp in g.input:
        if inp.type.tensor_type.elem_type == F32:
            rename[inp.name] = inp.name + "_fp16"
            nodes.append(helper.make_node("Cast", [inp.name], [rename[inp.name]], to=F16, name=f"{inp.name}_to_fp16"))
    for node in g.node:
        new = onnx.NodeProto()
        new.CopyFrom(node)
        del new.input[:]
        new.input.extend(rename.get(i, i) for i in node.input)
        blocked = node.op_type in BLOCK_OPS
        if blocked:
            for k, name in enumerate(new.input):
                if name in floats and name not in keep:
                    up = f"{name}_fp32_{node.name or len(nodes)}_{k}"
                    nodes.append(helper.make_node("Cast", [name], [up], to=F32, name=up))
                    new.input[k] = up
        _retype_node(new, node.output[0] in keep)
        post: list[onnx.NodeProto] = []
        if blocked:
            for k, name in enumerate(node.output):
                if name in floats and name not in out_names:
                    new.output[k] = name + "_fp32"
                    post.append(helper.make_node("Cast", [new.output[k]], [name], to=F16, name=name + "_to_fp16"))
        elif any(o in out_names and o in floats for o in node.output):
            for k, name in enumerate(node.output):
                if name in out_names and name in floats:
                    new.output[k] = name + "_fp16"
                    post.append(helper.make_node("Cast", [new.output[k]], [name], to=F32, name=name + "_to_fp32"))
        nodes.append(new)
        nodes.extend(post)
    inits = [i if (i.data_type != F32 or i.name in keep) else _to_fp16_tensor(i) for i in g.initializer]
    graph = helper.make_graph(nodes, g.name, list(g.input), list(g.output), inits)
    out = helper.make_model(graph, opset_imports=list(model.opset_import), producer_name="stylecast.fp16")
    out.ir_version = model.ir_version
    out = onnx.shape_inference.infer_shapes(out, strict_mode=True)
    onnx.checker.check_model(out, full_check=True)
    return out


def _retype_node(node: onnx.NodeProto, keep_fp32: bool) -> None:
    """Cast-to-float → cast-to-half; float constants → half (unless they must stay FP32)."""
    for attr in node.attribute:
        if node.op_type == "Cast" and attr.name == "to" and attr.i == F32:
            attr.i = F16
        elif node.op_type in ("Constant", "ConstantOfShape") and attr.name == "value" and attr.t.data_type == F32 and not keep_fp32:
            attr.t.CopyFrom(_to_fp16_tensor(attr.t))


def fp16_path(onnx_path: Path) -> Path:
    """``model.onnx`` → ``model.fp16.onnx``."""
    return onnx_path.with_suffix(".fp16.onnx")


def export_fp16(g: Generator, onnx_path: Path, num_styles: int) -> Path:
    """Write ``fp16_path(onnx_path)`` for generator ``g``; returns its path."""
    out = fp16_path(onnx_path)
    tmp = out.with_suffix(".fp32-src.onnx")
    try:
        export_checked_onnx(g, tmp, num_styles)
        converted = convert_to_mixed_fp16(onnx.load(str(tmp)))
    finally:
        tmp.unlink(missing_ok=True)
    onnx.save(converted, str(out))
    log.info("exported %s (mixed precision: FP16, instance norm in FP32)", out)
    return out
