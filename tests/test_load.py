"""Four subscribers, one of which stops reading: the others keep the full rate, and the
publisher's send time and memory stay flat (it never blocks: small HWM + NOBLOCK)."""

from __future__ import annotations

import resource
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from streamer.bench import free_tcp_port
from streamer.client import Subscriber
from streamer.config import ServeConfig
from streamer.daemon import build_pipeline

STALLED = """
import sys, time, zmq
s = zmq.Context().socket(zmq.SUB)
s.setsockopt(zmq.SUBSCRIBE, b"")
s.connect(sys.argv[1])
time.sleep(120)
"""


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def test_stalled_subscriber_does_not_slow_the_others(tiny_model: Path) -> None:
    cfg = replace(ServeConfig(model=str(tiny_model), width=320, height=184, fps=20, publish_overlay=True),
                  publish=f"tcp://127.0.0.1:{free_tcp_port()}", control=f"tcp://127.0.0.1:{free_tcp_port()}")
    pipe = build_pipeline(cfg)
    runner = threading.Thread(target=pipe.run)
    runner.start()
    # The stalled subscriber is another process, as it would be in production, so that its
    # receive queue is not counted in this process's memory.
    stalled = subprocess.Popen([sys.executable, "-c", STALLED, cfg.publish])
    counts = [0, 0, 0]
    done = threading.Event()

    def reader(i: int) -> None:
        with Subscriber(cfg.publish, topics=["frame.stylised\x00"]) as sub:
            while not done.is_set():
                if sub.recv(0.5) is not None:
                    counts[i] += 1

    readers = [threading.Thread(target=reader, args=(i,)) for i in range(3)]
    try:
        assert pipe.first_published.wait(60)
        for r in readers:
            r.start()
        time.sleep(2.0)  # let the stalled socket's queues fill
        rss0, pub0, sent0 = _rss_mb(), pipe.stats.counters["published"], list(counts)
        t0 = [f.publish_ms for f in pipe.stats.timings()[-20:]]
        time.sleep(6.0)
        rss1, pub1 = _rss_mb(), pipe.stats.counters["published"]
        t1 = [f.publish_ms for f in pipe.stats.timings()[-20:]]
        received = [c - s for c, s in zip(counts, sent0, strict=True)]
    finally:
        done.set()
        for r in readers:
            r.join(5)
        stalled.kill()
        stalled.wait(10)
        pipe.stop()
        runner.join(15)
    published = pub1 - pub0
    print(f"load: published {published} frames in 6 s; active subscribers received {received}; "
          f"publish ms median {np.median(t0):.2f} -> {np.median(t1):.2f}; RSS {rss0:.0f} -> {rss1:.0f} MB")
    assert published > 20
    for got in received:
        assert got >= 0.9 * published, f"an active subscriber got {got} of {published} frames"
    assert np.median(t1) < 3 * np.median(t0) + 2.0, f"publish ms grew from {np.median(t0):.2f} to {np.median(t1):.2f}"
    assert rss1 - rss0 < 40, f"memory grew by {rss1 - rss0:.1f} MB"
