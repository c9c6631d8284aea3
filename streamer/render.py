"""Pure rendering: colour grading and the attention overlay. uint8 BGR [H,W,3] in and out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

import cv2
import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Grading:
    """brightness in [-1, 1] (added, ×255), contrast in [0, 3] (×, around mid-grey),
    saturation in [0, 3] (× chroma). The neutral grading leaves frames untouched."""

    brightness: float = 0.0
    contrast: float = 1.0
    saturation: float = 1.0

    @property
    def neutral(self) -> bool:
        return self.brightness == 0.0 and self.contrast == 1.0 and self.saturation == 1.0


def grade(frame: U8, g: Grading) -> U8:
    """Apply ``g``; returns ``frame`` itself when neutral (no copy), else a new array."""
    if g.neutral:
        return frame
    out = frame
    if g.saturation != 1.0:
        gray = cv2.cvtColor(out, cv2.COLOR_BGR2GRAY)[:, :, None].astype(np.float32)
        out = np.clip(gray + (out.astype(np.float32) - gray) * g.saturation, 0, 255).astype(np.uint8)
    if g.contrast != 1.0 or g.brightness != 0.0:
        # y = c·x + (1−c)·128 + 255·b, clipped to 0–255 by OpenCV's saturating uint8 arithmetic.
        # (Not convertScaleAbs: it takes |y| first, so a darkened shadow came out bright.)
        out = cast(U8, cv2.addWeighted(out, g.contrast, out, 0.0, (1.0 - g.contrast) * 128.0 + 255.0 * g.brightness))
    return out


OutputMode = Literal["stylised", "side_by_side", "attention"]
OUTPUT_MODES: tuple[str, ...] = ("stylised", "side_by_side", "attention")


def compose(mode: OutputMode, frame: U8, output: U8, attention: npt.NDArray[np.uint8]) -> U8:
    """What the ``frame.stylised`` topic carries: the stylised frame, input|output side by side
    ([H, 2W, 3]), or the colour-mapped attention alone. Returns ``output`` itself for ``stylised``."""
    if mode == "side_by_side":
        return np.hstack([frame, output])
    if mode == "attention":
        return cast(U8, cv2.applyColorMap(attention, cv2.COLORMAP_TURBO))
    return output


def attention_overlay(frame: U8, attention: npt.NDArray[np.uint8], opacity: float) -> U8:
    """Colour-map the attention [H,W] uint8 (TURBO: blue = little style, red = full) and blend it
    over ``frame`` [H,W,3] with ``opacity`` in [0,1]. Returns a new array."""
    heat = cv2.applyColorMap(attention, cv2.COLORMAP_TURBO)
    return cast(U8, cv2.addWeighted(heat, float(opacity), frame, 1.0 - float(opacity), 0.0))
