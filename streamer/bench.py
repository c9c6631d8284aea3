"""``stylecast bench``: the real pipeline on the demo source, measured.

Reports per-stage median ms (capture, infer, render — which includes the stabiliser —, publish), end-to-end fps and
capture→publish latency p50/p95 over the frames published after a warm-up.
"""

from __future__ import annotations

import logging
import platform
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from streamer.client import Subscriber
from streamer.config import ServeConfig
from streamer.daemon import build_pipeline
from streamer.stats import Stats, summarise
from streamer.wire import TOPIC_OVERLAY, TOPIC_STYLISED

log = logging.getLogger(__name__)


_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def free_tcp_port() -> int:
    """A loopback TCP port that is free now and that this process has not been given before.

    The kernel may hand the same ephemeral port to two ``bind(0)`` calls in a row once the first
    socket is closed, so a caller asking for a publish and a control port could get one port
    twice (seen in CI: "control: must differ from publish"). Remembering what was handed out
    rules that out within a process; another process may still take the port before it is bound.
    """
    with _handed_out_lock:
        for _ in range(1000):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", 0))
                port: int = s.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise OSError("no loopback TCP port left that this process has not already been given")


SUBSCRIBE: dict[str, tuple[str, ...]] = {"stylised": (TOPIC_STYLISED,), "overlay": (TOPIC_OVERLAY,), "both": (TOPIC_STYLISED, TOPIC_OVERLAY), "none": ()}
"""What the bench's own subscriber reads (``--subscribe``): the daemon encodes and sends only
what someone subscribed to, so a bench with no subscriber would leave publishing out."""


def _viewer(endpoint: str, topics: tuple[str, ...], stop: threading.Event, received: list[float]) -> None:
    """A subscriber as a viewer is one: every message of ``topics`` received and parsed; the
    monotonic receive time of each appended to ``received``."""
    with Subscriber(endpoint, topics=[t + "\x00" for t in topics]) as sub:
        while not stop.is_set():
            if sub.recv(0.2) is not None:
                received.append(time.monotonic())


def run_bench(cfg: ServeConfig, seconds: float, warmup: float, subscribe: str = "stylised") -> dict[str, Any]:
    """Run ``cfg`` (its endpoints replaced by free loopback ports) for warmup + seconds, with a
    subscriber in this process reading the ``SUBSCRIBE[subscribe]`` topics."""
    cfg = replace(cfg, publish=f"tcp://127.0.0.1:{free_tcp_port()}", control=f"tcp://127.0.0.1:{free_tcp_port()}", max_frames=0)
    stats = Stats(window=100_000)
    pipe = build_pipeline(cfg, stats)
    t_start = [0.0]
    received: list[float] = []
    done = threading.Event()
    if SUBSCRIBE[subscribe]:
        threading.Thread(target=_viewer, args=(cfg.publish, SUBSCRIBE[subscribe], done, received), name="stylecast-bench-viewer", daemon=True).start()

    def stopper() -> None:
        if not pipe.first_published.wait(120):
            pipe.stop()
            return
        time.sleep(warmup)
        t_start[0] = time.monotonic()
        time.sleep(seconds)
        pipe.stop()

    threading.Thread(target=stopper, daemon=True).start()
    try:
        pipe.run()
    finally:
        done.set()
    t_end = time.monotonic()
    got = [t for t in received if t_start[0] <= t <= t_end]
    frames = [f for f in stats.timings() if f.t_publish >= t_start[0]]
    if not frames:
        raise RuntimeError("no frames were published during the measurement")
    span = frames[-1].t_publish - frames[0].t_publish
    result: dict[str, Any] = {
        "source": cfg.source, "size": [cfg.width, cfg.height], "backend": stats.status.get("backend"),
        "model": str(cfg.model_path), "stabilise": cfg.stabilise, "frames": len(frames), "seconds": round(t_end - t_start[0], 2),
        "fps": round((len(frames) - 1) / span, 2) if span > 0 else None,
        **summarise(frames),
        "infer_ms_p95": round(float(np.percentile([f.infer_ms for f in frames], 95)), 2),
        "drops": {"capture": pipe.frames.dropped, "infer": pipe.results.dropped},
        "subscribed": list(SUBSCRIBE[subscribe]),
        "received_fps": round(len(got) / (t_end - t_start[0]), 2) if SUBSCRIBE[subscribe] else None,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": _cores(), "python": platform.python_version()},
    }
    return result


