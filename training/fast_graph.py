"""The generator re-written for inference: the same function with fewer full-resolution passes.

Export-time only (training and the analysis tools use ``Generator``). ONNX Runtime's profiler on
the bundled model at 640×360 (docs/BENCHMARKS.md) put most of the frame time outside the ¼/⅛-res
convolutions: the 6-D pixel-unshuffle transpose, the RGB↔BGR flips, and the one full-resolution
3×3 head conv over 15 bilinearly upsampled channels (with its reflection pad and concat). Three
rewrites remove them; each is exact (float rounding aside), which the export test checks against
the straightforward ``FramePipeline``:

1. **BGR in, BGR out.** The frame's channel order is folded into the weights: the first conv's
   input channels, the head's input channels that see the frame, and the head's colour rows.
2. **Unshuffle + conv → strided conv.** A 3×3 conv over the 4× pixel-unshuffled frame (48
   channels at ¼ res, reflection-padded by one block) is a 12×12 stride-4 conv over the frame
   padded with whole 4×4 blocks (block row −1 is block row 1, as reflection of the unshuffled
   tensor makes it). No transpose of the full-resolution frame into 48 channels.
3. **Upsample + conv → conv + depth-to-space.** A 3×3 conv over bilinearly 4×-upsampled features
   only ever mixes ¼-res neighbours at offsets −1…1, with weights that depend on the output
   pixel's phase (its position mod 4). So it is a 3×3 conv at ¼ res to 16 phases × 4 channels
   followed by depth-to-space. The weights are read off by pushing impulses through the original
   upsample + conv. Borders match too: bilinear's clamp at the edge is a replicate pad at ¼ res,
   and the full-resolution reflection pad lands on the same values (the two outer rows of the
   upsampled map both equal the edge row of the ¼-res map).
   With ``GeneratorSpec.head_lanczos`` the z taps act through their sum: a 1×1 conv at ¼ res to
   the 4 head outputs, then the Lanczos-3 upsampling as one grouped 7×7 conv to 16 phases each
   and depth-to-space (``layers.lanczos_upsample``, the same ops).
The part of the head conv that sees the frame itself stays one small 3-channel full-res conv.
The ½-res stage (``GeneratorSpec.half_res``), when there is one, is kept as it is: a conv at ½ res
to 4 channels and one bilinear 2× of those, added to the head; so is the stroke head
(``GeneratorSpec.stroke_mlp``: three 1×1 convs, one bilinear 4×), with its frame-facing input
channels and its output rows in BGR order.
4. **Style affine inside the norm** (optional, FP32 graph only): conditional instance norm's
   mixed γ/β become ``InstanceNormalization``'s scale and bias.
5. **Colour delta without logs.** ``sigmoid(logit(x) + d)`` is ``x / (x + (1 − x)·e^(−d))``: the
   two full-resolution logs were 2.2 of ~39 ms in the profile of the anti-aliased model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training.export import to_u8_nhwc
from training.generator import HEAD_CHANNELS, LOGIT_EPS, Generator, blend, stroke_head, upsample2
from training.layers import LANCZOS_LOBES, CondInstanceNorm, ConvNormAct, lanczos_phase_weight, replicate_pad

BLOCK = 4
"""The generator's space-to-depth factor (``pixel_unshuffle(x, 4)``)."""

_BGR = [2, 1, 0]
"""RGB index of each BGR channel (and the reverse: the permutation is its own inverse)."""

_HEAD_ROWS = [2, 1, 0, 3]
"""Head output rows in BGR order: blue/green/red colour deltas, then the attention logit."""


def strided_enc1_weight(w: torch.Tensor) -> torch.Tensor:
    """[C, 48, 3, 3] weights over the RGB pixel-unshuffled frame → [C, 3, 12, 12] stride-4
    weights over the BGR frame. Unshuffled channel ``c*16 + i*4 + j`` at ¼-res tap (ky, kx) is
    frame pixel (4·ky + i, 4·kx + j) of channel c."""
    cout = w.shape[0]
    w6 = w.reshape(cout, 3, BLOCK, BLOCK, 3, 3)  # [C, c, i, j, ky, kx]
    w12 = w6.permute(0, 1, 4, 2, 5, 3).reshape(cout, 3, 3 * BLOCK, 3 * BLOCK)  # [C, c, (ky,i), (kx,j)]
    return w12[:, _BGR].contiguous()


