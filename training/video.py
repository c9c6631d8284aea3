"""Training on a user's own footage (``stylecast train --video CLIP``): consecutive frame pairs
with their measured optical flow, for a temporal loss on real motion (Ruder et al. 2016's
short-term loss) beside the synthetic second view of the photos.

For a pair (t, t+1) the flow is Farneback's from frame t+1 back to frame t, in pixels:
``frame_t1(p) ≈ frame_t(p + flow(p))``. Pixels where the forward and backward flows disagree
(occlusions, motion the flow got wrong) are masked out. Everything is computed once, at load.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from training.data import DataError

FB_TOLERANCE = 1.0
"""px: a pixel whose forward-then-backward flow does not come back within this is masked."""

PHOTO_TOLERANCE = 12.0
"""Grey levels (0–255, after a σ = 1 px blur): a pixel of frame t+1 that differs from frame t at
the flow's source by more than this is masked. Farneback's flow is smooth, so it stays consistent
forwards and backwards across something that appears from nowhere; the picture does not."""


@dataclass(frozen=True)
class FramePair:
    """One pair, at load resolution: frames [2, H, W, 3] uint8 RGB, flow [2, H, W] float32 px
    (x then y; from frame t+1 back to frame t), mask [H, W] bool (flow to trust)."""

    frames: np.ndarray
    flow: np.ndarray
    mask: np.ndarray


@dataclass(frozen=True)
class PairBatch:
    """Aligned crops of N pairs: x0, x1 [N,3,c,c] RGB float in [0,1] (frames t and t+1), flow
    [N,2,c,c] px (t+1 → t), valid [N,1,c,c] float 0/1."""

    x0: torch.Tensor
    x1: torch.Tensor
    flow: torch.Tensor
    valid: torch.Tensor

    def to(self, device: torch.device) -> PairBatch:
        return PairBatch(self.x0.to(device), self.x1.to(device), self.flow.to(device), self.valid.to(device))


def backward_flow(grey_t: np.ndarray, grey_t1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Farneback flow [H,W,2] from ``grey_t1`` back to ``grey_t`` (uint8 [H,W]), and the mask
    [H,W] bool of pixels whose forward-backward round trip closes within FB_TOLERANCE px, whose
    picture matches its source within PHOTO_TOLERANCE, and whose source lies inside the frame."""
    back = cv2.calcOpticalFlowFarneback(grey_t1, grey_t, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    fwd = cv2.calcOpticalFlowFarneback(grey_t, grey_t1, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    h, w = grey_t.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    sx, sy = gx + back[..., 0], gy + back[..., 1]
    fwd_at_src = cv2.remap(fwd, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    loop = np.hypot(back[..., 0] + fwd_at_src[..., 0], back[..., 1] + fwd_at_src[..., 1])
    inside = (sx >= 0) & (sx <= w - 1) & (sy >= 0) & (sy <= h - 1)
    b0 = cv2.GaussianBlur(grey_t.astype(np.float32), (0, 0), 1.0)
    b1 = cv2.GaussianBlur(grey_t1.astype(np.float32), (0, 0), 1.0)
    matches = np.abs(b1 - cv2.remap(b0, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)) < PHOTO_TOLERANCE
    return back, (loop < FB_TOLERANCE) & matches & inside


def read_pairs(path: Path, short_side: int, max_pairs: int) -> list[FramePair]:
    """Up to ``max_pairs`` consecutive-frame pairs spread over the clip at ``path``, frames scaled
    so their shorter side is ``short_side`` px. The clip is streamed: at most 2 × ``max_pairs``
    pairs are held while reading (every ``stride``-th, the stride doubling as they fill), so a
    long clip costs time, not memory. DataError when the clip cannot be read or holds fewer
    than two frames."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(f"cannot open video {path}")
    kept: list[tuple[np.ndarray, np.ndarray]] = []
    prev: np.ndarray | None = None
    n, stride = 0, 1
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            h, w = bgr.shape[:2]
            s = short_side / min(h, w)
            frame = cv2.resize(bgr, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
            if prev is not None:
                if (n - 1) % stride == 0:  # pair n-1: frames n-1 and n
                    kept.append((prev, frame))
                    if len(kept) > 2 * max_pairs:
                        kept, stride = kept[::2], stride * 2
            prev, n = frame, n + 1
    finally:
        cap.release()
    if not kept:
        raise DataError(f"video {path}: {n} readable frame(s); at least 2 are needed")
    picks = np.unique(np.linspace(0, len(kept) - 1, min(max_pairs, len(kept))).round().astype(int))
    pairs = []
    for a, b in (kept[i] for i in picks.tolist()):
        flow, mask = backward_flow(cv2.cvtColor(a, cv2.COLOR_BGR2GRAY), cv2.cvtColor(b, cv2.COLOR_BGR2GRAY))
        rgb = np.stack([a[:, :, ::-1], b[:, :, ::-1]])
        pairs.append(FramePair(np.ascontiguousarray(rgb), np.ascontiguousarray(flow.transpose(2, 0, 1)), mask))
    return pairs


class VideoPairs:
    """Frame pairs of one or more clips, held in memory; ``batch`` draws aligned random crops."""

    def __init__(self, paths: list[Path], crop: int, seed: int, max_pairs: int = 64) -> None:
        self.crop = crop
        self.pairs = [p for path in paths for p in read_pairs(path, round(crop * 1.5), max_pairs)]
        self.rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.pairs)

    def batch(self, n: int) -> PairBatch:
        x0, x1, flows, valid = [], [], [], []
        c = self.crop
        for _ in range(n):
            p = self.rng.choice(self.pairs)
            h, w = p.mask.shape
            if min(h, w) < c:
                raise DataError(f"video frames of {w}×{h} px are smaller than the {c} px crop")
            y, x = self.rng.randint(0, h - c), self.rng.randint(0, w - c)
            fr = torch.from_numpy(p.frames[:, y : y + c, x : x + c]).permute(0, 3, 1, 2).float() / 255.0
            fl = torch.from_numpy(p.flow[:, y : y + c, x : x + c].copy())
            m = torch.from_numpy(p.mask[y : y + c, x : x + c].astype(np.float32))[None]
            if self.rng.random() < 0.5:  # mirror: the flow's x component changes sign
                fr, fl, m = fr.flip(-1), fl.flip(-1), m.flip(-1)
                fl[0] = -fl[0]
            x0.append(fr[0])
            x1.append(fr[1])
            flows.append(fl)
            valid.append(m)
        return PairBatch(torch.stack(x0), torch.stack(x1), torch.stack(flows), torch.stack(valid))


def flow_warp(y: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame-t images ``y`` [N,C,H,W] moved to frame t+1 by ``flow`` [N,2,H,W] (px, t+1 → t):
    out(p) = y(p + flow(p)), bilinear; and the mask [N,1,H,W] of pixels sampled inside the image."""
    n, _, h, w = y.shape
    gy, gx = torch.meshgrid(torch.arange(h, device=y.device, dtype=y.dtype), torch.arange(w, device=y.device, dtype=y.dtype), indexing="ij")
    sx, sy = gx + flow[:, 0].to(y.dtype), gy + flow[:, 1].to(y.dtype)
    grid = torch.stack([(2 * sx + 1) / w - 1, (2 * sy + 1) / h - 1], dim=-1)  # align_corners=False
    out = F.grid_sample(y, grid, mode="bilinear", padding_mode="border", align_corners=False)
    inside = ((sx >= 0) & (sx <= w - 1) & (sy >= 0) & (sy <= h - 1)).to(y.dtype)[:, None]
    return out, inside
