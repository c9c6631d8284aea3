"""The feed-forward generator: an encoder–decoder that re-paints the frame, and its attention map.

One family, two tiers (``TIERS``): the *quality* model for a GPU box and the *fast* model for a
laptop CPU, distilled from it. Read top to bottom, as fast_neural_style's TransformerNet:

    frame [N,3,H,W] ─stem (stride-2 conv)→ c @ ½ ─down→ 2c @ ¼ ─B residual blocks→
    ─bilinear 2×, conv→ c @ ½ (+ stem skip) ─[bilinear 2×], conv over [features, frame]→ c/2 @ 1/r
    ─conv→ 3·r² channels ─depth-to-space→ RGB [N,3,H,W] through a sigmoid

``r`` is the fine stage's scale (``fine_scale``): 1, the quality tier, paints at full resolution;
2, the fast tier, paints at half resolution (a frame area-averaged 2×) and its last conv gives
each output pixel of a 2×2 block its own channel, which costs ~40 % less in ONNX Runtime on a
CPU at 640×360 with little loss of detail. ``padding`` is ``reflect`` (the quality tier) or
``zeros``: zero padding folds into the convolution, where a reflection is one more full-size
copy (a Pad node and two layout reorders per conv in ONNX Runtime; ~20 % of the fast model's
time on a CPU).

Every convolution is followed by conditional instance norm (one γ/β row per style, Dumoulin et
al.), so one network holds every style and a mix of styles interpolates them. The output is
decoded from features: the photo is one input of the last convolution (as a U-Net skip, so
edges stay where the photo's are), never added to the output. The attention map says where the
style changes the frame most, and is computed from exactly that (``change_map``): a learned head
that predicted it reached a correlation of 0.01–0.04 with the change for the Van Gogh styles,
whose strokes it could not see coming. It does not gate the output.

Contract (PyTorch side; ``training/export.py`` wraps it for uint8 BGR frames):
    x: [N, 3, H, W] float32 RGB in [0, 1], H and W multiples of ``SIZE_MULTIPLE``
    w: [N, S] float32 style weights (one-hot, or a non-negative mix)
    -> stylised [N, 3, H, W] in (0, 1), attention [N, 1, H, W] in (0, 1)
``blend`` gives the ``strength`` control: ``x + strength · (G(x) − x)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from training.layers import ConvNormAct, ResBlock

SIZE_MULTIPLE = 8
"""Frame height and width must be multiples of this (a stride-4 stem, then one stride-2 conv)."""

STEM_STRIDE = 2
"""The stem's stride: the decoder's features are at half resolution."""

ATTENTION_BOX = 5
"""Side (px) of the box ``change_map`` averages the change over: a map, not the strokes' texture."""

ATTENTION_CEILING = 3.0
"""``change_map`` saturates at this many times the frame's mean change."""

LEGACY_KEYS = ("attention.weight", "attention.bias")
"""Weights of the learned attention head that models up to 2026-12-07 carried; loading ignores them."""

FINE_SCALES = (1, 2)
PADDINGS = ("reflect", "zeros")


@dataclass(frozen=True)
class GeneratorSpec:
    """Architecture hyper-parameters; stored in checkpoints and the ONNX sidecar."""

    num_styles: int
    width: int = 32  # channels at ½ resolution; the body (¼) has 2× this
    blocks: int = 5  # residual blocks at ¼ resolution
    fine_scale: int = 1  # the fine stage at 1/fine_scale resolution (FINE_SCALES)
    padding: str = "reflect"  # every conv's padding (PADDINGS)
    tier: str = "quality"  # what the model is for (TIERS); recorded, not used by the layers

    def __post_init__(self) -> None:
        if self.fine_scale not in FINE_SCALES:
            raise ValueError(f"fine_scale must be one of {FINE_SCALES}, got {self.fine_scale}")
        if self.padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {self.padding!r}")
        if self.width < 4 or self.width % 2:
            raise ValueError(f"width must be even and ≥ 4, got {self.width}")
        if self.blocks < 0 or self.num_styles < 1:
            raise ValueError(f"need blocks ≥ 0 and num_styles ≥ 1, got {self.blocks}, {self.num_styles}")
        if self.tier not in TIERS:
            raise ValueError(f"tier must be one of {sorted(TIERS)}, got {self.tier!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(raw: dict[str, Any]) -> GeneratorSpec:
        """The spec a checkpoint or sidecar recorded; ValueError for one of another generator.
        Models from before ``fine_scale`` recorded the stem's stride as ``factor``: 2, which is
        this generator's (any other value is another generator)."""
        raw = dict(raw)
        if raw.get("factor", STEM_STRIDE) != STEM_STRIDE:
            raise ValueError(f"generator spec has stem stride {raw['factor']}; this generator's is {STEM_STRIDE} (a model from an older stylecast?)")
        raw.pop("factor", None)
        known = set(GeneratorSpec.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"generator spec has fields this generator does not know: {', '.join(unknown)} (a model from an older stylecast?)")
        return GeneratorSpec(**raw)


TIERS: dict[str, dict[str, Any]] = {
    "quality": {"width": 32, "blocks": 5, "fine_scale": 1, "padding": "reflect"},
    "fast": {"width": 16, "blocks": 3, "fine_scale": 2, "padding": "zeros"},
}
"""Each tier's architecture (``GeneratorSpec`` fields). Cost: ``stylecast`` docs/MODEL.md."""


def tier_spec(tier: str, num_styles: int) -> GeneratorSpec:
    """The ``GeneratorSpec`` of a named tier (``TIERS``)."""
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}; expected one of {sorted(TIERS)}")
    return GeneratorSpec(num_styles=num_styles, tier=tier, **TIERS[tier])


