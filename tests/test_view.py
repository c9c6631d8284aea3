"""``stylecast view --out``: every frame it counts is in the file, also when the stream changes size."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import zmq

from streamer import wire
from streamer.bench import free_tcp_port
from streamer.view import fit, view


def test_fit_keeps_the_aspect_and_centres_on_black() -> None:
    img = np.full((48, 128, 3), 200, np.uint8)  # side_by_side: twice as wide
    out = fit(img, (64, 48))
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8
    assert (out[:12] == 0).all() and (out[-12:] == 0).all()  # 64x24 in the middle, bars above and below
    assert (out[12:36] == 200).all()
    assert fit(np.full((10, 10, 3), 7, np.uint8), (20, 10))[:, 5:15].min() == 7


@pytest.mark.timeout(60)
def test_a_size_change_mid_recording_keeps_every_frame(tmp_path: Path) -> None:
    """VideoWriter drops a frame of another size without a word: the file held 20 of 30 frames."""
    endpoint = f"tcp://127.0.0.1:{free_tcp_port()}"
    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(endpoint)
    stop = threading.Event()

    def send() -> None:
        time.sleep(0.5)
        for i in range(1, 200):
            if stop.is_set():
                return
            img = np.full((48, 64 if i <= 20 else 128, 3), 100, np.uint8)
            h = wire.FrameHeader(seq=i, t_capture=time.time(), t_publish=time.time(), shape=img.shape, encoding="raw",  # type: ignore[arg-type]
                                 style={"a": 1.0}, strength=1.0)
            pub.send(wire.encode_frame(wire.TOPIC_STYLISED, h, img.tobytes()))
            time.sleep(0.03)

    t = threading.Thread(target=send)
    t.start()
    out = tmp_path / "v.mp4"
    try:
        n = view(endpoint, wire.TOPIC_STYLISED, out, 30, 10.0)
    finally:
        stop.set()
        t.join()
        pub.close(0)
    cap = cv2.VideoCapture(str(out))
    assert n == 30
    assert 27 <= int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) <= 40  # placed by capture time, so the sender's jitter moves it; the bug kept 20
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (64, 48)
    cap.release()


def _publish(endpoint: str, stop: threading.Event, fps: float, frames: int = 400, lose_after: int = 0) -> threading.Thread:
    """A PUB on ``endpoint`` sending frames whose capture times are a camera's at ``fps``;
    with ``lose_after`` n, every other frame after the n-th is never sent (lost on the way)."""
    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(endpoint)

    def send() -> None:
        try:
            time.sleep(0.5)
            t0 = time.time()
            for i in range(1, frames):
                if stop.is_set():
                    return
                if lose_after and i > lose_after and i % 2 == 0:
                    continue
                img = np.full((48, 64, 3), 100, np.uint8)
                t = t0 + i / fps  # capture times of a camera at this rate, sent faster than real time
                h = wire.FrameHeader(seq=i, t_capture=t, t_publish=t, shape=img.shape, encoding="raw",  # type: ignore[arg-type]
                                     style={"a": 1.0}, strength=1.0)
                pub.send(wire.encode_frame(wire.TOPIC_STYLISED, h, img.tobytes()))
                time.sleep(0.01)
        finally:
            pub.close(0)

    t = threading.Thread(target=send)
    t.start()
    return t


def _record(out: Path, frames: int, fps: float, lose_after: int = 0) -> int:
    """``view --out`` of ``frames`` frames from a ``_publish`` stream; what ``view`` returned."""
    endpoint = f"tcp://127.0.0.1:{free_tcp_port()}"
    stop = threading.Event()
    t = _publish(endpoint, stop, fps=fps, lose_after=lose_after)
    try:
        return view(endpoint, wire.TOPIC_STYLISED, out, frames, 10.0)
    finally:
        stop.set()
        t.join()


def test_a_recording_plays_at_the_streams_rate(tmp_path: Path) -> None:
    """It was always 25 fps: a 10 fps daemon's recording played 2.5× fast."""
    from streamer.view import stream_fps

    assert stream_fps([0.0, 0.1, 0.2, 0.3]) == pytest.approx(10.0)
    assert stream_fps([5.0]) == 25.0 and stream_fps([1.0, 1.0]) == 25.0 and stream_fps([0.0, 1e-6]) == 240.0
    out = tmp_path / "v.avi"
    n = _record(out, 20, fps=10.0)
    cap = cv2.VideoCapture(str(out))
    assert n == 20 and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 20
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0, rel=0.05)
    cap.release()


def test_view_out_is_checked_before_subscribing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from streamer import cli

    nothing = f"tcp://127.0.0.1:{free_tcp_port()}"  # no daemon: the path must be refused first, at once
    for out, words in ((tmp_path / "x.txt", "must end in one of"), (tmp_path / "no" / "x.mp4", "does not exist")):
        assert cli.main(["view", "--endpoint", nothing, "--out", str(out), "--timeout", "30"]) == cli.EXIT_CONFIG
        assert words in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.main(["view", "--out", str(tmp_path / "x.mp4"), "--frames", "-1"])
    assert e.value.code == 2


@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="POSIX signals")
def test_sigterm_closes_the_recording(tmp_path: Path) -> None:
    """SIGTERM (timeout, a service manager) killed view --out with an mp4 that had no index."""
    endpoint = f"tcp://127.0.0.1:{free_tcp_port()}"
    stop = threading.Event()
    t = _publish(endpoint, stop, fps=30.0, frames=100000)
    out = tmp_path / "v.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "streamer", "view", "--endpoint", endpoint, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (out.exists() and out.stat().st_size > 0):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    finally:
        stop.set()
        t.join()
        if proc.poll() is None:
            proc.kill()
    cap = cv2.VideoCapture(str(out))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) > 0
    cap.release()


def test_a_recording_lasts_as_long_as_its_capture_when_frames_go_missing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The rate was fixed from the first frames and every received frame written once, so a
    6.9 s capture with gaps played for 14.1 s. Now frames are placed by capture time: the
    missing ones' slots repeat the frame before, and the summary says so in words."""
    import logging

    from streamer.view import Timeline

    tl = Timeline(10.0, 100.0)
    assert [tl.place(t) for t in (100.0, 100.1, 100.4, 100.41, 100.5)] == [0, 0, 2, -1, 0]
    assert (tl.written, tl.repeated, tl.dropped) == (6, 2, 1)
    out = tmp_path / "v.avi"
    caplog.set_level(logging.INFO, "streamer.view")
    n = _record(out, 60, fps=10.0, lose_after=20)  # after the rate probe, half the stream never arrives
    cap = cv2.VideoCapture(str(out))
    frames, fps = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    captured_s = (20 + 40 * 2) / 10.0  # 20 frames, then 40 of 80: 10 s of capture at 10 fps
    assert n == 60 and frames / fps == pytest.approx(captured_s, rel=0.05), (frames, fps)
    said = " ".join(r.message for r in caplog.records)
    assert "repeated where the stream's frames did not arrive" in said and "gaps" not in said
