"""A long run of the daemon under repeated faults, watched from outside (not part of CI).

    .venv/bin/python -m tests.tools.soak --minutes 30 --out docs/images/soak.png

Serves a looping video file (made here from the demo source, 320×184) with one subscriber
reading, and every ``--burst-every`` seconds a burst of hostile input on loopback: 300 fuzzed
control requests (random bytes, bad JSON, unknown commands), 2,000 junk subscriptions from a peer
that then leaves, and 300 idle TCP connections held for 3 s. Every 10 s it samples the daemon's
RSS, open descriptors and threads from /proc. At the end: the slope of each after the first 2
minutes (least squares, per minute), written as JSON beside the PNG, and the PNG (one panel each).
"Flat" is an RSS slope under 0.1 MB/min.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import zmq

from streamer.bench import free_tcp_port
from streamer.client import Subscriber, request
from streamer.sources import DemoSource
from training.plots import panel

SIZE = (320, 184)


def make_clip(path: Path, seconds: float = 10.0, fps: float = 15.0) -> Path:
    """A looping MJPG clip of the demo source's pan: what a file source reads."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, SIZE)
    with DemoSource(SIZE, 1000.0) as src:
        for _ in range(int(seconds * fps)):
            writer.write(src.read())
    writer.release()
    return path


def sample(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {"rss_mb": int(fields["VmRSS"].split()[0]) / 1024, "fds": len(os.listdir(f"/proc/{pid}/fd")), "threads": int(fields["Threads"])}


def burst(publish: str, control: str, rng: np.random.Generator) -> None:
    """One fault burst (see the module docstring); returns when it is over."""
    for i in range(300):
        body = [rng.bytes(int(rng.integers(1, 200))), b'{"cmd": ', json.dumps({"cmd": f"nope{i}"}).encode()][i % 3]
        try:
            request(control, body, timeout=0.5)
        except TimeoutError:
            pass
    ctx = zmq.Context.instance()
    flood = ctx.socket(zmq.XSUB)
    flood.setsockopt(zmq.LINGER, 0)
    flood.connect(publish)
    time.sleep(0.2)
    for _ in range(2000):
        flood.send(b"\x01z" + rng.bytes(40))
    time.sleep(0.5)
    flood.close(0)
    host, port = publish[len("tcp://"):].rsplit(":", 1)
    idle = [socket.create_connection((host, int(port)), timeout=5) for _ in range(300)]
    time.sleep(3)
    for s in idle:
        s.close()


def slope_per_min(t: list[float], v: list[float], skip_s: float = 120.0) -> float:
    """Least-squares slope of ``v`` against ``t`` (s), per minute, over samples after ``skip_s``."""
    keep = [(a, b) for a, b in zip(t, v, strict=True) if a >= skip_s]
    if len(keep) < 3:
        return float("nan")
    x, y = np.array([k[0] for k in keep]), np.array([k[1] for k in keep])
    return float(np.polyfit(x / 60.0, y, 1)[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--burst-every", type=float, default=60.0, help="seconds between fault bursts")
    ap.add_argument("--out", type=Path, default=Path("soak.png"))
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="stylecast-soak-"))
    clip = make_clip(tmp / "loop.avi")
    pub, ctl = f"tcp://127.0.0.1:{free_tcp_port()}", f"tcp://127.0.0.1:{free_tcp_port()}"
    log = (tmp / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "streamer", "serve", "--source", str(clip), "--width", str(SIZE[0]), "--height", str(SIZE[1]),
                             "--publish", pub, "--control", ctl], stdout=log, stderr=subprocess.STDOUT)
    stop, frames = threading.Event(), [0]

    def read() -> None:
        with Subscriber(pub, topics=["frame.stylised\x00"]) as sub:
            while not stop.is_set():
                if sub.recv(1.0) is not None:
                    frames[0] += 1

    reader = threading.Thread(target=read, daemon=True)
    rng = np.random.default_rng(0)
    series: dict[str, list[tuple[int, float]]] = {"rss_mb": [], "fds": [], "threads": [], "frames_per_s": []}
    try:
        request(ctl, {"cmd": "status"}, timeout=60)
        reader.start()
        t0, next_sample, next_burst, last_frames = time.monotonic(), 0.0, a.burst_every, 0
        while (now := time.monotonic() - t0) < a.minutes * 60:
            if proc.poll() is not None:
                raise SystemExit(f"the daemon exited ({proc.returncode}); see {tmp / 'serve.log'}")
            if now >= next_burst:
                burst(pub, ctl, rng)
                next_burst += a.burst_every
            if now >= next_sample:
                for k, v in sample(proc.pid).items():
                    series[k].append((int(now), v))
                series["frames_per_s"].append((int(now), (frames[0] - last_frames) / 10.0))
                last_frames = frames[0]
                next_sample += 10.0
            time.sleep(0.2)
    finally:
        stop.set()
        proc.terminate()
        proc.wait(20)
    t = [float(p[0]) for p in series["rss_mb"]]
    report = {k + "_per_min": slope_per_min(t, [p[1] for p in v]) for k, v in series.items() if k != "frames_per_s"}
    report.update(minutes=a.minutes, samples=len(t), frames=frames[0], rss_mb_start=series["rss_mb"][0][1], rss_mb_end=series["rss_mb"][-1][1])
    panels = [panel(k, v, x_label="s") for k, v in series.items()]
    cv2.imwrite(str(a.out), np.vstack([np.hstack(panels[:2]), np.hstack(panels[2:])]))
    a.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
