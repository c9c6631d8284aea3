"""Temporal stabilisation of the stylised stream: the previous output, moved with the camera,
is blended into the new one where the scene agrees (what temporal anti-aliasing does in a game
renderer: reproject the history, clamp it to the new frame's neighbourhood, blend).

A feed-forward generator stylises every frame on its own, so tiny frame-to-frame differences of
the input (sensor noise, the sub-pixel phase a moving camera samples the scene at) come out as
changes of the style pattern: shimmer. Averaging along the camera's motion removes most of it:

1. ``estimate_motion``: the camera's motion between the two *raw* frames, a 2×3 similarity
   (shift, rotation, zoom) from tracked corners (Lucas–Kanade) and RANSAC, on frames scaled
   down to ``motion_width``. Moving objects are outliers of that fit.
2. ``agreement``: where the raw frames, the previous one moved by that motion, still match
   (1) and where they do not (0: a moving object, an occlusion, the border the camera
   uncovered). Only the raw frames decide this, never the stylised ones.
3. ``Stabiliser``: output = new + w · (clamp(moved history) − new), with w = ``history`` ×
   agreement, and the moved history clamped per channel to the new output's 3×3 min…max, so
   that a wrong motion estimate cannot leave a trail. A cut (no motion found, or the frames
   disagree almost everywhere) drops the history.

Pure functions on uint8/float32 numpy arrays plus one small stateful class; OpenCV only.
Used by the daemon's publish thread, ``stylecast stylize`` and ``stylecast evaluate --stabilise``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]


class StabiliseError(ValueError):
    """A stabiliser setting or input out of range."""


MAX_HISTORY = 0.95
"""Largest history weight: at 1 the output would never take in a new frame."""

DEFAULT_HISTORY = 0.6
"""The daemon's default (``ServeConfig.stabilise``): see docs/QUALITY.md for how it was chosen."""


@dataclass(frozen=True)
class StabiliseConfig:
    """``history``: weight of the moved previous output where the scene agrees, in [0, MAX_HISTORY]; 0 turns
    the stabiliser off. ``motion_width``: px, frames are scaled to this width for the motion
    estimate. ``tolerance``: grey levels (0–255) of raw-frame disagreement, after a σ = 1 px blur,
    at which the history's weight halves. ``cut``: share of pixels that disagree by more than
    4 × ``tolerance`` above which the frame is a new scene and the history is dropped."""

    history: float = DEFAULT_HISTORY
    motion_width: int = 320
    tolerance: float = 6.0
    cut: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.history <= MAX_HISTORY:
            raise StabiliseError(f"history: expected a weight in [0, {MAX_HISTORY}], got {self.history}")
        if not 64 <= self.motion_width <= 4096:
            raise StabiliseError(f"motion_width: expected 64–4096 px, got {self.motion_width}")
        if not self.tolerance > 0:
            raise StabiliseError(f"tolerance: expected > 0 grey levels, got {self.tolerance}")
        if not 0.0 < self.cut <= 1.0:
            raise StabiliseError(f"cut: expected a share in (0, 1], got {self.cut}")

    @property
    def enabled(self) -> bool:
        return self.history > 0


MIN_TRACKS = 12
"""Fewer tracked corners (or RANSAC inliers) than this and the motion is not estimated."""


