"""``stylecast serve``: resolve the backend, build the pipeline, run until stopped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import zmq

import engines
from streamer.config import BUNDLED_MODELS, ServeConfig, bundled_model_path, outside_profile, validate
from streamer.pipeline import Pipeline
from streamer.stats import Stats

if TYPE_CHECKING:
    from streamer.security import CurveAuthenticator
    from streamer.service import Reloader

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
    outside = outside_profile(cfg)
    if outside:
        return False, outside
    try:
        with TensorRTEngine(engines.load_model_info(with_model(cfg, "tensorrt").model_path), **tensorrt_options(cfg)) as eng:  # type: ignore[arg-type]
            trial_frame(eng, cfg.width, cfg.height)
            return True, f"{why}, engine {eng.spec.paths.plan}"
    except engines.EngineError as e:
        return False, f"TensorRT engine unavailable: {e}"
    except Exception as e:  # noqa: BLE001 - see below
        # No machine this was developed on has had TensorRT, so a TensorRT or driver version can
        # fail in ways the engine does not map to EngineError (a changed binding API, say). With
        # `auto` that must cost the TensorRT speed, not the service: it restarted in a loop on the
        # same error. The traceback is logged for a bug report.
        log.warning("TensorRT failed with an unexpected error; auto falls back to ONNX Runtime", exc_info=True)
        return False, f"TensorRT failed: {type(e).__name__}: {e}"


def trial_frame(eng: engines.BaseEngine, width: int, height: int) -> None:
    """One mid-grey ``width``×``height`` frame through an open engine, before ``auto`` commits to it:
    the whole inference path (bindings, copies, output layout) runs once. EngineError if the
    output is not a [height, width, 3] frame with a [height, width] attention map."""
    style = np.zeros(eng.model.num_styles, np.float32)
    style[0] = 1.0
    res = eng.infer(np.full((height, width, 3), 128, np.uint8), style, 1.0)
    if res.output.shape != (height, width, 3) or res.attention.shape != (height, width):
        raise engines.ModelError(f"trial frame {width}x{height}: output {res.output.shape}, attention {res.attention.shape}")


def check_model_runs(cfg: ServeConfig) -> str:
    """Open ``cfg``'s model in ONNX Runtime on the CPU and run one trial frame at its size: what
    ``serve --dry-run`` does beyond reading the sidecar, so that a model serve would refuse (bytes
    that are not ONNX, a truncated file, inputs or outputs other than the contract's, a style
    count the sidecar does not match, an output of the wrong type or size) is refused by dry-run
    too, as ModelError. The TensorRT backend builds from the same graph. Returns what was done."""
    try:
        with engines.create_engine("onnxruntime", cfg.model_path, threads=1) as eng:
            trial_frame(eng, cfg.width, cfg.height)
    except engines.BackendUnavailable as e:
        return f"model not run ({e})"
    return f"model ran one {cfg.width}x{cfg.height} frame in onnxruntime"


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


def ort_has_cuda() -> bool:
    """ONNX Runtime is installed with its CUDA provider (the ``gpu`` extra's onnxruntime-gpu)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def pick_tier(backend: str) -> tuple[str, str]:
    """The bundled model's tier for ``backend`` and why: quality where a GPU runs it (TensorRT,
    or ONNX Runtime's CUDA provider), fast on a CPU."""
    if backend == "tensorrt":
        return "quality", "TensorRT runs it on the GPU"
    if ort_has_cuda():
        return "quality", "ONNX Runtime has its CUDA provider"
    return "fast", "ONNX Runtime on the CPU"


def with_model(cfg: ServeConfig, backend: str, quiet: bool = True) -> ServeConfig:
    """``cfg`` with its model named: as given by ``--model``, else the bundled tier that fits
    ``backend`` (``pick_tier``), logged with the reason unless ``quiet``."""
    if cfg.model:
        return cfg
    tier, why = pick_tier(backend)
    path = bundled_model_path(tier)
    if tier not in BUNDLED_MODELS:
        why = f"{why}; the {tier} tier is not bundled yet, so a CPU runs the quality one too, slower: docs/BENCHMARKS.md"
        tier = "quality"
    if not quiet:
        log.info("model: the bundled %s tier (%s): %s", tier, why, path)
    return replace(cfg, model=str(path))


def planned_backend(cfg: ServeConfig) -> str:
    """The backend ``serve`` would try first, without opening it (``--dry-run``): ``auto`` is
    TensorRT where its runtime, pycuda and a GPU are there (``engines.tensorrt.probe``)."""
    if cfg.backend != "auto":
        return cfg.backend
    from engines.tensorrt import probe

    return "tensorrt" if probe()[0] else "onnxruntime"


def model_info(cfg: ServeConfig) -> engines.ModelInfo:
    """The model's sidecar, checked against ``cfg.style``; ModelError (exit 2) if either is wrong.
    What ``serve --dry-run`` checks beyond ``validate``, without starting anything."""
    info = engines.load_model_info(cfg.model_path)
    if cfg.style and cfg.style not in info.styles:
        raise engines.ModelError(f"style: {cfg.style!r} is not in the model; available: {list(info.styles)}")
    return info


def build_pipeline(cfg: ServeConfig, stats: Stats | None = None, ctx: zmq.Context[Any] | None = None) -> Pipeline:
    validate(cfg)
    curve = None
    if cfg.curve:
        from streamer.security import load_server_keys

        curve = load_server_keys(cfg.curve_server_key, cfg.curve_clients_dir)
    name, options = resolve_backend(cfg)
    cfg = with_model(cfg, name, quiet=False)
    info = model_info(cfg)
    engines.backend_class(name)  # import now, so a missing runtime fails before threads start

    def factory() -> engines.BaseEngine:
        return engines.create_engine(name, cfg.model_path, **options)

    return Pipeline(cfg, factory, info.styles, stats, ctx, curve)


def serve(cfg: ServeConfig, stop: threading.Event | None = None, on_ready: Callable[[Pipeline], None] | None = None,
          reloader: Reloader | None = None) -> Pipeline:
    """Run until ``stop`` is set, ``max_frames`` frames are out, or a stage fails (re-raised).

    Everything that can be checked is checked before any thread starts (config, keys, free ports,
    the metrics package), so a bad config fails with ConfigError and nothing half-started. Under
    systemd (``$NOTIFY_SOCKET``) a service thread reports READY/STATUS/WATCHDOG/STOPPING;
    ``reloader`` (SIGHUP) applies what can change live."""
    from streamer.settings import check_ports

    validate(cfg)
    check_ports(cfg)
    raise_fd_limit()
    if cfg.metrics:
        from streamer.metrics import check_available

        check_available()
    ctx: zmq.Context[Any] = zmq.Context() if cfg.curve else zmq.Context.instance()  # own context: its own ZAP handler
    try:
        pipe = build_pipeline(cfg, ctx=ctx)
        with ExitStack() as stack:
            _start_extras(stack, pipe, reloader)
            _serve(pipe, cfg.model, stop, on_ready, reloader)
    finally:
        if cfg.curve:  # term() waits for every socket to be closed by its own thread; never close them from here
            term = threading.Thread(target=ctx.term, name="stylecast-zmq-term", daemon=True)
            term.start()
            term.join(2.0)
    return pipe


WANT_FDS = 65536
"""Descriptors the daemon asks for: each TCP peer (subscriber, control client, HTTP viewer, a
port scanner's idle connection) holds one, and at the usual soft limit of 1024 about 1,000 idle
connections left no descriptor to accept the control client's (control unreachable ~18 s)."""


def raise_fd_limit(want: int = WANT_FDS) -> int:
    """Raise this process's soft RLIMIT_NOFILE to ``want`` (at most the hard limit; never lower);
    returns the soft limit now. The units set ``LimitNOFILE`` to the same."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as e:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, e)
    if soft != resource.RLIM_INFINITY and soft < 4096:
        log.warning("open-file limit is %d: a few thousand idle connections could lock out control (systemd: LimitNOFILE)", soft)
    return int(soft)


def _revoke(auth: CurveAuthenticator, pipe: Pipeline) -> None:
    """SIGHUP's CURVE step: re-read the allow-list; if keys were removed, end every session so
    that only allowed keys come back (libzmq checks a key only at the handshake)."""
    if auth.reload():
        log.info("CURVE: dropping every client's session; allowed clients reconnect by themselves")
        pipe.drop_sessions()


def _start_extras(stack: ExitStack, pipe: Pipeline, reloader: Reloader | None) -> None:
    """The CURVE authenticator (before any socket binds) and the metrics endpoint; closed on exit."""
    if pipe.curve is not None:
        from streamer.security import CurveAuthenticator

        auth = stack.enter_context(CurveAuthenticator(pipe.ctx, pipe.curve.clients_dir))
        if reloader is not None:
            reloader.extra.append(lambda: _revoke(auth, pipe))
    if pipe.cfg.metrics:
        from streamer.metrics import MetricsServer

        stack.enter_context(MetricsServer(pipe.cfg.metrics, pipe))


def _serve(pipe: Pipeline, model: str, stop: threading.Event | None, on_ready: Callable[[Pipeline], None] | None, reloader: Reloader | None) -> None:
    """``model``: the model as configured ("" for the bundled tier ``with_model`` chose), which a
    reloaded config is compared with: the choice is not a change of the config."""
    from streamer.service import ServiceLoop

    cfg = pipe.cfg
    service = threading.Thread(target=ServiceLoop(pipe, replace(cfg, model=model), reloader).run, name="stylecast-service", daemon=True)
    service.start()
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
    try:
        pipe.run()
    finally:
        pipe.stop()
        service.join(2.0)  # STOPPING=1 goes out before the process exits
