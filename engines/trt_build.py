"""Build a serialized TensorRT engine (a "plan") from the exported ONNX.

Strongly typed networks only: precision is whatever the ONNX says. ``<model>.fp16.onnx``
(training/fp16.py) is FP16 with instance norm in FP32, so its plan runs FP16 kernels without
``BuilderFlag.FP16``, which TensorRT 11 removed; the FP32 ONNX gives an FP32 plan. Works with
TensorRT 10.x and 11.x: optional API (the STRONGLY_TYPED creation flag, which 11.x accepts and
ignores, and IProgressMonitor) is probed with ``hasattr``, never by parsing the version.

``tensorrt`` is imported inside the functions, so importing this module is free and tests can
put a strict fake in ``sys.modules``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from engines.cache import atomic_write
from engines.errors import EngineError, ModelError
from engines.trt_manifest import IoSpec, Profile

if TYPE_CHECKING:
    import tensorrt as trt

log = logging.getLogger(__name__)

WORKSPACE_BYTES = 1 << 30
"""Builder scratch memory limit: tactics needing more are skipped. 1 GiB is plenty for this net."""


class OnnxParseError(ModelError):
    """TensorRT's ONNX parser rejected the model; ``errors`` holds every error it reported."""

    def __init__(self, onnx_path: Path, errors: list[str]) -> None:
        self.errors = tuple(errors)
        lines = "\n  ".join(errors) or "(the parser reported no error detail)"
        super().__init__(f"TensorRT cannot parse {onnx_path}: {len(errors)} error(s)\n  {lines}")


class EngineBuildError(EngineError):
    """The builder returned no engine (its log, at WARNING and above, says why)."""


class PyLogger:
    """Factory of a ``trt.ILogger`` that forwards to Python logging (TensorRT keeps a reference:
    the object must outlive every builder/runtime made with it)."""

    @staticmethod
    def create() -> trt.ILogger:
        import tensorrt as trt

        levels = {
            trt.ILogger.Severity.INTERNAL_ERROR: logging.CRITICAL, trt.ILogger.Severity.ERROR: logging.ERROR,
            trt.ILogger.Severity.WARNING: logging.WARNING, trt.ILogger.Severity.INFO: logging.DEBUG,
            trt.ILogger.Severity.VERBOSE: logging.DEBUG,
        }
        trt_log = logging.getLogger("tensorrt")

        class _Logger(trt.ILogger):  # type: ignore[misc,unused-ignore]  # Any without the stubs
            def __init__(self) -> None:
                trt.ILogger.__init__(self)

            def log(self, severity: trt.ILogger.Severity, msg: str) -> None:
                trt_log.log(levels.get(severity, logging.INFO), "%s", msg)

        return _Logger()


def network_flags() -> int:
    """``1 << STRONGLY_TYPED`` where the flag exists (required on 10.x, a no-op on 11.x)."""
    import tensorrt as trt

    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if flag is None:  # a TensorRT where strong typing is the only mode and the flag is gone
        return 0
    return 1 << int(flag)


def format_parser_error(err: trt.ParserError) -> str:
    """``node 12 (Conv /g/enc1/conv/Conv): UNSUPPORTED_NODE: <desc>``."""
    where = f"node {err.node()} ({err.node_operator()} {err.node_name()})" if err.node() >= 0 else "model"
    return f"{where}: {err.code()}: {err.desc()}"


def parse_onnx(network: trt.INetworkDefinition, logger: trt.ILogger, onnx_path: Path) -> trt.OnnxParser:
    """Parse into ``network``; raise OnnxParseError listing every parser error."""
    import tensorrt as trt

    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        raise OnnxParseError(onnx_path, [format_parser_error(parser.get_error(i)) for i in range(parser.num_errors)])
    return parser


def progress_monitor() -> trt.IProgressMonitor | None:
    """A monitor logging each top-level build phase with its time, where the API has one."""
    import tensorrt as trt

    if not hasattr(trt, "IProgressMonitor"):
        return None

    class _Monitor(trt.IProgressMonitor):  # type: ignore[misc,unused-ignore]  # Any without the stubs
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._started: dict[str, float] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            self._started[phase_name] = time.monotonic()
            log.log(logging.INFO if not parent_phase else logging.DEBUG, "build phase %s (%d steps)…", phase_name, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            t0 = self._started.pop(phase_name, time.monotonic())
            log.debug("build phase %s done in %.1f s", phase_name, time.monotonic() - t0)

    return _Monitor()


def configure(builder: trt.Builder, profile: Profile, timing_cache: bytes) -> trt.IBuilderConfig:
    """Builder config: workspace limit, the one optimisation profile on ``frame``, the timing cache
    (empty bytes = a fresh one) and the progress monitor."""
    import tensorrt as trt

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    opt = builder.create_optimization_profile()
    lo, mid, hi = (trt.Dims(list(shape)) for shape in profile.frame_shapes())
    opt.set_shape("frame", lo, mid, hi)
    config.add_optimization_profile(opt)
    cache = config.create_timing_cache(timing_cache)
    if cache is None or not config.set_timing_cache(cache, False):
        # Another GPU's, CUDA's or TensorRT's cache (a GPU swap or an upgrade, which also make the
        # plan stale): TensorRT refuses it. Start a fresh one; the build overwrites the file.
        log.warning("the TensorRT timing cache (%d bytes) is from another GPU or TensorRT version; starting a new one", len(timing_cache))
        config.set_timing_cache(config.create_timing_cache(b""), False)
    monitor = progress_monitor()
    if monitor is not None:
        config.progress_monitor = monitor
    return config


def build_plan(onnx_path: Path, profile: Profile, timing_cache_path: Path) -> bytes:
    """Parse ``onnx_path``, build a strongly typed plan for ``profile``, persist the timing cache
    (atomically, beside the plan) and return the serialized engine. Raises OnnxParseError or
    EngineBuildError."""
    import tensorrt as trt

    t0 = time.monotonic()
    logger = PyLogger.create()
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags())
    log.info("parsing %s", onnx_path)
    parser = parse_onnx(network, logger, onnx_path)
    cached = timing_cache_path.read_bytes() if timing_cache_path.is_file() else b""
    config = configure(builder, profile, cached)
    log.info("building TensorRT %s engine for %s, profile %s (minutes on first build; the timing cache "
             "at %s makes later builds faster)", trt.__version__, onnx_path.name, profile.describe(), timing_cache_path)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineBuildError(f"TensorRT could not build an engine from {onnx_path} (see the tensorrt log lines above)")
    try:
        atomic_write(timing_cache_path, bytes(config.get_timing_cache().serialize()))
    except OSError as e:  # only makes the next build slower
        log.warning("cannot save the TensorRT timing cache to %s: %s", timing_cache_path, e)
    data = bytes(plan)
    del parser  # the parser owns weights the network refers to until the build is done
    log.info("built %s engine in %.1f s, %.1f MB", onnx_path.name, time.monotonic() - t0, len(data) / 1e6)
    return data


def engine_io(engine: trt.ICudaEngine) -> IoSpec:
    """The I/O tensors of a deserialized engine, in the manifest's ``IoSpec`` form."""
    import tensorrt as trt

    io: IoSpec = {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        mode = "input" if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else "output"
        dtype = engine.get_tensor_dtype(name).name
        dims = engine.get_tensor_shape(name)
        io[name] = [mode, _DTYPES.get(dtype, dtype.lower()), [int(dims[k]) for k in range(len(dims))]]
    return io


_DTYPES = {"UINT8": "uint8", "FLOAT": "float32", "HALF": "float16", "INT32": "int32", "INT64": "int64", "BOOL": "bool"}