def small_grey(frame: U8, width: int) -> tuple[U8, float]:
    """[H,W,3] BGR → grey [h,w] uint8 at ``width`` (never upscaled), and the scale full/small."""
    grey = cast(U8, cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    w = frame.shape[1]
    if w <= width:
        return grey, 1.0
    s = w / width
    h = max(8, round(frame.shape[0] / s))
    return cast(U8, cv2.resize(grey, (width, h), interpolation=cv2.INTER_AREA)), s


def to_full_resolution(m: F32, s: float) -> F32:
    """A 2×3 transform between images scaled by 1/``s`` (pixel centres at i + 0.5, as
    ``cv2.resize``) → the same motion in full-resolution pixels."""
    out = m.astype(np.float32).copy()
    a = out[:, :2]
    out[:, 2] = s * out[:, 2] + 0.5 * (s - 1.0) * (1.0 - a.sum(axis=1))
    return out


def estimate_motion(prev: U8, cur: U8) -> F32 | None:
    """The camera motion from grey frame ``prev`` to ``cur`` (same shape, uint8) as a 2×3
    similarity in their pixels (``cv2.warpAffine(prev, m)`` lines ``prev`` up with ``cur``), or
    None where it cannot be told (a flat picture, a cut, too few corners that agree)."""
    pts = cv2.goodFeaturesToTrack(prev, maxCorners=100, qualityLevel=0.01, minDistance=8, blockSize=7)
    if pts is None or len(pts) < MIN_TRACKS:
        return None
    nxt, status, _err = cv2.calcOpticalFlowPyrLK(prev, cur, pts, np.empty_like(pts), winSize=(15, 15), maxLevel=2)
    ok = status.reshape(-1) == 1
    if int(ok.sum()) < MIN_TRACKS:
        return None
    m, inliers = cv2.estimateAffinePartial2D(pts[ok], nxt[ok], method=cv2.RANSAC, ransacReprojThreshold=1.0, maxIters=500, refineIters=10)
    if m is None or inliers is None or int(inliers.sum()) < MIN_TRACKS:
        return None
    return np.asarray(m, np.float32)


def soft_grey(grey: U8) -> F32:
    """``grey`` [h,w] uint8 → float32 blurred with σ = 1 px, what ``agreement`` compares: so that
    resampling and sensor noise do not count as disagreement."""
    return cast(F32, cv2.GaussianBlur(grey.astype(np.float32), (0, 0), 1.0))


def agreement(prev_soft: F32, cur_soft: F32, m: F32, tolerance: float) -> tuple[F32, float]:
    """Per pixel of ``cur_soft`` [h,w] (``soft_grey`` of the current frame): how well the previous
    frame's, moved by ``m``, matches it, in [0, 1] (0 where the move leaves no picture), and the
    share of pixels that disagree by more than 4 × ``tolerance``."""
    h, w = cur_soft.shape
    b = cur_soft
    moved = cv2.warpAffine(prev_soft, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=-1e4)
    q = cast(F32, cv2.absdiff(b, moved))
    disagree = float(np.count_nonzero(q > 4 * tolerance)) / q.size
    q *= np.float32(1.0 / tolerance)
    q *= q
    q *= q
    q += np.float32(1.0)
    return cast(F32, cv2.divide(1.0, q)), disagree  # 1 / (1 + (r/tolerance)^4): ½ at tolerance, 1/17 at 2×


IDENTITY_TOLERANCE = 0.02
"""px: a motion that moves no pixel of the frame by more than this counts as none, so a still
camera's history is never resampled (resampling softens it)."""


def is_still(m: F32, w: int, h: int) -> bool:
    """Whether 2×3 motion ``m`` moves every corner of a [h, w] frame by less than IDENTITY_TOLERANCE px."""
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float32)
    return bool(np.abs(corners @ m.T - corners[:, :2]).max() < IDENTITY_TOLERANCE)


def move(img: U8, m: F32 | None) -> U8:
    """``img`` [H,W] or [H,W,C] uint8 moved by the 2×3 motion ``m`` (bilinear; borders
    replicated, the agreement map zeroes them); None: itself. Bilinear, not bicubic: OpenCV's
    bicubic warp has no vectorised path and took 30 ms of a 1920×1080 frame against 2.6 ms
    (2 cores), for a history ~10 % softer (docs/BENCHMARKS.md, "The stabiliser")."""
    if m is None:
        return img
    h, w = img.shape[:2]
    return cast(U8, cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))


