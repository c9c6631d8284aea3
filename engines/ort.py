"""ONNX Runtime backend (CPU, or CUDA when onnxruntime-gpu is installed)."""

from __future__ import annotations

import logging
import os
from typing import Any, Literal

import numpy as np

from engines.base import F32, U8, BaseEngine
from engines.errors import BackendUnavailable, EngineError, ModelError
from engines.model import ModelInfo

log = logging.getLogger(__name__)

Provider = Literal["auto", "cpu", "cuda"]


DEVICE_FAILURES = frozenset({"RuntimeException", "EPFail", "DeviceReset"})
"""onnxruntime's exception classes (``onnxruntime.capi.onnxruntime_pybind11_state``) for a
session that failed to start on its device (CUDA out of memory, no device, a reset): an
EngineError, exit 1, which systemd restarts. Any other load failure (a missing, corrupt or
unsupported model: NoSuchFile, InvalidProtobuf, InvalidGraph, Fail…) is a ModelError, exit 2,
which it does not."""


GRAPH_IO = {
    "inputs": {"frame": ("tensor(uint8)", 4), "style": ("tensor(float)", 2), "strength": ("tensor(float)", 1)},
    "outputs": {"output": ("tensor(uint8)", 4), "attention": ("tensor(uint8)", 4)},
}
"""The graph's inputs and outputs (``training/export.py``'s contract): name → (type, rank)."""


def check_graph_io(inputs: list[Any], outputs: list[Any], num_styles: int) -> None:
    """ModelError unless the session's ``inputs``/``outputs`` (onnxruntime ``NodeArg``: name,
    type, shape) are ``GRAPH_IO``'s, with ``num_styles`` style weights (the sidecar's count)
    and 3 output / 1 attention channels where the graph fixes them."""
    for kind, args in (("inputs", inputs), ("outputs", outputs)):
        want = GRAPH_IO[kind]
        got = {a.name: a for a in args}
        if sorted(got) != sorted(want):
            raise ModelError(f"expected {kind} {sorted(want)}, got {sorted(got)}")
        for name, (typ, rank) in want.items():
            a = got[name]
            if a.type != typ or len(a.shape) != rank:
                raise ModelError(f"{kind[:-1]} {name!r}: expected {typ} of rank {rank}, got {a.type} {a.shape}")
    shapes = {a.name: a.shape for a in [*inputs, *outputs]}
    styles = shapes["style"][1]
    if isinstance(styles, int) and styles != num_styles:
        raise ModelError(f"the graph takes {styles} style weights, the sidecar lists {num_styles} styles")
    for name, channels in (("output", 3), ("attention", 1)):
        dim = shapes[name][3]
        if isinstance(dim, int) and dim != channels:
            raise ModelError(f"output {name!r} has {dim} channels, expected {channels}")


class OrtEngine(BaseEngine):
    """Runs the exported uint8 graph in an ``onnxruntime.InferenceSession``.

    threads: intra-op threads (0 = one per core). Worker spinning is disabled: spinning threads
    halve the speed of capture/render sharing a 2-core machine.
    """

    name = "onnxruntime"

    def __init__(self, model: ModelInfo, threads: int = 0, provider: Provider = "auto") -> None:
        super().__init__(model)
        self.threads = threads
        self.provider = provider
        self._session: Any = None
        self._strength = np.zeros(1, dtype=np.float32)

    def _providers(self, available: list[str]) -> list[str]:
        if self.provider == "cuda" and "CUDAExecutionProvider" not in available:
            raise BackendUnavailable(f"CUDAExecutionProvider not available (have {available}); install onnxruntime-gpu")
        if self.provider in ("auto", "cuda") and "CUDAExecutionProvider" in available:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return ["CPUExecutionProvider"]

    def _open(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise BackendUnavailable("onnxruntime is not installed") from e
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads or (os.cpu_count() or 1)
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "0")
        so.log_severity_level = 3
        providers = self._providers(ort.get_available_providers())
        try:
            self._session = ort.InferenceSession(str(self.model.onnx_path), so, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception classes, not a common base
            if type(e).__name__ in DEVICE_FAILURES:  # the machine, not the model: worth a restart
                raise EngineError(f"onnxruntime could not start {self.model.onnx_path} on {providers[0]}: {e}") from e
            raise ModelError(f"onnxruntime cannot load {self.model.onnx_path}: {e}") from e
        try:
            check_graph_io(self._session.get_inputs(), self._session.get_outputs(), self.model.num_styles)
        except ModelError as e:
            self._session = None
            raise ModelError(f"{self.model.onnx_path}: {e}") from e
        log.info("onnxruntime %s, providers %s, %d threads", ort.__version__, self._session.get_providers(), so.intra_op_num_threads)

    def _run(self, frame: U8, style: F32, strength: float) -> tuple[U8, U8]:
        self._strength[0] = strength
        try:
            out, att = self._session.run(["output", "attention"], {"frame": frame, "style": style, "strength": self._strength})
        except Exception as e:
            raise EngineError(f"onnxruntime run failed on frame {list(frame.shape)}: {e}") from e
        return out, att

    def _close(self) -> None:
        self._session = None
