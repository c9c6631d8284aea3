"""ONNX export with pre/post-processing folded into the graph, plus the sidecar JSON.

Graph contract (what ``engines`` relies on; the sidecar repeats it):
    inputs   frame    uint8   [1, H, W, 3]  BGR, H and W dynamic, multiples of 8
             style    float32 [1, S]        style weights (one-hot, or a mix)
             strength float32 [1]           0 = input unchanged, 1 = full style
    outputs  output    uint8  [1, H, W, 3]  BGR stylised frame
             attention uint8  [1, H, W, 1]  where the style changes the frame most, 0–255 (generator.change_map)
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engines.cache import sha256_file
from training.generator import SIZE_MULTIPLE, Generator, GeneratorSpec, blend, change_map

log = logging.getLogger(__name__)

OPSET = 17
MODEL_FORMAT = "stylecast-model"
MODEL_FORMAT_VERSION = 1


class ExportError(RuntimeError):
    """The checkpoint cannot be exported."""


def to_u8_nhwc(t: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] float in [0, 1] → [N, H, W, C] uint8 (round, clamp, permute, cast, in the
    graph). The cast comes last: in TensorRT only a Cast may write a uint8 tensor, not even a
    Transpose may move one (NVIDIA/TensorRT#3985), so the graph output must leave a Cast."""
    return (t * 255.0).round().clamp(0.0, 255.0).permute(0, 2, 3, 1).to(torch.uint8)