def block_reflect_pad(x: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] → [N, C, H+8, W+8]: one 4×4 block on each side, copied (not mirrored) from
    the second block in from that edge. This is ``ReflectionPad2d(1)`` of the pixel-unshuffled
    tensor, expressed on the frame. Needs H, W ≥ 8."""
    b = BLOCK
    x = torch.cat([x[:, :, b:2 * b], x, x[:, :, -2 * b:-b]], dim=2)
    return torch.cat([x[:, :, :, b:2 * b], x, x[:, :, :, -2 * b:-b]], dim=3)


def replicate_pad1(z: torch.Tensor) -> torch.Tensor:
    """[N, C, h, w] → [N, C, h+2, w+2], edge rows and columns repeated. Written as slices and
    concats rather than ``Pad(mode=edge)``, which not every TensorRT release's ONNX parser takes."""
    z = torch.cat([z[:, :, :1], z, z[:, :, -1:]], dim=2)
    return torch.cat([z[:, :, :, :1], z, z[:, :, :, -1:]], dim=3)


@torch.no_grad()
def phase_conv_weight(w_up: torch.Tensor) -> torch.Tensor:
    """[O, C, 3, 3] full-res conv weights over ``interpolate(z, 4×, bilinear)`` → [O·16, C, 3, 3]
    ¼-res conv weights whose depth-to-space (channel ``o*16 + i*4 + j`` → pixel phase (i, j) of
    output o) gives the same result. Read off from impulse responses of the original ops."""
    o_ch, c_ch = w_up.shape[:2]
    n = 7  # impulse at (3, 3) of a 7×7 ¼-res map: far enough from the edge for the ±1 support
    z = torch.zeros(c_ch, c_ch, n, n, dtype=w_up.dtype)
    z[torch.arange(c_ch), torch.arange(c_ch), 3, 3] = 1.0
    up = F.interpolate(z, scale_factor=float(BLOCK), mode="bilinear", align_corners=False)
    r = F.conv2d(up, w_up, padding=1)  # [c (impulse), O, 28, 28]
    k = torch.empty(o_ch, BLOCK, BLOCK, c_ch, 3, 3, dtype=w_up.dtype)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            y0, x0 = BLOCK * (3 - dy), BLOCK * (3 - dx)
            k[:, :, :, :, dy + 1, dx + 1] = r[:, :, y0:y0 + BLOCK, x0:x0 + BLOCK].permute(1, 2, 3, 0)
    return k.reshape(o_ch * BLOCK * BLOCK, c_ch, 3, 3)


