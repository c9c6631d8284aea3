"""The fast feed-forward generator with an attention head.

Most of the work runs at ¼ and ⅛ resolution: the frame enters through a 4× space-to-depth
(pixel unshuffle), residual blocks run at ⅛, and a light full-resolution head (one 3×3 conv
over bilinearly upsampled features and the input) gives a per-pixel colour delta and attention
logit; with ``GeneratorSpec.head_lanczos`` (the bundled model) that upsampling is Lanczos-3, of a
1×1 conv's 4 outputs. A 4× pixel-shuffle output was tried first and left a visible 4×4 dot pattern. Full-resolution convolutions are what make a
Johnson TransformerNet slow on a CPU; this network has none.

Contract (PyTorch side, see ``training/export.py`` for the uint8 ONNX wrapper):
    x: [N, 3, H, W] float32 RGB in [0, 1], H and W multiples of ``SIZE_MULTIPLE``
    w: [N, S] float32 style weights
    -> stylised [N, 3, H, W] in (0, 1), attention [N, 1, H, W] in (0, 1)
The blended output is ``x + strength * A * (G(x) - x)`` (``blend``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from training.layers import Blur2d, ConvNormAct, ResBlock, lanczos_upsample

HEAD_CHANNELS = 12

HEAD_BLUR_KERNELS = {3: (1.0, 2.0, 1.0), 5: (1.0, 4.0, 6.0, 4.0, 1.0)}
"""Binomial taps of the ¼-res head blur (``GeneratorSpec.head_blur_taps``)."""

IN_BLUR_TAPS = (5, 9, 13, 17)
"""Allowed sizes of the frame's binomial blur before the 4× space-to-depth
(``GeneratorSpec.in_blur_taps``); n taps have σ = √(n − 1) / 2 px: 1, 1.41, 1.73, 2."""


def binomial_taps(n: int) -> tuple[float, ...]:
    """Row n − 1 of Pascal's triangle (unnormalised): the 1-D binomial low-pass of n taps."""
    return tuple(float(math.comb(n - 1, k)) for k in range(n))

SIZE_MULTIPLE = 8
"""Frame height and width must be multiples of this (4× unshuffle, then one stride-2 conv)."""


