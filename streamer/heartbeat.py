"""Per-stage heartbeats: every pipeline loop beats on each turn (idle waits and reconnect backoff
included), so "all stages fresh" means no stage is stuck, whether or not frames are arriving.

A stage about to make a call that may legitimately block for a known time (opening a network
camera with a 5 s timeout) beats with ``grace_s`` = that time, so a slow-but-bounded call is not
mistaken for a hang; an unbounded hang (a wedged GPU call) still goes stale.
"""

from __future__ import annotations

import threading
import time

PIPELINE_STAGES = ("capture", "infer", "publish", "control")


class Heartbeats:
    """Thread-safe; stages call ``beat``, the service watchdog calls ``stale``."""

    def __init__(self, stages: tuple[str, ...] = PIPELINE_STAGES) -> None:
        self.stages = stages
        self._lock = threading.Lock()
        self._due: dict[str, float] = {}  # stage → monotonic s its last beat (plus grace) counts until

    def beat(self, stage: str, grace_s: float = 0.0) -> None:
        if stage not in self.stages:
            raise KeyError(f"unknown stage {stage!r}; expected one of {list(self.stages)}")
        with self._lock:
            self._due[stage] = time.monotonic() + grace_s

    def started(self) -> bool:
        """Every stage has beaten at least once (its resources are open, its loop is turning)."""
        with self._lock:
            return all(s in self._due for s in self.stages)

    def stale(self, max_age_s: float, now: float | None = None) -> list[str]:
        """Stages that never beat, or whose last beat (plus its grace) is older than ``max_age_s``."""
        t = time.monotonic() if now is None else now
        with self._lock:
            return [s for s in self.stages if s not in self._due or t - self._due[s] > max_age_s]

    def ages(self) -> dict[str, float]:
        """Seconds since each stage's last beat (negative while inside a grace period)."""
        now = time.monotonic()
        with self._lock:
            return {s: round(now - d, 3) for s, d in self._due.items()}