def shift_in_logit_space(x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """``sigmoid(logit(x) + d)`` (x clamped as ``_logit`` clamps it) without the two logs:
    ``x / (x + (1 − x)·e^(−d))``, one exp instead of two logs and an exp at full resolution.
    As d → −∞ the exp overflows to inf (in FP16 from d < −11) and the result is 0, the limit."""
    xc = x.clamp(LOGIT_EPS, 1.0 - LOGIT_EPS)
    return xc / (xc + (1.0 - xc) * torch.exp(-d))


def cond_instance_norm(norm: CondInstanceNorm, h: torch.Tensor, w: torch.Tensor, fuse: bool) -> torch.Tensor:
    """``norm(h, w)``; with ``fuse`` and a batch of one frame, the style's γ/β are handed to instance
    norm as its own scale and bias (one ONNX ``InstanceNormalization`` instead of norm, Mul, Add)."""
    if not fuse or h.shape[0] != 1:
        return norm(h, w)
    return F.instance_norm(h, weight=(w @ norm.gamma)[0], bias=(w @ norm.beta)[0], eps=1e-5)


def conv_norm_act(m: ConvNormAct, x: torch.Tensor, w: torch.Tensor, fuse: bool) -> torch.Tensor:
    """``m(x, w)`` through ``cond_instance_norm``."""
    return m.activate(cond_instance_norm(m.norm, m.conv(m.pad(x)), w, fuse))


class FastGenerator(nn.Module):
    """``Generator`` re-parameterised for inference on BGR frames (see the module docstring).

    x: [N, 3, H, W] float32 **BGR** in [0, 1], H and W multiples of 8; w: [N, S] style weights
    → stylised [N, 3, H, W] BGR in (0, 1), attention [N, 1, H, W] in (0, 1), and the raw head
    [N, 4, H, W] (BGR colour deltas + attention logit, what ``CheckedFramePipeline`` sums).
    The source generator is not modified; its modules are shared, not copied.

    fuse_norm_affine: put the style's γ/β inside ``InstanceNormalization`` (~4 % faster in ONNX
    Runtime on CPU). Off for the TensorRT source graph: TensorRT's ONNX parser has required the
    norm's scale and bias to be initializers (8.x), and these are computed from the style input.
    """

    def __init__(self, g: Generator, fuse_norm_affine: bool = True) -> None:
        super().__init__()
        self.g = g
        self.fuse = fuse_norm_affine
        with torch.no_grad():
            self.enc1_w = nn.Parameter(strided_enc1_weight(g.enc1.conv.weight), requires_grad=False)
            self.enc1_b = nn.Parameter(g.enc1.conv.bias.clone(), requires_grad=False)
            hw, hb = g.head.weight[_HEAD_ROWS], g.head.bias[_HEAD_ROWS]
            if g.spec.head_lanczos:  # 1×1 at ¼ res by the summed taps, then one grouped conv + depth-to-space
                self.z_w = nn.Parameter(hw[:, :HEAD_CHANNELS].sum((2, 3), keepdim=True), requires_grad=False)
                self.lanczos_w = nn.Parameter(lanczos_phase_weight(4, BLOCK), requires_grad=False)
            else:
                self.phase_w = nn.Parameter(phase_conv_weight(hw[:, :HEAD_CHANNELS]), requires_grad=False)
            self.x_w = nn.Parameter(hw[:, HEAD_CHANNELS:][:, _BGR].contiguous(), requires_grad=False)
            self.x_b = nn.Parameter(hb.clone(), requires_grad=False)
            if g.spec.half_res:  # the ½-res stage's outputs in BGR order too
                self.half_w = nn.Parameter(g.half_out.weight[_HEAD_ROWS].clone(), requires_grad=False)
                self.half_b = nn.Parameter(g.half_out.bias[_HEAD_ROWS].clone(), requires_grad=False)
            if g.spec.stroke_mlp:  # the stroke head sees the BGR frame and writes BGR rows
                k = g.spec.stroke_mlp
                self.stroke_x = nn.Conv2d(3, k, 1, bias=False).requires_grad_(False)
                self.stroke_x.weight.copy_(g.stroke_x.weight[:, _BGR])
                self.stroke_out = nn.Conv2d(k, 4, 1).requires_grad_(False)
                self.stroke_out.weight.copy_(g.stroke_out.weight[_HEAD_ROWS])
                self.stroke_out.bias.copy_(g.stroke_out.bias[_HEAD_ROWS])

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        g = self.g
        f = self.fuse
        h = g.enc1.activate(cond_instance_norm(g.enc1.norm, F.conv2d(block_reflect_pad(g.in_blur(x)), self.enc1_w, self.enc1_b, stride=BLOCK), w, f))
        skip = h
        h = conv_norm_act(g.enc2, g.blur(h), w, f)
        for block in g.res:
            h = h + conv_norm_act(block.b, conv_norm_act(block.a, h, w, f), w, f)
        h = conv_norm_act(g.dec1, g.upsample_half(h), w, f) + skip
        z = g.head_blur(g.squeeze(h))
        if g.spec.head_lanczos:
            zq = F.conv2d(z, self.z_w)
            head = F.pixel_shuffle(F.conv2d(replicate_pad(zq, LANCZOS_LOBES), self.lanczos_w, groups=4), BLOCK)
        else:
            head = F.pixel_shuffle(F.conv2d(replicate_pad1(z), self.phase_w), BLOCK)
        head = head + F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.x_w, self.x_b)
        if g.spec.stroke_mlp:
            head = head + stroke_head(z, x, g.stroke_z, self.stroke_x, self.stroke_out)
        if g.spec.half_res:
            hh = conv_norm_act(g.half_in, upsample2(h), w, f)
            head = head + upsample2(F.conv2d(F.pad(hh, (1, 1, 1, 1), mode="reflect"), self.half_w, self.half_b))
        stylised = shift_in_logit_space(x, head[:, :3])
        attention = torch.sigmoid(head[:, 3:4])
        return stylised, attention, head


class FastFramePipeline(nn.Module):
    """``FramePipeline``'s contract (uint8 BGR NHWC in and out) over ``FastGenerator``:
    no colour flips, one layout transpose in and one out."""

    def __init__(self, g: Generator, fuse_norm_affine: bool = True) -> None:
        super().__init__()
        self.fast = FastGenerator(g.eval(), fuse_norm_affine)

    def run(self, frame: torch.Tensor, style: torch.Tensor, strength: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(output uint8 [1,H,W,3] BGR, attention uint8 [1,H,W,1], head float32 [1,4,H,W])."""
        x = frame.float().permute(0, 3, 1, 2) / 255.0  # cast first: TensorRT reads uint8 only in a Cast (``to_u8_nhwc``)
        g, a, head = self.fast(x, style)
        y = blend(x, g, a, strength.reshape(1, 1, 1, 1))
        return to_u8_nhwc(y), to_u8_nhwc(a), head

    def forward(self, frame: torch.Tensor, style: torch.Tensor, strength: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, att, _ = self.run(frame, style, strength)
        return out, att