@dataclass(frozen=True)
class GeneratorSpec:
    """Architecture hyper-parameters; stored in checkpoints and the ONNX sidecar."""

    num_styles: int
    width: int = 32  # channels at ¼ resolution; ⅛ resolution uses 2× this
    blocks: int = 3  # residual blocks at ⅛ resolution
    # Anti-aliased resolution changes: a 5×5 binomial blur (σ = 1 px) of the frame before the 4×
    # space-to-depth, a 3×3 one before the stride-2 conv, and bilinear (not nearest) 2× upsampling
    # after the ⅛-res blocks. Without them a camera move of a fraction of a cell (2 px at ¼ res,
    # 4 px at ⅛) changes the style pattern itself: that was most of the first models' flicker.
    # The head still sees the unblurred frame, so edges stay sharp.
    antialias: bool = False
    # Taps of that frame blur (``IN_BLUR_TAPS``; 5: σ = 1 px). A 4× subsampling passes whatever
    # survives the blur above ⅛ cycle/px as aliases that change with the camera's sub-cell phase;
    # σ = 2 px (17 taps) leaves 30 % at ⅛ and under 1 % at ¼, where σ = 1 px leaves 73 % and 29 %.
    # Only the body sees the blurred frame. No weights: a trained model can be fine-tuned with it.
    in_blur_taps: int = 5
    # A 3×3 binomial blur of the 12 ¼-res head channels before their bilinear 4× upsampling:
    # bilinear interpolation follows a sub-cell (1–3 px) move only for features that are smooth
    # at ¼ res, so this trades a little stroke sharpness for stability.
    smooth_head: bool = False
    # Taps of that blur: 3 (σ ≈ 0.7 cells, 2.8 px) or 5 (σ = 1 cell, 4 px): steadier still, softer strokes.
    head_blur_taps: int = 3
    # The ⅛-res ReLUs (after the stride-2 conv and inside each residual block) as
    # ``layers.filtered_relu``: upsampled 2× before the ReLU and low-passed back, so the harmonics a
    # ReLU makes do not alias onto the 8 px grid. Same parameters as without it (a trained
    # model can be fine-tuned with it switched on). Each of the 1 + ``blocks`` ReLUs becomes a
    # Resize, a Pad and two depthwise convs.
    alias_free: bool = False
    # The same for the two ¼-res ReLUs (after the 4× space-to-depth conv and the decoder's), whose
    # grid is 4 px: with only the ⅛-res ones filtered, 1–3 px moves still change the texture.
    alias_free_quarter: bool = False
    # A 3×3 binomial blur of the ⅛-res features before their bilinear 2× upsampling. The residual
    # blocks end in a linear conv, which can leave a checkerboard at the ⅛ grid's Nyquist rate
    # (visible in `stylecast explain`'s feature panels); upsampled, that renders differently at
    # each sub-cell phase of the scene. The blur's response there is zero. No weights.
    smooth_body: bool = False
    # Channels of a decoder stage at ½ resolution (0: none). The ¼-res head draws strokes on a 4 px
    # grid, and a stroke narrower than ~8 px has energy above that grid's Nyquist rate, which
    # bilinear upsampling renders differently at each sub-cell phase of the scene: flicker when
    # the camera moves 1–3 px. This stage (bilinear 2× of the decoder's features → 3×3
    # ConvNormAct → 3×3 conv to the head's 4 outputs → bilinear 2×) can draw them on a 2 px grid,
    # where what aliases is at a 4 px period, which a σ = 1.5 px blur (the warp error's, and
    # roughly an eye's at viewing distance) cuts to 6 %. Its output is added to the head's; its
    # last conv starts at zero, so a trained model fine-tuned with it switched on starts as it was.
    # Measured (docs/QUALITY.md, variant HRS): retrained with it, the losses filled it with finer
    # texture, which flickered more, not with steadier strokes; no shipped model uses it.
    half_res: int = 0
    # Hidden channels of a full-resolution pointwise stroke head (0: none). Everything the head
    # draws is otherwise a linear function of features on the ¼-res grid, so a sharp stroke has to
    # be sharp there, above that grid's Nyquist rate, where it flickers under 1–3 px moves. This
    # head makes sharp edges where the grid cannot: a ReLU of smooth fields (the ¼-res head
    # channels, bilinearly upsampled) plus the frame's own pixel, 1×1 convs only, so its output
    # moves with the scene to the sub-pixel as its inputs do (the alias-free recipe: make high
    # frequencies at the output's sampling rate). ``stroke_z`` (¼ res, 12 → k) runs before the
    # upsampling, which it commutes with; ``stroke_x`` (3 → k) sees the frame; ``stroke_out``
    # (k → the head's 4 outputs) starts at zero, so a trained model grows it as a no-op.
    # Measured (docs/QUALITY.md, variant S8, k = 8): 1.23× the time; fine-tuned in, the losses
    # drew finer texture with it, which flickered 3–9 % more on the paintings; no shipped model uses it.
    stroke_mlp: int = 0
    # The head's 4× upsampling as Lanczos-3 (``layers.lanczos_upsample``) instead of bilinear.
    # Bilinear renders a ¼-res stroke with less contrast at half a cell's phase than on the grid
    # (cos(πf) of a sinusoid of f cycles/cell), so strokes pulse as the camera moves 1–3 px. With
    # it the head's conv taps over the ¼-res channels act through their sum, a 1×1 conv at ¼ res
    # whose 4 outputs are upsampled (``lanczos_head``); the taps over the frame stay a 3×3 conv.
    # Same parameters: a trained model can be fine-tuned with it switched on.
    head_lanczos: bool = False

    def __post_init__(self) -> None:
        if self.head_blur_taps not in HEAD_BLUR_KERNELS:
            raise ValueError(f"head_blur_taps must be one of {sorted(HEAD_BLUR_KERNELS)}, got {self.head_blur_taps}")
        if self.in_blur_taps not in IN_BLUR_TAPS:
            raise ValueError(f"in_blur_taps must be one of {list(IN_BLUR_TAPS)}, got {self.in_blur_taps}")
        if self.half_res < 0:
            raise ValueError(f"half_res is a channel count (0 for none), got {self.half_res}")
        if self.stroke_mlp < 0:
            raise ValueError(f"stroke_mlp is a channel count (0 for none), got {self.stroke_mlp}")

    def to_dict(self) -> dict[str, int | bool]:
        return asdict(self)


