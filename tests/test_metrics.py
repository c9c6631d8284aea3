"""The optional Prometheus endpoint, scraped over loopback from a running daemon."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from streamer.bench import free_tcp_port
from streamer.client import request
from streamer.config import ServeConfig
from streamer.daemon import serve

pytest.importorskip("prometheus_client", reason="needs the metrics extra: pip install 'stylecast[metrics]'")


def scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200
        text = r.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def test_metrics_endpoint(tmp_path: Path) -> None:
    port = free_tcp_port()
    cfg = ServeConfig(source="demo", width=96, height=64, fps=20, backend="onnxruntime", publish=f"tcp://127.0.0.1:{free_tcp_port()}",
                      control=f"tcp://127.0.0.1:{free_tcp_port()}", metrics=f"127.0.0.1:{port}")
    stop = threading.Event()
    t = threading.Thread(target=serve, args=(cfg, stop), daemon=True)
    t.start()
    try:
        request(cfg.control, {"cmd": "status"}, timeout=60)
        deadline = time.monotonic() + 30
        while (m := scrape(f"http://127.0.0.1:{port}/metrics")).get("stylecast_frames_published_total", 0) < 20:
            assert time.monotonic() < deadline, m
            time.sleep(0.2)
        later = scrape(f"http://127.0.0.1:{port}/metrics")
    finally:
        stop.set()
        t.join(15)
    assert not t.is_alive()
    assert later["stylecast_fps"] > 0
    assert later['stylecast_engine_info{backend="onnxruntime"}'] == 1.0
    for stage in ("capture", "infer", "render", "publish"):
        count = later[f'stylecast_stage_latency_seconds_count{{stage="{stage}"}}']
        assert count >= 20 and later[f'stylecast_stage_latency_seconds_bucket{{le="+Inf",stage="{stage}"}}'] == count
    assert later["stylecast_latency_seconds_count"] >= 20 and later["stylecast_latency_seconds_sum"] > 0
    assert later["stylecast_frames_published_total"] >= later["stylecast_latency_seconds_count"] - 1
    assert 'stylecast_drops_total{stage="capture"}' in later and "stylecast_reconnects_total" in later and later["stylecast_source_up"] == 1.0
    assert all(later[f'stylecast_heartbeat_age_seconds{{stage="{s}"}}'] < 5 for s in ("capture", "infer", "publish", "control"))
    # stopped: the endpoint is gone
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_reconnects_counted(tmp_path: Path) -> None:
    port = free_tcp_port()
    cfg = ServeConfig(source=f"rtsp://127.0.0.1:{free_tcp_port()}/nobody", source_timeout=1.0, width=96, height=64, publish=f"tcp://127.0.0.1:{free_tcp_port()}",
                      control=f"tcp://127.0.0.1:{free_tcp_port()}", metrics=f"127.0.0.1:{port}")
    stop = threading.Event()
    t = threading.Thread(target=serve, args=(cfg, stop), daemon=True)
    t.start()
    try:
        request(cfg.control, {"cmd": "status"}, timeout=60)
        deadline = time.monotonic() + 20
        while (m := scrape(f"http://127.0.0.1:{port}/metrics")).get("stylecast_reconnects_total", 0) < 2:
            assert time.monotonic() < deadline, m
            time.sleep(0.2)
        assert m["stylecast_source_up"] == 0.0 and m["stylecast_source_errors_total"] >= 2
    finally:
        stop.set()
        t.join(15)


def test_prometheus_client_is_imported_only_when_enabled() -> None:
    code = "import sys, streamer.cli, streamer.daemon, streamer.metrics, streamer.service; print('prometheus_client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr
    assert re.search(r"^metrics = \[\"prometheus-client", (Path(__file__).parents[1] / "pyproject.toml").read_text(), re.M)
