"""The pass-through backend (``--backend null``): the frame back unchanged, attention flat.

It runs no model, so ``stylecast bench --backend null`` measures what the host does around an
engine (capture, the pipeline's copies, the stabiliser, render, publish) with the engine's own
cost taken out: what a GPU box whose engine takes a few milliseconds is left with. It reads the
model's sidecar like any backend (the styles the control socket offers), and checks its inputs
like any backend, so the pipeline cannot tell it from a real one but by its output.
"""

from __future__ import annotations

import numpy as np

from engines.base import F32, U8, BaseEngine
from engines.model import ModelInfo

FLAT_ATTENTION = 128
"""The attention it reports everywhere (0–255): "half the style", so the overlay is not blank."""


class NullEngine(BaseEngine):
    """``infer`` returns the frame itself as the output (no copy; the caller copies what it
    keeps, as it must for every backend) and one [H, W] uint8 attention buffer of
    ``FLAT_ATTENTION``, reused while the size stays the same."""

    name = "null"

    def __init__(self, model: ModelInfo, threads: int = 0) -> None:
        super().__init__(model)
        del threads  # accepted like onnxruntime's option; nothing runs on threads here
        self._attention: U8 | None = None

    def _open(self) -> None:
        self._attention = None

    def _run(self, frame: U8, style: F32, strength: float) -> tuple[U8, U8]:
        h, w = frame.shape[1:3]
        if self._attention is None or self._attention.shape[1:3] != (h, w):
            self._attention = np.full((1, h, w, 1), FLAT_ATTENTION, np.uint8)
        return frame, self._attention

    def _close(self) -> None:
        self._attention = None