LOGIT_EPS = 1e-3
"""Frames are clamped to [eps, 1 − eps] before the logit (0 and 1 have none)."""


def _logit(x: torch.Tensor, eps: float = LOGIT_EPS) -> torch.Tensor:
    x = x.clamp(eps, 1.0 - eps)
    return torch.log(x) - torch.log1p(-x)


def upsample2(h: torch.Tensor) -> torch.Tensor:
    """Bilinear 2× (``align_corners=False``): [N, C, H, W] → [N, C, 2H, 2W]."""
    return F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False)


def upsample4(h: torch.Tensor) -> torch.Tensor:
    """Bilinear 4× (``align_corners=False``): [N, C, H, W] → [N, C, 4H, 4W]."""
    return F.interpolate(h, scale_factor=4.0, mode="bilinear", align_corners=False)


def stroke_head(z: torch.Tensor, x: torch.Tensor, z_conv: nn.Conv2d, x_conv: nn.Conv2d, out_conv: nn.Conv2d) -> torch.Tensor:
    """``GeneratorSpec.stroke_mlp``'s head: ``out(relu(upsample4(z_conv(z)) + x_conv(x)))``.

    z: [N, 12, h, w] ¼-res head channels (after their blur); x: [N, 3, 4h, 4w] the frame in
    [0, 1] (the channel order ``x_conv`` was made for); the three convs are 1×1. Returns
    [N, 4, 4h, 4w], added to the head's colour deltas and attention logit. The 1×1 ``z_conv``
    runs at ¼ res: it commutes with bilinear upsampling, whose weights sum to 1."""
    return out_conv(F.relu(upsample4(z_conv(z)) + x_conv(x)))


def lanczos_head(z: torch.Tensor, x: torch.Tensor, head: nn.Conv2d) -> torch.Tensor:
    """``GeneratorSpec.head_lanczos``'s head: z [N, 12, h, w] ¼-res head channels (after their
    blur), x [N, 3, 4h, 4w] the frame in [0, 1] in ``head``'s channel order; ``head`` the [4, 15, 3, 3]
    head conv. Returns [N, 4, 4h, 4w]: Lanczos-4×(1×1 conv of z by the sum of ``head``'s z taps)
    + ``head``'s 3×3 taps over x (reflection-padded) + its bias."""
    wz = head.weight[:, :HEAD_CHANNELS].sum((2, 3), keepdim=True)
    return lanczos_upsample(F.conv2d(z, wz), 4) + F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), head.weight[:, HEAD_CHANNELS:], head.bias)


