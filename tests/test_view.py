"""``stylecast view --out``: every frame it counts is in the file, also when the stream changes size."""

from __future__ import annotations

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
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 30
    assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (64, 48)
    cap.release()
