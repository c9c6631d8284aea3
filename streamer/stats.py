"""Per-frame timings and counters, summarised once a second into the stats message."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class FrameTiming:
    """Milliseconds spent per stage for one published frame, and capture→publish latency."""

    capture_ms: float
    infer_ms: float
    render_ms: float
    publish_ms: float
    latency_ms: float
    t_publish: float  # monotonic, s


class Stats:
    """Thread-safe: stages call ``count``/``record``; the publisher calls ``snapshot``."""

    def __init__(self, window: int = 600) -> None:
        self._lock = threading.Lock()
        self._frames: deque[FrameTiming] = deque(maxlen=window)
        self.counters: dict[str, int] = {}
        self.status: dict[str, Any] = {}
        self.t_start = time.monotonic()

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counters[name] = self.counters.get(name, 0) + n

    def counter(self, name: str) -> int:
        with self._lock:
            return self.counters.get(name, 0)

    def set_status(self, **kv: Any) -> None:
        with self._lock:
            self.status.update(kv)

    def record(self, t: FrameTiming) -> None:
        with self._lock:
            self._frames.append(t)
            self.counters["published"] = self.counters.get("published", 0) + 1

    def timings(self) -> list[FrameTiming]:
        with self._lock:
            return list(self._frames)

    def snapshot(self, window_s: float = 2.0) -> dict[str, Any]:
        """fps over the last ``window_s``; stage medians and latency p50/p95 over the same frames."""
        now = time.monotonic()
        with self._lock:
            recent = [f for f in self._frames if now - f.t_publish <= window_s]
            counters, status = dict(self.counters), dict(self.status)
        out: dict[str, Any] = {"uptime_s": round(now - self.t_start, 3), "counters": counters, **status}
        out["fps"] = round(len(recent) / window_s, 2) if now - self.t_start >= window_s else round(len(recent) / max(now - self.t_start, 1e-3), 2)
        out.update(summarise(recent))
        return out


def summarise(frames: list[FrameTiming]) -> dict[str, Any]:
    """Median ms per stage and latency p50/p95 (ms); empty dict for no frames."""
    if not frames:
        return {}
    arr = np.array([[f.capture_ms, f.infer_ms, f.render_ms, f.publish_ms, f.latency_ms] for f in frames])
    med = np.median(arr, axis=0)
    return {
        "stage_ms": {k: round(float(v), 2) for k, v in zip(("capture", "infer", "render", "publish"), med[:4], strict=True)},
        "latency_ms": {"p50": round(float(np.percentile(arr[:, 4], 50)), 2), "p95": round(float(np.percentile(arr[:, 4], 95)), 2)},
    }