class FramePipeline(nn.Module):
    """uint8 BGR NHWC in → generator → uint8 BGR NHWC + attention out. Everything in-graph."""

    def __init__(self, g: Generator) -> None:
        super().__init__()
        self.g = g

    def run(self, frame: torch.Tensor, style: torch.Tensor, strength: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The graph's outputs plus ``check``: the FP32 sum of the generator's heads before their
        sigmoids ([1]; finite exactly when no NaN/Inf reached them, ``training.fp16``)."""
        # BGR NHWC uint8 → RGB NCHW [0,1]; cast first, since TensorRT's only layer that reads a
        # uint8 tensor is a Cast (see ``to_u8_nhwc``)
        x = frame.float().permute(0, 3, 1, 2).flip(1) / 255.0
        logits = self.g.features(x, style)["rgb_logits"]
        painted = torch.sigmoid(logits)
        y = blend(x, painted, strength.reshape(1, 1, 1, 1))
        check = logits.flatten().sum(0, keepdim=True)
        return to_u8_nhwc(y.flip(1)), to_u8_nhwc(change_map(painted, x)), check

    def forward(self, frame: torch.Tensor, style: torch.Tensor, strength: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, att, _ = self.run(frame, style, strength)
        return out, att


class BaselinePipeline(nn.Module):
    """The same uint8 contract around any (RGB, style) → (stylised, attention) module: the
    TransformerNet speed baseline."""

    def __init__(self, g: nn.Module) -> None:
        super().__init__()
        self.g = g

    def forward(self, frame: torch.Tensor, style: torch.Tensor, strength: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = frame.float().permute(0, 3, 1, 2).flip(1) / 255.0
        g, a = self.g(x, style)
        return to_u8_nhwc(blend(x, g, strength.reshape(1, 1, 1, 1)).flip(1)), to_u8_nhwc(a)


def load_generator(checkpoint: Path, use_ema: bool = True) -> tuple[Generator, list[str], dict[str, Any]]:
    """Generator (eval, CPU) from a training checkpoint or an exported ``*.generator.pt`` (which
    holds one set of weights, the EMA ones when they were exported), with its style names and config."""
    try:
        ck = torch.load(checkpoint, map_location="cpu", weights_only=False)
        g = Generator(GeneratorSpec.from_dict(ck["spec"]))
        g.load_state_dict(ck["generator"] if "generator" in ck else ck["g_ema" if use_ema else "g"])
    except (OSError, EOFError, KeyError, TypeError, ValueError, RuntimeError, pickle.UnpicklingError) as e:  # not a checkpoint
        raise ExportError(f"cannot load generator from {checkpoint}: {e}") from e
    return g.eval(), list(ck["styles"]), dict(ck.get("config", {}))


def frame_pipeline(g: nn.Module) -> nn.Module:
    """What export traces: ``FramePipeline`` for our ``Generator``, ``BaselinePipeline`` for any other."""
    return FramePipeline(g) if isinstance(g, Generator) else BaselinePipeline(g)


def export_onnx(g: nn.Module, path: Path, num_styles: int, sample_hw: tuple[int, int] = (64, 96)) -> None:
    """Trace ``frame_pipeline(g)`` to ONNX at ``path`` with dynamic H, W (TorchScript exporter).

    ``g`` maps (RGB [N,3,H,W] in [0,1], style [N,S]) → (stylised, attention), like ``Generator``."""
    h, w = sample_hw
    frame = torch.zeros(1, h, w, 3, dtype=torch.uint8)
    style = torch.zeros(1, num_styles)
    style[0, 0] = 1.0
    strength = torch.ones(1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            frame_pipeline(g.eval()), (frame, style, strength), str(path), dynamo=False, opset_version=OPSET,
            input_names=["frame", "style", "strength"], output_names=["output", "attention"],
            dynamic_axes={"frame": {1: "height", 2: "width"}, "output": {1: "height", 2: "width"}, "attention": {1: "height", 2: "width"}},
        )


def sidecar(onnx_path: Path, arch: dict[str, Any], styles: list[str], extra: dict[str, Any]) -> dict[str, Any]:
    """The model's metadata; written beside the ONNX as ``<name>.json``."""
    return {
        "format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION,
        "onnx": onnx_path.name, "onnx_sha256": sha256_file(onnx_path),
        "styles": styles, "size_multiple": SIZE_MULTIPLE, "generator": arch,
        "inputs": {"frame": ["uint8", [1, "H", "W", 3], "BGR"], "style": ["float32", [1, len(styles)]], "strength": ["float32", [1]]},
        "outputs": {"output": ["uint8", [1, "H", "W", 3], "BGR"], "attention": ["uint8", [1, "H", "W", 1]]},
        **extra,
    }


def generator_weights_path(onnx_path: Path) -> Path:
    """``model.onnx`` → ``model.generator.pt``: the PyTorch weights the explain tool needs."""
    return onnx_path.with_suffix(".generator.pt")


def save_generator(g: Generator, styles: list[str], path: Path, config: dict[str, Any] | None = None) -> None:
    """Inference-only weights (spec, styles, state dict, training config): ~1 MB, no optimiser or
    discriminator. ``stylecast export`` takes this file as well as a checkpoint."""
    torch.save({"spec": g.spec.to_dict(), "styles": styles, "generator": g.state_dict(), "config": config or {}}, path)


def export_checkpoint(checkpoint: Path, out: Path, use_ema: bool = True) -> Path:
    """Write ``out`` (.onnx), its sidecar ``out.with_suffix('.json')``, the generator weights
    ``*.generator.pt`` and the mixed-precision ``*.fp16.onnx`` (TensorRT's source); returns the ONNX path.
    OutputError (exit 2) first if ``out`` is not a .onnx path, or it or its sidecar is ``checkpoint``
    (``export ckpt.pt ckpt.pt`` overwrote the checkpoint with the ONNX)."""
    from streamer.outputs import check_output
    from training.fp16 import export_fp16, fp16_path  # the mixed-precision source of TensorRT FP16 engines

    check_output(out, {".onnx"}, "output", [checkpoint])
    check_output(out.with_suffix(".json"), {".json"}, "output's sidecar", [checkpoint])
    g, styles, config = load_generator(checkpoint, use_ema)
    out.parent.mkdir(parents=True, exist_ok=True)
    # The four files are written in a staging folder beside ``out`` and moved in together at the
    # end: a failure part-way (the FP16 pass, a full disk) leaves an existing model as it was, not
    # a new .onnx beside an old sidecar or an old .fp16.onnx that TensorRT would build from.
    staging = Path(tempfile.mkdtemp(prefix=f".{out.stem}.export-", dir=out.parent))
    try:
        tmp = staging / out.name
        export_onnx(g, tmp, len(styles))
        meta = sidecar(tmp, g.spec.to_dict(), styles, {"tier": g.spec.tier, "trained_steps": config.get("steps"), "training_config": config})
        tmp.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
        save_generator(g, styles, generator_weights_path(tmp), config)  # for `stylecast explain`
        export_fp16(g, tmp, len(styles))
        for f in (generator_weights_path(tmp), fp16_path(tmp), tmp, tmp.with_suffix(".json")):  # the sidecar last: it names the ONNX
            os.replace(f, out.parent / f.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("exported %s (%d styles: %s)", out, len(styles), ", ".join(styles))
    return out