def upsample2(h: torch.Tensor) -> torch.Tensor:
    """Bilinear 2× (``align_corners=False``): [N, C, H, W] → [N, C, 2H, 2W]."""
    return F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False)


class Generator(nn.Module):
    """Conditional-instance-norm encoder–decoder; one network holds ``spec.num_styles`` styles."""

    def __init__(self, spec: GeneratorSpec) -> None:
        super().__init__()
        self.spec = spec
        c, s, r, pad = spec.width, spec.num_styles, spec.fine_scale, spec.padding
        # A stride-2 conv over 4×4 patches: the space-to-depth and first conv in one op.
        self.stem = ConvNormAct(3, c, 2 * STEM_STRIDE, STEM_STRIDE, s, pad=STEM_STRIDE // 2, padding=pad)
        self.down = ConvNormAct(c, 2 * c, 3, 2, s, padding=pad)
        self.res = nn.ModuleList([ResBlock(2 * c, s, padding=pad) for _ in range(spec.blocks)])
        self.up = ConvNormAct(2 * c, c, 3, 1, s, padding=pad)
        self.fine = ConvNormAct(c + 3, c // 2, 3, 1, s, padding=pad)  # at 1/r resolution, sees the frame there
        self.to_rgb = nn.Conv2d(c // 2, 3 * r * r, 3, 1, 1, padding_mode=pad)

    def frame_at(self, x: torch.Tensor) -> torch.Tensor:
        """The frame at the fine stage's resolution (1/r): itself, or 2× area-averaged."""
        return x if self.spec.fine_scale == 1 else F.avg_pool2d(x, 2)

    def features(self, x: torch.Tensor, w: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every stage's activation, in data-flow order (explain tools, FP16 range checks).
        ``rgb_logits`` [N,3,H,W] is the head before its sigmoid."""
        out: dict[str, torch.Tensor] = {}
        skip = out["stem"] = self.stem(x, w)
        h = out["down"] = self.down(skip, w)
        for i, block in enumerate(self.res):
            h = out[f"res{i}"] = block(h, w)
        h = out["up"] = self.up(upsample2(h), w) + skip
        up = upsample2(h) if self.spec.fine_scale == 1 else h
        h = out["fine"] = self.fine(torch.cat([up, self.frame_at(x)], dim=1), w)
        rgb = self.to_rgb(h)
        out["rgb_logits"] = F.pixel_shuffle(rgb, self.spec.fine_scale) if self.spec.fine_scale > 1 else rgb
        return out

    def paint(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """The stylised frame [N,3,H,W] in (0, 1): what training optimises."""
        return torch.sigmoid(self.features(x, w)["rgb_logits"])

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.paint(x, w)
        return y, change_map(y, x)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        """``nn.Module.load_state_dict``, ignoring the ``LEGACY_KEYS`` of older models."""
        return super().load_state_dict({k: v for k, v in state_dict.items() if k not in LEGACY_KEYS}, strict=strict, assign=assign)


def change_map(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The attention map: where the painting ``y`` differs from the photo ``x`` most (both
    [N,3,H,W] in [0, 1]). The channel-mean |y − x|, averaged over an ``ATTENTION_BOX`` box
    (at the border over the pixels inside the frame), over ``ATTENTION_CEILING`` times its
    frame's mean, clamped: [N,1,H,W] in [0, 1]. A frame the style leaves alone maps to 0."""
    d = F.avg_pool2d((y - x).abs().mean(1, keepdim=True), ATTENTION_BOX, stride=1, padding=ATTENTION_BOX // 2, count_include_pad=False)
    return (d / (ATTENTION_CEILING * d.mean(dim=(2, 3), keepdim=True).clamp_min(1e-4))).clamp(0.0, 1.0)


def init_weights(g: Generator, src: Generator) -> None:
    """Copy ``src``'s weights into ``g``; RuntimeError on any missing, unexpected or differently
    shaped tensor (another tier or width)."""
    g.load_state_dict(src.state_dict(), strict=True)


def blend(x: torch.Tensor, stylised: torch.Tensor, strength: torch.Tensor | float) -> torch.Tensor:
    """The strength control: ``x + strength · (G(x) − x)``; [N,3,H,W] twice, strength a scalar or
    broadcastable tensor. 1 is the painting, 0 the photo."""
    return x + strength * (stylised - x)


def count_params(g: nn.Module) -> int:
    return sum(p.numel() for p in g.parameters())
