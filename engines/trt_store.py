"""The engine cache: reuse a plan whose manifest matches this machine and model, else rebuild.

``load_or_build`` never returns an engine it has not checked: a missing or unreadable manifest, a
manifest that differs from what this model/GPU/TensorRT/profile needs, a plan whose sha256 is not
the one recorded, a ``deserialize_cuda_engine`` that returns None and an engine whose I/O is not
the stylecast contract all lead to a rebuild, or to ``StaleEngine`` listing every reason when
rebuilding is disabled.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engines.cache import EnginePaths, Precision, atomic_write, engine_paths, fp16_onnx_path, sha256_file
from engines.errors import EngineError, ModelError
from engines.model import ModelInfo
from engines.trt_build import build_plan, engine_io
from engines.trt_manifest import GpuFacts, Profile, compare_manifest, expected_io, io_matches, make_manifest, manifest_json, read_manifest

if TYPE_CHECKING:
    import tensorrt as trt

log = logging.getLogger(__name__)


class StaleEngine(EngineError):
    """The cached engine cannot be used and rebuilding is disabled; ``reasons`` says why."""

    def __init__(self, plan: Path, reasons: list[str]) -> None:
        self.reasons = tuple(reasons)
        super().__init__(f"cached engine {plan} is not usable and rebuilding is disabled:\n  " + "\n  ".join(reasons))


@dataclass(frozen=True)
class EngineSpec:
    """Which engine: model, precision, profile, and the cache folder it lives in."""

    model: ModelInfo
    precision: Precision
    profile: Profile
    cache_dir: Path

    @property
    def paths(self) -> EnginePaths:
        return engine_paths(self.cache_dir, self.model.onnx_path, self.precision, self.profile.describe())

    def source_onnx(self) -> Path:
        """FP16 plans come from ``<model>.fp16.onnx``, FP32 plans from the model itself."""
        if self.precision == "fp32":
            return self.model.onnx_path
        src = fp16_onnx_path(self.model.onnx_path)
        if not src.is_file():
            raise ModelError(f"{src} not found: FP16 engines are built from the mixed-precision ONNX that "
                             f"'stylecast export' writes beside the model (or use precision fp32)")
        return src

    def expected_manifest(self, facts: GpuFacts) -> dict[str, Any]:
        io = expected_io(self.model.num_styles, with_check=self.precision == "fp16")
        return make_manifest(sha256_file(self.source_onnx()), facts, self.precision, self.profile, self.model.styles, io)


def stale_reasons(paths: EnginePaths, expected: dict[str, Any]) -> tuple[list[str], bytes | None]:
    """``([], plan bytes)`` when the cached plan may be used, else ``(reasons, None)``."""
    if not paths.plan.is_file():
        return [f"no engine at {paths.plan}"], None
    manifest, why = read_manifest(paths.manifest)
    if manifest is None:
        return [why], None
    reasons = compare_manifest(expected, manifest)
    plan = paths.plan.read_bytes()
    if manifest.get("plan_sha256") != hashlib.sha256(plan).hexdigest():
        reasons.append(f"plan {paths.plan} does not match the sha256 its manifest records")
    return reasons, (None if reasons else plan)


def deserialize(runtime: trt.Runtime, plan: bytes) -> trt.ICudaEngine | None:
    """``deserialize_cuda_engine`` returns None (and logs) on a plan from another TensorRT/GPU."""
    engine: trt.ICudaEngine | None = runtime.deserialize_cuda_engine(plan)
    return engine


def load_or_build(runtime: trt.Runtime, spec: EngineSpec, facts: GpuFacts, rebuild: bool = True) -> trt.ICudaEngine:
    """A checked engine for ``spec`` on this GPU; builds (and caches) it when needed."""
    paths = spec.paths
    expected = spec.expected_manifest(facts)
    reasons, plan = stale_reasons(paths, expected)
    if plan is not None:
        engine = deserialize(runtime, plan)
        if engine is None:
            reasons = [f"deserialize_cuda_engine returned None for {paths.plan}"]
        elif not io_matches(engine_io(engine), expected["io"]):
            reasons = [f"engine I/O {engine_io(engine)} differs from {expected['io']}"]
        else:
            log.info("reusing TensorRT engine %s (%s, %s)", paths.plan, spec.precision, spec.profile.describe())
            return engine
    if not rebuild:
        raise StaleEngine(paths.plan, reasons)
    log.info("building TensorRT engine %s because: %s", paths.plan, "; ".join(reasons))
    return _build_and_store(runtime, spec, paths, expected)


def _build_and_store(runtime: trt.Runtime, spec: EngineSpec, paths: EnginePaths, expected: dict[str, Any]) -> trt.ICudaEngine:
    t0 = time.monotonic()
    plan = build_plan(spec.source_onnx(), spec.profile, paths.timing_cache)
    engine = deserialize(runtime, plan)
    if engine is None:
        raise EngineError(f"TensorRT could not deserialize the engine it just built from {spec.source_onnx()}")
    actual_io = engine_io(engine)
    if not io_matches(actual_io, expected["io"]):
        raise ModelError(f"{spec.source_onnx()}: engine I/O {actual_io} is not the stylecast contract {expected['io']}")
    built = {"plan_sha256": hashlib.sha256(plan).hexdigest(), "plan_bytes": len(plan),
             "build_seconds": round(time.monotonic() - t0, 1), "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        atomic_write(paths.plan, plan)
        atomic_write(paths.manifest, manifest_json({**expected, "io": actual_io, **built}))  # after the plan: a crash between leaves a sha mismatch → rebuild
    except OSError as e:  # the engine works; only the next start pays for the build again
        log.warning("cannot cache the TensorRT engine in %s (%s); running it uncached, so the next start builds it again", paths.plan.parent, e)
    return engine