class Stabiliser:
    """Stateful: feed it every frame of one stream in order, on one thread.

    ``__call__(raw, output, attention)``: the raw frame [H,W,3] uint8 BGR, its stylised output
    [H,W,3] uint8 and attention [H,W] uint8 → stabilised (output, attention) of the same shapes.
    While on, these are new arrays, kept as the history: do not write to them. Off
    (``history`` 0), it returns ``output`` and ``attention`` themselves and keeps nothing, so
    turning it on again starts clean. A change of frame size, a cut or ``reset()`` drops the
    history. ``last_weight`` is the mean history weight of the last frame (0 when off, after a
    cut or with no history), for stats."""

    def __init__(self, cfg: StabiliseConfig | None = None) -> None:
        self.cfg = cfg or StabiliseConfig()
        self.last_weight = 0.0
        self._prev: tuple[U8, F32] | None = None  # the last raw frame, small grey and soft_grey of it
        self._out: U8 | None = None
        self._att: U8 | None = None

    def set_history(self, history: float) -> None:
        """A live change of the history weight (StabiliseError out of range); the history is kept."""
        if history != self.cfg.history:
            self.cfg = replace(self.cfg, history=history)

    def reset(self) -> None:
        self._prev = self._out = self._att = None
        self.last_weight = 0.0

    def __call__(self, raw: U8, output: U8, attention: U8) -> tuple[U8, U8]:
        if raw.ndim != 3 or raw.shape != output.shape or raw.shape[:2] != attention.shape:
            raise StabiliseError(f"stabilise: expected raw and output [H,W,3] and attention [H,W] of one size, got {list(raw.shape)}, {list(output.shape)}, {list(attention.shape)}")
        if not self.cfg.enabled:
            self.reset()
            return output, attention
        grey, s = small_grey(raw, self.cfg.motion_width)
        cur = (grey, soft_grey(grey))
        prev, self._prev = self._prev, cur
        self.last_weight = 0.0
        res = None
        if prev is not None and prev[0].shape == grey.shape and self._out is not None and self._att is not None and self._out.shape == output.shape:
            res = self._blend(prev, cur, s, self._out, self._att, output, attention)
        if res is None:  # nothing to blend: the frame starts the history (a copy: engines reuse their buffers)
            res = (output.copy(), attention.copy())
        self._out, self._att = res
        return res

    def _blend(self, prev: tuple[U8, F32], cur: tuple[U8, F32], s: float, hist_out: U8, hist_att: U8, output: U8, attention: U8) -> tuple[U8, U8] | None:
        m_small = estimate_motion(prev[0], cur[0])
        if m_small is None:
            return None
        agree, disagree = agreement(prev[1], cur[1], m_small, self.cfg.tolerance)
        if disagree > self.cfg.cut:
            return None
        h, w = output.shape[:2]
        full = to_full_resolution(m_small, s)
        m = None if is_still(full, w, h) else full
        agree *= np.float32(self.cfg.history)  # the history's weight, still at the motion estimate's size
        self.last_weight = float(agree.mean())
        wgt = cv2.resize(agree, (w, h), interpolation=cv2.INTER_LINEAR)
        keep = np.float32(1.0) - wgt
        return (cast(U8, cv2.blendLinear(output, clamp_to_neighbourhood(move(hist_out, m), output), keep, wgt)),
                cast(U8, cv2.blendLinear(attention, clamp_to_neighbourhood(move(hist_att, m), attention), keep, wgt)))


def clamp_to_neighbourhood(old: U8, new: U8) -> U8:
    """``old`` clamped, per pixel and channel, to the min…max of ``new``'s 3×3 neighbourhood;
    uint8 arrays of one shape ([H,W] or [H,W,C]), a new array."""
    k = np.ones((3, 3), np.uint8)
    return cast(U8, cv2.min(cv2.max(old, cv2.erode(new, k)), cv2.dilate(new, k)))