class Generator(nn.Module):
    """Conditional-instance-norm generator; one network holds ``spec.num_styles`` styles."""

    def __init__(self, spec: GeneratorSpec) -> None:
        super().__init__()
        self.spec = spec
        c1, c2, s = spec.width, spec.width * 2, spec.num_styles
        self.enc1 = ConvNormAct(3 * 16, c1, 3, 1, s, filtered=spec.alias_free_quarter)  # ¼ res, after 4× unshuffle
        self.in_blur = Blur2d(3, binomial_taps(spec.in_blur_taps)) if spec.antialias else nn.Identity()
        self.blur = Blur2d(c1) if spec.antialias else nn.Identity()
        self.body_blur = Blur2d(c2) if spec.smooth_body else nn.Identity()
        self.enc2 = ConvNormAct(c1, c2, 3, 2, s, filtered=spec.alias_free)  # ⅛ res
        self.res = nn.ModuleList([ResBlock(c2, s, filtered=spec.alias_free) for _ in range(spec.blocks)])
        self.dec1 = ConvNormAct(c2, c1, 3, 1, s, filtered=spec.alias_free_quarter)  # ¼ res after nearest 2× upsample
        self.squeeze = nn.Conv2d(c1, HEAD_CHANNELS, 1)  # ¼ res, few channels to upsample
        self.head_blur = Blur2d(HEAD_CHANNELS, HEAD_BLUR_KERNELS[spec.head_blur_taps]) if spec.smooth_head else nn.Identity()
        # The only full-resolution layer: sees the upsampled features and the input itself, so
        # it can keep edges sharp; 3 colour deltas + 1 attention logit.
        self.head = nn.Conv2d(HEAD_CHANNELS + 3, 4, 3, 1, 1, padding_mode="reflect")
        nn.init.normal_(self.head.weight, std=1e-3)
        with torch.no_grad():
            self.head.bias.zero_()
            self.head.bias[3] = 1.0  # attention starts at sigmoid(1) ≈ 0.73
        if spec.half_res:
            self.half_in = ConvNormAct(c1, spec.half_res, 3, 1, s)
            self.half_out = nn.Conv2d(spec.half_res, 4, 3, 1, 1, padding_mode="reflect")
            nn.init.zeros_(self.half_out.weight)
            nn.init.zeros_(self.half_out.bias)
        if spec.stroke_mlp:
            self.stroke_z = nn.Conv2d(HEAD_CHANNELS, spec.stroke_mlp, 1)
            self.stroke_x = nn.Conv2d(3, spec.stroke_mlp, 1, bias=False)
            self.stroke_out = nn.Conv2d(spec.stroke_mlp, 4, 1)
            nn.init.zeros_(self.stroke_out.weight)
            nn.init.zeros_(self.stroke_out.bias)

    def features(self, x: torch.Tensor, w: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every stage's activation, for the interpretability tools and FP16 range checks."""
        out: dict[str, torch.Tensor] = {}
        h = self.enc1(F.pixel_unshuffle(self.in_blur(x), 4), w)
        out["enc1"] = h
        skip = h
        h = self.enc2(self.blur(h), w)
        out["enc2"] = h
        for i, block in enumerate(self.res):
            h = block(h, w)
            out[f"res{i}"] = h
        h = self.dec1(self.upsample_half(h), w) + skip
        out["dec1"] = h
        z = self.head_blur(self.squeeze(h))
        if self.spec.head_lanczos:
            head = lanczos_head(z, x, self.head)
        else:
            head = self.head(torch.cat([upsample4(z), x], dim=1))
        if self.spec.stroke_mlp:
            head = head + stroke_head(z, x, self.stroke_z, self.stroke_x, self.stroke_out)
        if self.spec.half_res:
            out["half"] = self.half_in(upsample2(h), w)
            head = head + upsample2(self.half_out(out["half"]))
        out["head"] = head
        return out

    def upsample_half(self, h: torch.Tensor) -> torch.Tensor:
        """⅛-res features → ¼ res: bilinear when ``spec.antialias``, else nearest; blurred first
        when ``spec.smooth_body``."""
        h = self.body_blur(h)
        if self.spec.antialias:
            return upsample2(h)
        return F.interpolate(h, scale_factor=2.0, mode="nearest")

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        head = self.features(x, w)["head"]
        stylised = torch.sigmoid(_logit(x) + head[:, :3])
        attention = torch.sigmoid(head[:, 3:4])
        return stylised, attention


GROWN_PREFIXES = ("half_in.", "half_out.", "stroke_z.", "stroke_x.", "stroke_out.")
"""Parameters of stages a trained generator may lack and be fine-tuned with: they start as a
no-op (``half_out`` and ``stroke_out`` at zero), so the function is the trained one's until training moves them."""


def init_weights(g: Generator, src: Generator) -> None:
    """Copy ``src``'s weights into ``g`` (same layers), allowing ``g`` stages in
    ``GROWN_PREFIXES`` that ``src`` lacks; those keep their no-op start. RuntimeError on any
    other missing, unexpected or differently shaped tensor."""
    missing, unexpected = g.load_state_dict(src.state_dict(), strict=False)
    lacking = [k for k in missing if not k.startswith(GROWN_PREFIXES)]
    if lacking or unexpected:
        raise RuntimeError(f"missing {lacking}, unexpected {unexpected}")


def blend(x: torch.Tensor, stylised: torch.Tensor, attention: torch.Tensor, strength: torch.Tensor | float) -> torch.Tensor:
    """``x + strength · A · (G(x) − x)``; shapes [N,3,H,W], [N,3,H,W], [N,1,H,W]; strength scalar."""
    return x + strength * attention * (stylised - x)
