"""TensorRT backend: a cached FP16 plan run with pycuda, uint8 frames on the wire to the GPU.

Per frame: the frame (uint8, ``H·W·3`` bytes), style weights and strength are copied into fixed
page-locked host buffers, sent with async copies on one stream, ``execute_async_v3`` runs the
engine, and the uint8 output, attention and the 4-byte ``check`` come back the same way; one
``synchronize`` per frame. Optionally the whole sequence is a CUDA graph (``cuda_graph=True``),
captured after the first frame of each size and replayed, with a fallback to plain launches.

Buffers are allocated once, at the profile's maximum frame size, so a frame-size change within
the profile only re-sets the input shape (and re-captures the graph); a size outside it is an
InputError naming the profile. ``infer`` returns views of the page-locked output buffers: they
are overwritten by the next ``infer`` and invalid after ``close()`` (BaseEngine's contract: copy
what you keep).

NaN/Inf guard: FP16 plans come from ``<model>.fp16.onnx``, which has a float32 ``check`` output
(the FP32 sum of the generator head, see training/fp16.py). A non-finite check means this frame
is garbage: it is logged once, counted in ``counters["nonfinite_frames"]``, and the engine
switches to an FP32 plan (cached or built now) and re-runs the frame, so garbage is never returned.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from engines.base import F32, U8, BaseEngine
from engines.cache import Precision, engine_cache_dir
from engines.errors import BackendUnavailable, EngineError, InputError
from engines.model import ModelInfo
from engines.trt_build import PyLogger
from engines.trt_manifest import DEFAULT_PROFILE_TEXT, GpuFacts, Profile, parse_profile
from engines.trt_runtime import Buffer, CudaDevice, import_cuda
from engines.trt_store import EngineSpec, load_or_build

FALLBACK_BUILD_S = 15 * 60.0
"""How long the FP32 fallback may take to load or build its engine mid-stream (the systemd
units give a first start, which may build, the same 15 min: ``TimeoutStartSec``)."""

if TYPE_CHECKING:
    import tensorrt as trt

log = logging.getLogger(__name__)


class NonFiniteOutput(EngineError):
    """The engine produced NaN/Inf even in FP32: the model itself is broken."""


def import_tensorrt() -> ModuleType:
    """The TensorRT Python runtime, or BackendUnavailable saying what is missing.

    ``tensorrt-stubs`` installs a ``tensorrt`` folder with only ``.pyi`` files, which Python
    imports as an empty namespace package: that is reported as "no runtime", not accepted."""
    try:
        tensorrt: ModuleType = importlib.import_module("tensorrt")
    except ImportError as e:
        raise BackendUnavailable(f"tensorrt is not installed ({e}); pip install 'stylecast[gpu]' on a CUDA machine") from e
    if not hasattr(tensorrt, "Builder"):
        raise BackendUnavailable("the installed 'tensorrt' package has no runtime (only type stubs?); pip install 'stylecast[gpu]'")
    return tensorrt


def probe() -> tuple[bool, str]:
    """Whether TensorRT can run here: ``(True, "TensorRT 10.x on <GPU>")`` or ``(False, why not)``."""
    try:
        trt = import_tensorrt()
        cuda = import_cuda()
        return True, f"TensorRT {trt.__version__} on {cuda.Device(0).name()}"
    except BackendUnavailable as e:
        return False, str(e)


class TensorRTEngine(BaseEngine):
    """Stylecast's graph as a TensorRT engine.

    cache_dir:  where plans, manifests and timing caches live ("" = ``engine_cache_dir()``)
    profile:    ``"MIN:OPT:MAX"`` frame sizes, each ``WxH``, rounded up to multiples of 8
    precision:  "fp16" (from ``<model>.fp16.onnx``) or "fp32" (from the model's ONNX)
    rebuild:    build when the cached plan is missing or stale; False raises StaleEngine instead
    cuda_graph: replay the steady-state copies + inference as a CUDA graph
    device:     CUDA device index
    """

    name = "tensorrt"

    def __init__(self, model: ModelInfo, cache_dir: str | Path = "", profile: str | Profile = DEFAULT_PROFILE_TEXT,
                 precision: Precision = "fp16", rebuild: bool = True, cuda_graph: bool = False, device: int = 0) -> None:
        super().__init__(model)
        self.cache_dir = Path(cache_dir) if cache_dir else engine_cache_dir()
        self.profile = parse_profile(profile) if isinstance(profile, str) else profile
        self.precision: Precision = precision
        self.rebuild, self.cuda_graph, self.device = rebuild, cuda_graph, device
        self.counters = {"nonfinite_frames": 0, "fp32_fallbacks": 0, "graph_captures": 0}
        self._cuda: CudaDevice | None = None
        self._runtime: trt.Runtime | None = None
        self._logger: trt.ILogger | None = None
        self._engine: trt.ICudaEngine | None = None
        self._context: trt.IExecutionContext | None = None
        self._bufs: dict[str, Buffer] = {}
        self._shape: tuple[int, int] | None = None
        self._graph_state = "off"  # off | pending (next frame captures) | live
        self._warned_nonfinite = False

    @property
    def spec(self) -> EngineSpec:
        return EngineSpec(self.model, self.precision, self.profile, self.cache_dir)

    @property
    def device_name(self) -> str:
        return self._cuda.name() if self._cuda is not None else ""

    # -- lifecycle -------------------------------------------------------------------------
    def _open(self) -> None:
        trt_mod = import_tensorrt()
        self._cuda = CudaDevice(self.device).open()
        try:
            import tensorrt as trt

            facts = GpuFacts(self._cuda.name(), self._cuda.compute_capability(), str(trt_mod.__version__))
            self._logger = PyLogger.create()
            self._runtime = trt.Runtime(self._logger)
            self._allocate()
            self._activate(facts)
            log.info("TensorRT %s engine on %s (sm_%d%d), profile %s", self.precision, facts.name, *facts.compute_capability, self.profile.describe())
        except BaseException:
            self._close()
            raise

    def _allocate(self) -> None:
        """Every I/O buffer once, at the profile's maximum frame size."""
        assert self._cuda is not None
        h, w = self.profile.max
        sizes: dict[str, tuple[int, Any]] = {
            "frame": (h * w * 3, np.uint8), "style": (self.model.num_styles, np.float32), "strength": (1, np.float32),
            "output": (h * w * 3, np.uint8), "attention": (h * w, np.uint8), "check": (1, np.float32),
        }
        self._bufs = {name: self._cuda.alloc(n, dtype) for name, (n, dtype) in sizes.items()}

    def _activate(self, facts: GpuFacts) -> None:
        """Load (or build) the plan for ``self.precision`` and bind the buffers to a new context."""
        assert self._runtime is not None
        self._engine = load_or_build(self._runtime, self.spec, facts, self.rebuild)
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise EngineError("TensorRT could not create an execution context (out of GPU memory?)")
        names = {self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)}
        for name in sorted(names):
            if not self._context.set_tensor_address(name, self._bufs[name].ptr):
                raise EngineError(f"set_tensor_address({name!r}) failed")
        self._has_check = "check" in names
        self._facts = facts
        self._shape = None

    def _release_engine(self) -> None:
        self._context = None  # context before engine: it refers to it
        self._engine = None

    def _close(self) -> None:
        """Free TensorRT objects, then buffers and stream, while the context is current; then pop it."""
        if self._cuda is not None:
            self._cuda.synchronize() if self._context is not None else None
        self._release_engine()
        self._runtime = None
        self._logger = None
        self._bufs = {}
        if self._cuda is not None:
            cuda, self._cuda = self._cuda, None
            cuda.close()

    # -- running ---------------------------------------------------------------------------
    def _bind(self, h: int, w: int) -> None:
        if not self.profile.contains(h, w):
            lo, hi = self.profile.min, self.profile.max
            raise InputError(f"frame: padded size {w}x{h} is outside the engine's profile {lo[1]}x{lo[0]} .. {hi[1]}x{hi[0]}; "
                             f"resize the frames or rebuild with a wider profile (--trt-profile)")
        assert self._context is not None
        if not self._context.set_input_shape("frame", (1, h, w, 3)):
            raise InputError(f"frame: TensorRT rejected input shape [1, {h}, {w}, 3]")
        self._shape = (h, w)
        self._graph_state = "pending" if self.cuda_graph else "off"

    def _enqueue(self) -> None:
        """Async copies in, inference, async copies out, all on the one stream."""
        assert self._cuda is not None and self._context is not None and self._shape is not None
        h, w = self._shape
        b, cuda = self._bufs, self._cuda
        cuda.to_device(b["frame"], h * w * 3)
        cuda.to_device(b["style"], 4 * self.model.num_styles)
        cuda.to_device(b["strength"], 4)
        if not self._context.execute_async_v3(cuda.stream_handle):
            raise EngineError(f"TensorRT execute_async_v3 failed on frame [1, {h}, {w}, 3]")
        cuda.to_host(b["output"], h * w * 3)
        cuda.to_host(b["attention"], h * w)
        if self._has_check:
            cuda.to_host(b["check"], 4)

    def _execute(self) -> None:
        assert self._cuda is not None
        if self._graph_state == "live":
            self._cuda.launch()
        else:
            self._enqueue()  # also flushes TensorRT's deferred shape work before any capture
        self._cuda.synchronize()
        if self._graph_state == "pending":
            self._graph_state = "live" if self._cuda.capture(self._enqueue) else "off"
            self.counters["graph_captures"] += self._graph_state == "live"

    def _run(self, frame: U8, style: F32, strength: float) -> tuple[U8, U8]:
        h, w = frame.shape[1], frame.shape[2]
        if (h, w) != self._shape:
            self._bind(h, w)
        b = self._bufs
        np.copyto(b["frame"].view((1, h, w, 3)), frame)
        np.copyto(b["style"].view((1, self.model.num_styles)), style)
        b["strength"].host[0] = strength
        if self._has_check:
            b["check"].host[0] = np.nan  # a frame whose check never arrives counts as bad
        self._execute()
        if self._has_check and not np.isfinite(b["check"].host[0]):
            return self._on_nonfinite(frame, style, strength)
        return b["output"].view((1, h, w, 3)), b["attention"].view((1, h, w, 1))

    def _on_nonfinite(self, frame: U8, style: F32, strength: float) -> tuple[U8, U8]:
        self.counters["nonfinite_frames"] += 1
        if not self._warned_nonfinite:
            self._warned_nonfinite = True
            log.warning("TensorRT %s engine produced NaN/Inf (check=%s); switching to an FP32 engine", self.precision, self._bufs["check"].host[0])
        if self.precision == "fp32":
            raise NonFiniteOutput("TensorRT produced NaN/Inf in FP32: the model's weights are not finite")
        self._cuda.synchronize() if self._cuda is not None else None
        self._release_engine()
        self.precision = "fp32"
        self.counters["fp32_fallbacks"] += 1
        self._long_call(FALLBACK_BUILD_S)  # a build takes minutes where no FP32 plan is cached
        self._activate(self._facts)
        return self._run(frame, style, strength)
