"""End to end: `stylecast serve` on the demo source in a subprocess, with the bundled model,
watched by our subscriber client and steered through the control socket."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import zmq

from streamer import wire
from streamer.bench import free_tcp_port
from streamer.client import Subscriber, request
from streamer.config import default_model_path

pytestmark = pytest.mark.slow


@pytest.fixture()
def daemon(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    pub, ctl = f"tcp://127.0.0.1:{free_tcp_port()}", f"tcp://127.0.0.1:{free_tcp_port()}"
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamer", "serve", "--source", "demo", "--width", "320", "--height", "184", "--fps", "15",
         "--publish", pub, "--control", ctl],
        stdout=log, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        yield proc, pub, ctl
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()
        print((tmp_path / "serve.log").read_text())


def frames_of(sub: Subscriber, topic: str, n: int, timeout: float = 20.0) -> list[wire.FrameHeader | np.ndarray]:
    out: list = []  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        msg = sub.recv(1.0)
        if msg is not None and msg.topic == topic and msg.image is not None:
            out.append((msg.frame, msg.image.copy()))
    assert len(out) == n, f"got {len(out)} of {n} {topic} frames in {timeout} s"
    return out


def test_serve_end_to_end(daemon: tuple[subprocess.Popen[str], str, str]) -> None:
    assert default_model_path().is_file(), "the bundled model must ship with the package"
    styles = json.loads(default_model_path().with_suffix(".json").read_text())["styles"]
    proc, pub, ctl = daemon
    with Subscriber(pub, topics=["frame.", "meta."]) as sub:
        # frames, overlays and stats all arrive
        seen: dict[str, dict] = {}  # type: ignore[type-arg]
        deadline = time.monotonic() + 60
        while (len(seen) < 4 or "stage_ms" not in seen[wire.TOPIC_STATS]) and time.monotonic() < deadline:
            msg = sub.recv(1.0)
            if msg is not None:
                seen[msg.topic] = msg.header  # the latest of each; stats carry timings once frames flowed
            assert proc.poll() is None, "daemon exited early"
        assert set(seen) == {wire.TOPIC_STYLISED, wire.TOPIC_OVERLAY, wire.TOPIC_STATS, wire.TOPIC_STATE}
        assert seen[wire.TOPIC_STYLISED]["shape"] == [184, 320, 3]
        assert seen[wire.TOPIC_STATS]["fps"] >= 0 and "stage_ms" in seen[wire.TOPIC_STATS]
        assert seen[wire.TOPIC_STYLISED]["style"][styles[0]] == 1.0
        assert seen[wire.TOPIC_STATE]["styles"] == styles

        # switching the style changes the output, beyond what the demo's motion changes
        before = frames_of(sub, wire.TOPIC_STYLISED, 6)
        reply = request(ctl, {"cmd": "set_style", "style": styles[-1]})
        assert reply["ok"] is True and reply["state"]["style"][styles[-1]] == 1.0
        after = []
        for h, img in frames_of(sub, wire.TOPIC_STYLISED, 30):
            if h.style[styles[-1]] == 1.0:
                after.append((h, img))
        assert len(after) >= 3, "no frame with the new style arrived"
        motion = np.median([np.abs(a[1].astype(int) - b[1].astype(int)).mean() for a, b in itertools.pairwise(before)])
        switch = np.abs(after[0][1].astype(int) - before[-1][1].astype(int)).mean()
        assert switch > 2 * motion + 2, f"style switch changed the frame by {switch:.1f}, motion alone by {motion:.1f}"

        # garbage on the control socket gets an error reply, and frames keep flowing
        for junk in (b"\xff\xfe garbage", b"{not json", b'{"cmd": "set_strength", "value": NaN}', b"[]", b"{}"):
            r = request(ctl, junk)
            assert r["ok"] is False and r["error"]
        last_seq = after[-1][0].seq
        more = frames_of(sub, wire.TOPIC_STYLISED, 3)
        assert more[-1][0].seq > last_seq
        assert request(ctl, {"cmd": "status"})["status"]["counters"]["control_errors"] >= 5

        # the stabiliser tracks the demo's camera motion (on by default), and turns off live
        assert request(ctl, {"cmd": "status"})["state"]["stabilise"] == 0.6
        weights = []
        for _ in range(5):
            weights.append(request(ctl, {"cmd": "status"})["status"].get("stabilise_weight", 0.0))
            time.sleep(0.2)
        assert max(weights) > 0.3, weights
        assert request(ctl, {"cmd": "set_stabilise", "value": 0})["ok"] is True
        frames_of(sub, wire.TOPIC_STYLISED, 3)
        time.sleep(0.3)
        assert request(ctl, {"cmd": "status"})["status"]["stabilise_weight"] == 0.0

    # `stylecast view --out` records what a person would watch
    out_mp4 = Path(os.environ.get("PYTEST_TMP", "/tmp")) / f"view_{os.getpid()}.mp4"
    r = subprocess.run([sys.executable, "-m", "streamer", "view", "--endpoint", pub, "--topic", "overlay", "--out", str(out_mp4), "--frames", "5"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    cap = cv2.VideoCapture(str(out_mp4))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 320
    cap.release()
    out_mp4.unlink()

    # SIGTERM: clean exit 0 within a few seconds
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert time.monotonic() - t0 < 5


def test_control_socket_survives_a_raw_peer(daemon: tuple[subprocess.Popen[str], str, str]) -> None:
    """A DEALER that sends an envelope-less message must not wedge the REP socket."""
    proc, pub, ctl = daemon
    ctx = zmq.Context.instance()
    with Subscriber(pub, topics=[wire.TOPIC_STATS]) as sub:
        assert sub.recv(30) is not None
        d = ctx.socket(zmq.DEALER)
        d.setsockopt(zmq.LINGER, 0)
        d.connect(ctl)
        d.send_multipart([b"no-delimiter", b"x" * 100_000])
        d.close(0)
        assert request(ctl, {"cmd": "status"}, timeout=5)["ok"] is True
        # a REQ sending two parts gets an error reply (REP refused to answer with a part unread,
        # which stopped the daemon), and the next request is served as usual
        r = ctx.socket(zmq.REQ)
        r.setsockopt(zmq.LINGER, 0)
        r.connect(ctl)
        r.send_multipart([b'{"cmd": "status"}', b""])
        assert r.poll(5000), "no reply to a two-part request"
        reply = json.loads(r.recv())
        r.close(0)
        assert reply["ok"] is False and "one message part, got 2" in reply["error"]
        assert request(ctl, {"cmd": "status"}, timeout=5)["ok"] is True
        assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
