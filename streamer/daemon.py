"""``stylecast serve``: resolve the backend, build the pipeline, run until stopped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import engines
from streamer.config import ServeConfig, validate
from streamer.pipeline import Pipeline
from streamer.stats import Stats

log = logging.getLogger(__name__)


def tensorrt_options(cfg: ServeConfig) -> dict[str, object]:
    return {"cache_dir": cfg.engine_cache, "profile": cfg.trt_profile, "precision": cfg.trt_precision,
            "rebuild": cfg.trt_rebuild, "cuda_graph": cfg.cuda_graph}


def _auto_tensorrt(cfg: ServeConfig) -> tuple[bool, str]:
    """TensorRT usable here, with a valid engine (built now, on this thread, if missing or stale)?"""
    from engines.tensorrt import TensorRTEngine, probe

    ok, why = probe()
    if not ok:
        return False, why
    try:
        with TensorRTEngine(engines.load_model_info(cfg.model_path), **tensorrt_options(cfg)) as eng:  # type: ignore[arg-type]
            return True, f"{why}, engine {eng.spec.paths.plan}"
    except engines.EngineError as e:
        return False, f"TensorRT engine unavailable: {e}"


def resolve_backend(cfg: ServeConfig) -> tuple[str, dict[str, object]]:
    """Backend name and options for ``cfg.backend``; ``auto`` explains its choice in the log:
    TensorRT when a GPU, TensorRT, pycuda and a valid engine are there, else ONNX Runtime (its
    CUDA provider when installed, else CPU)."""
    if cfg.backend == "auto":
        ok, why = _auto_tensorrt(cfg)
        if ok:
            log.info("backend auto → tensorrt (%s)", why)
            return "tensorrt", tensorrt_options(cfg)
        log.info("backend auto → onnxruntime, CUDA provider if installed else CPU (tensorrt not used: %s)", why)
        return "onnxruntime", {"threads": cfg.threads, "provider": "auto"}
    if cfg.backend == "tensorrt":
        return "tensorrt", tensorrt_options(cfg)
    return cfg.backend, {"threads": cfg.threads}


def build_pipeline(cfg: ServeConfig, stats: Stats | None = None) -> Pipeline:
    validate(cfg)
    info = engines.load_model_info(cfg.model_path)
    if cfg.style and cfg.style not in info.styles:
        raise engines.ModelError(f"style: {cfg.style!r} is not in the model; available: {list(info.styles)}")
    name, options = resolve_backend(cfg)
    engines.backend_class(name)  # import now, so a missing runtime fails before threads start

    def factory() -> engines.BaseEngine:
        return engines.create_engine(name, cfg.model_path, **options)

    return Pipeline(cfg, factory, info.styles, stats)


def serve(cfg: ServeConfig, stop: threading.Event | None = None, on_ready: Callable[[Pipeline], None] | None = None) -> Pipeline:
    """Run until ``stop`` is set, ``max_frames`` frames are out, or a stage fails (re-raised)."""
    pipe = build_pipeline(cfg)
    log.info("serving %s → %s (control %s), styles %s", cfg.source, cfg.publish, cfg.control, list(pipe.styles))
    if stop is not None:
        def stop_on_event() -> None:
            stop.wait()
            pipe.stop()

        threading.Thread(target=stop_on_event, name="stylecast-stop", daemon=True).start()
    if on_ready is not None:
        def ready_on_first_frame() -> None:
            pipe.first_published.wait()
            on_ready(pipe)

        threading.Thread(target=ready_on_first_frame, name="stylecast-ready", daemon=True).start()
    pipe.run()
    return pipe
