"""The speed baseline: Johnson et al.'s TransformerNet (pytorch/examples fast_neural_style,
32-64-128 channels, 5 residual blocks, 9×9 full-resolution convs), re-implemented here and
exported through the same uint8 frame pipeline as our generator, so both are timed alike.

It is never trained here: only its architecture (and so its cost) matters for the comparison.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


class _Conv(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(k // 2)
        self.conv = nn.Conv2d(cin, cout, k, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pad(x))


class _Res(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.c1, self.n1 = _Conv(c, c, 3, 1), nn.InstanceNorm2d(c, affine=True)
        self.c2, self.n2 = _Conv(c, c, 3, 1), nn.InstanceNorm2d(c, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.n2(self.c2(F.relu(self.n1(self.c1(x)))))


class _UpConv(nn.Module):
    """Nearest upsample + conv (instead of a transposed conv), as in fast_neural_style."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = _Conv(cin, cout, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class TransformerNet(nn.Module):
    """RGB [N,3,H,W] in [0,1] → RGB [N,3,H,W] (H, W multiples of 4)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.ModuleList([
            _Conv(3, 32, 9, 1), nn.InstanceNorm2d(32, affine=True), nn.ReLU(),
            _Conv(32, 64, 3, 2), nn.InstanceNorm2d(64, affine=True), nn.ReLU(),
            _Conv(64, 128, 3, 2), nn.InstanceNorm2d(128, affine=True), nn.ReLU(),
            *[_Res(128) for _ in range(5)],
            _UpConv(128, 64), nn.InstanceNorm2d(64, affine=True), nn.ReLU(),
            _UpConv(64, 32), nn.InstanceNorm2d(32, affine=True), nn.ReLU(),
            _Conv(32, 3, 9, 1),
        ])

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Same signature as ``Generator``: (stylised, attention). One style: the attention is the
        style weight everywhere (so the graph keeps its ``style`` input, as ours does)."""
        h = x * 255.0
        for m in self.body:
            h = m(h)
        y = (h / 255.0).clamp(0, 1)
        return y, torch.ones_like(x[:, :1]) * w.sum(dim=1).view(-1, 1, 1, 1)


def count_macs(model: nn.Module, *inputs: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass on ``inputs``: every convolution and matrix product
    that runs, ``Conv2d`` modules and functional ``F.conv2d`` calls alike (the fixed blurs, the
    filtered ReLUs' low-pass and the Lanczos head are functional). Counted by PyTorch's
    ``FlopCounterMode`` (2 FLOPs per MAC); norms, activations and resampling are left out."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*inputs)
    return int(counter.get_total_flops()) // 2


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def export_baseline(path: Path) -> Path:
    """TransformerNet (random weights) as ``path`` (.onnx) + sidecar, same graph contract as ours."""
    import json

    from training.export import export_onnx, sidecar

    model = TransformerNet().eval()
    export_onnx(model, path, num_styles=1)
    meta = sidecar(path, {"arch": "TransformerNet", "params": count_params(model)}, ["baseline"], {"note": "untrained; speed baseline only"})
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return path
