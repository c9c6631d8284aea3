"""Optional Prometheus endpoint (``metrics = "127.0.0.1:9108"``; off by default). Needs the
``metrics`` extra (prometheus-client), imported only when the endpoint is enabled.

Exposed (all prefixed ``stylecast_``): ``fps``, ``frames_published_total``, ``drops_total{stage}``
(frames the single-slot hand-offs replaced), ``reconnects_total``, ``source_errors_total``,
``invalid_frames_total``, ``source_up``, ``engine_info{backend}``, ``stage_latency_seconds{stage}``
(histograms per frame: capture, infer, render, publish), ``latency_seconds`` (capture → publish)
and ``heartbeat_age_seconds{stage}`` (what the systemd watchdog looks at).
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from streamer.config import ConfigError, parse_host_port
from streamer.stats import FrameTiming

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client import Histogram

    from streamer.pipeline import Pipeline

log = logging.getLogger(__name__)

STAGES = ("capture", "infer", "render", "publish")
BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.033, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)


def check_available() -> None:
    """ConfigError if prometheus-client is not installed (checked before anything starts)."""
    if importlib.util.find_spec("prometheus_client") is None:
        raise ConfigError("metrics: needs the prometheus-client package: pip install 'stylecast[metrics]'")


class _PipelineCollector:
    """Reads the pipeline's counters at scrape time (no per-frame cost for them)."""

    def __init__(self, pipe: Pipeline) -> None:
        self.pipe = pipe

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

        s = self.pipe.status()
        counters: dict[str, int] = s.get("counters", {})
        yield GaugeMetricFamily("stylecast_fps", "Frames published per second (last 2 s)", value=float(s.get("fps", 0.0)))
        yield CounterMetricFamily("stylecast_frames_published", "Frames published", value=counters.get("published", 0))
        drops = CounterMetricFamily("stylecast_drops", "Frames replaced in a single-slot hand-off before the next stage took them", labels=["stage"])
        for stage, n in s.get("drops", {}).items():
            drops.add_metric([stage], n)
        yield drops
        for name, text in (("reconnects", "Source reconnect attempts"), ("source_errors", "Source open/read failures"),
                           ("invalid_frames", "Frames rejected by shape/dtype checks")):
            yield CounterMetricFamily(f"stylecast_{name}", text, value=counters.get(name, 0))
        yield GaugeMetricFamily("stylecast_source_up", "1 while the source delivers frames", value=1.0 if s.get("source_state") == "streaming" else 0.0)
        yield InfoMetricFamily("stylecast_engine", "Inference backend in use", value={"backend": str(s.get("backend", "loading"))})
        ages = GaugeMetricFamily("stylecast_heartbeat_age_seconds", "Seconds since each pipeline stage last looped", labels=["stage"])
        for stage, age in self.pipe.heartbeats.ages().items():
            ages.add_metric([stage], max(age, 0.0))
        yield ages


class MetricsServer:
    """HTTP ``/metrics`` on ``endpoint`` (HOST:PORT) for ``pipe``; served by prometheus-client's own
    thread, started in ``__enter__`` and shut down by ``close()`` (idempotent)."""

    def __init__(self, endpoint: str, pipe: Pipeline) -> None:
        self.host, self.port = parse_host_port(endpoint)
        self.pipe = pipe
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._stage: dict[str, Histogram] = {}
        self._latency: Histogram | None = None

    def __enter__(self) -> Self:
        check_available()
        from prometheus_client import CollectorRegistry, Histogram, start_http_server

        registry = CollectorRegistry()  # our own: nothing global, two daemons in one test process are fine
        registry.register(_PipelineCollector(self.pipe))
        stage = Histogram("stylecast_stage_latency_seconds", "Time per frame in each stage", ["stage"], registry=registry, buckets=BUCKETS_S)
        self._stage = {s: stage.labels(s) for s in STAGES}
        self._latency = Histogram("stylecast_latency_seconds", "Capture to publish, per frame", registry=registry, buckets=BUCKETS_S)
        try:
            self._server, self._thread = start_http_server(self.port, self.host, registry)
        except OSError as e:
            raise ConfigError(f"metrics: cannot serve on {self.host}:{self.port}: {e}") from e
        self.pipe.frame_observers.append(self.observe)
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)
        return self

    def observe(self, t: FrameTiming) -> None:
        """One published frame (called on the publish thread)."""
        for name, ms in zip(STAGES, (t.capture_ms, t.infer_ms, t.render_ms, t.publish_ms), strict=True):
            self._stage[name].observe(ms / 1000)
        if self._latency is not None:
            self._latency.observe(t.latency_ms / 1000)

    def close(self) -> None:
        if self.observe in self.pipe.frame_observers:
            self.pipe.frame_observers.remove(self.observe)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
