"""The one protocol every inference backend implements, and the checks they share.

Lifecycle (Polygraphy's runner model): ``open()`` → ``infer()``… → ``close()``, or ``with
engine:``. Open, use and close an engine on one thread: GPU backends bind a CUDA context to it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

import numpy as np
import numpy.typing as npt

from engines.errors import EngineClosed, InputError, ModelError
from engines.model import ModelInfo

log = logging.getLogger(__name__)

U8 = npt.NDArray[np.uint8]

MIN_SIDE = 16
"""Smallest frame side: the generator's ⅛-resolution stage needs at least 2 pixels to reflect-pad."""
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class InferResult:
    """One stylised frame.

    output:    [H, W, 3] uint8 BGR, same size as the input frame
    attention: [H, W] uint8, 0–255
    Backends may reuse these buffers on the next ``infer`` call: copy what you keep.
    """

    output: U8
    attention: U8


@runtime_checkable
class Engine(Protocol):
    name: str
    model: ModelInfo

    def open(self) -> None: ...

    def infer(self, frame: U8, style: F32, strength: float) -> InferResult: ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None: ...


def check_frame(frame: object) -> U8:
    """A frame must be a [H, W, 3] uint8 array with H, W ≥ MIN_SIDE; raises InputError (expected vs actual)."""
    if not isinstance(frame, np.ndarray):
        raise InputError(f"frame: expected numpy.ndarray [H,W,3] uint8, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise InputError(f"frame: expected dtype uint8, got {frame.dtype}")
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise InputError(f"frame: expected shape [H,W,3], got {list(frame.shape)}")
    if frame.shape[0] < MIN_SIDE or frame.shape[1] < MIN_SIDE:
        raise InputError(f"frame: expected H, W >= {MIN_SIDE}, got {frame.shape[0]}x{frame.shape[1]}")
    return frame


def check_style(style: object, num_styles: int) -> F32:
    """Style weights: [S] (or [1,S]) finite, non-negative float, not all zero."""
    try:
        arr = np.asarray(style, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise InputError(f"style: expected {num_styles} float weights, got {style!r:.80}") from e
    if arr.size != num_styles or arr.ndim > 2:
        raise InputError(f"style: expected {num_styles} weights, got shape {list(arr.shape)}")
    arr = arr.reshape(-1)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or float(arr.sum()) <= 0:
        raise InputError(f"style: expected finite non-negative weights with a positive sum, got {arr.tolist()}")
    return arr


def check_strength(strength: object) -> float:
    if isinstance(strength, bool):  # float(True) is 1.0: a flag passed where a weight belongs
        raise InputError(f"strength: expected a number in [0, 1], got {strength!r}")
    try:
        s = float(strength)  # type: ignore[arg-type]
    except (TypeError, ValueError) as e:
        raise InputError(f"strength: expected a number in [0, 1], got {strength!r}") from e
    if not 0.0 <= s <= 1.0:
        raise InputError(f"strength: expected a number in [0, 1], got {s}")
    return s


def check_outputs(out: object, att: object, height: int, width: int, model: object = "model") -> tuple[U8, U8]:
    """What a model returned for a [1, height, width, 3] frame must be its output uint8
    [1, height, width, 3] and attention uint8 [1, height, width, 1]; else ModelError naming the
    output and what came instead. A float output would be published as undecodable bytes, and a
    half-size one failed later, in the stabiliser. ``model`` names the file in the message."""
    for name, arr, channels in (("output", out, 3), ("attention", att, 1)):
        want = (1, height, width, channels)
        if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.shape != want:
            got = f"{arr.dtype} {list(arr.shape)}" if isinstance(arr, np.ndarray) else type(arr).__name__
            raise ModelError(f"{model}: output {name!r}: expected uint8 {list(want)}, got {got}")
    return out, att  # type: ignore[return-value]  # checked above


def pad_to_multiple(frame: U8, multiple: int) -> U8:
    """Reflect-pad [H,W,3] at the bottom/right so H and W are multiples of ``multiple``.

    Returns the frame itself (no copy) when no padding is needed.
    """
    h, w = frame.shape[:2]
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return frame
    return np.pad(frame, ((0, ph), (0, pw), (0, 0)), mode="reflect" if min(h, w) > max(ph, pw) else "edge")


class BaseEngine:
    """Shared lifecycle and input checks; a backend implements ``_open``, ``_run``, ``_close``."""

    name = "base"

    def __init__(self, model: ModelInfo) -> None:
        self.model = model
        self._open_flag = False
        # Called with a duration in seconds before ``infer`` starts work that may take that long
        # beyond a frame (TensorRT: building the FP32 engine after an FP16 frame came out
        # non-finite), on the thread calling ``infer``; the pipeline beats its watchdog with it,
        # so a bounded rebuild is not taken for a hung GPU call. None: nobody to tell.
        self.on_long_call: Callable[[float], None] | None = None

    # -- backend hooks -------------------------------------------------------------------
    def _open(self) -> None:
        raise NotImplementedError

    def _run(self, frame: U8, style: F32, strength: float) -> tuple[U8, U8]:
        """frame [1,H,W,3] uint8 (H, W multiples of size_multiple), style [1,S] → ([1,H,W,3], [1,H,W,1])."""
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    # -- public lifecycle ----------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._open_flag

    def open(self) -> None:
        if not self._open_flag:
            self._open()
            self._open_flag = True
            log.info("%s engine open: %s (%d styles)", self.name, self.model.onnx_path, self.model.num_styles)

    def infer(self, frame: U8, style: F32, strength: float) -> InferResult:
        """Stylise one [H,W,3] uint8 BGR frame with style weights [S] at ``strength`` in [0,1]."""
        if not self._open_flag:
            raise EngineClosed(f"{self.name} engine is not open")
        frame = check_frame(frame)
        weights = check_style(style, self.model.num_styles)
        s = check_strength(strength)
        h, w = frame.shape[:2]
        padded = pad_to_multiple(frame, self.model.size_multiple)
        raw_out, raw_att = self._run(padded[None], weights[None], s)
        out, att = check_outputs(raw_out, raw_att, padded.shape[0], padded.shape[1], self.model.onnx_path)
        return InferResult(out[0, :h, :w], att[0, :h, :w, 0])

    def _long_call(self, seconds: float) -> None:
        if self.on_long_call is not None:
            self.on_long_call(seconds)

    def close(self) -> None:
        """Idempotent."""
        if self._open_flag:
            self._open_flag = False
            self._close()

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