BENCH_SIZES: tuple[tuple[int, int], ...] = ((640, 360), (1280, 720), (1920, 1080))
"""(width, height) measured by ``stylecast bench --backend tensorrt`` when no --sizes are given."""


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``"640x360,1280x720"`` → ``[(640, 360), (1280, 720)]`` (width, height)."""
    from engines.trt_manifest import parse_size

    return [(w, h) for h, w in (parse_size(part) for part in text.split(",") if part.strip())]


def device_name(backend: str | None) -> str:
    """The GPU for TensorRT (from pycuda), else the CPU."""
    if backend == "tensorrt":
        from engines.tensorrt import probe

        return probe()[1]
    return f"CPU {platform.processor() or platform.machine()} ({_cores()} cores)"


def run_bench_sizes(cfg: ServeConfig, sizes: list[tuple[int, int]], seconds: float, warmup: float, subscribe: str = "stylised") -> dict[str, Any]:
    """``run_bench`` at each (width, height): engine latency (infer stage median/p95 ms, which
    includes the host↔device copies) and end-to-end fps, with the device name."""
    runs = [run_bench(replace(cfg, width=w, height=h), seconds, warmup, subscribe) for w, h in sizes]
    backend = runs[0]["backend"] if runs else cfg.backend
    return {"backend": backend, "device": device_name(backend), "model": str(cfg.model_path), "runs": runs}


def format_sizes_table(r: dict[str, Any]) -> str:
    lines = [f"stylecast bench: backend {r['backend']} on {r['device']}", "size        infer ms p50   p95   end-to-end fps"]
    for run in r["runs"]:
        w, h = run["size"]
        lines.append(f"{w}x{h:<7} {run['stage_ms'].get('infer', float('nan')):>11.2f} {run['infer_ms_p95']:>6.2f} {run['fps']!s:>15}")
    return "\n".join(lines)


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def format_table(r: dict[str, Any]) -> str:
    st, lat = r.get("stage_ms", {}), r.get("latency_ms", {})
    lines = [
        f"stylecast bench: {r['source']} {r['size'][0]}x{r['size'][1]}, backend {r['backend']}, stabilise {r.get('stabilise', 0)}, {r['frames']} frames in {r['seconds']} s",
        "stage      median ms",
        *(f"{k:<10} {v:>9.2f}" for k, v in st.items()),
        f"end-to-end fps        {r['fps']}" + (f" (received by the subscriber: {r['received_fps']} msg/s of {', '.join(r['subscribed'])})" if r.get("subscribed") else " (no subscriber)"),
        f"latency p50 / p95 ms  {lat.get('p50')} / {lat.get('p95')}",
        f"drops (capture/infer) {r['drops']['capture']} / {r['drops']['infer']}",
    ]
    return "\n".join(lines)


def compare_models(models: dict[str, Path], size: tuple[int, int], iters: int = 30, threads: int = 0) -> dict[str, Any]:
    """Engine-only latency of several ONNX models on the same demo frames, interleaved so that
    machine noise hits all of them alike. Returns median/p90 ms per model and each model's
    speed-up over the slowest."""
    from contextlib import ExitStack

    import engines
    from streamer.sources import DemoSource

    with DemoSource(size, fps=240) as demo:
        frames = [demo._render(t * 0.2) for t in range(8)]
    times: dict[str, list[float]] = {k: [] for k in models}
    with ExitStack() as stack:
        engs = {k: stack.enter_context(engines.create_engine("onnxruntime", p, threads=threads)) for k, p in models.items()}
        weights = {k: np.eye(e.model.num_styles, dtype=np.float32)[0] for k, e in engs.items()}
        for i in range(iters + 3):
            for k, e in engs.items():
                t0 = time.perf_counter()
                e.infer(frames[i % len(frames)], weights[k], 1.0)
                if i >= 3:  # warm-up
                    times[k].append((time.perf_counter() - t0) * 1000)
    med = {k: float(np.median(v)) for k, v in times.items()}
    slowest = max(med.values())
    return {
        "size": list(size), "iters": iters,
        "models": {k: {"path": str(models[k]), "median_ms": round(med[k], 2), "p90_ms": round(float(np.percentile(times[k], 90)), 2),
                       "fps": round(1000 / med[k], 1), "speedup_vs_slowest": round(slowest / med[k], 2)} for k in models},
    }
