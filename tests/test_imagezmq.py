"""imagezmq compatibility: the real `imagezmq` package as the receiver, raw and JPEG frames."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from streamer.bench import free_tcp_port
from streamer.config import ServeConfig
from streamer.daemon import build_pipeline
from streamer.imagezmq_compat import imagezmq_parts

imagezmq = pytest.importorskip("imagezmq", reason="imagezmq is in the dev extra")


@pytest.mark.parametrize("encoding", ["raw", "jpeg"])
def test_imagehub_receives_stylised_frames(tiny_model: Path, encoding: str) -> None:
    endpoint = f"tcp://127.0.0.1:{free_tcp_port()}"
    cfg = replace(ServeConfig(model=str(tiny_model), width=96, height=64, fps=30, encoding=encoding, imagezmq=endpoint),  # type: ignore[arg-type]
                  publish=f"tcp://127.0.0.1:{free_tcp_port()}", control=f"tcp://127.0.0.1:{free_tcp_port()}", max_frames=400)
    pipe = build_pipeline(cfg)
    t = threading.Thread(target=pipe.run)
    t.start()
    hub = imagezmq.ImageHub(open_port=endpoint, REQ_REP=False)  # exactly as an existing imagezmq app would
    try:
        got = []
        for _ in range(3):
            assert hub.zmq_socket.poll(30_000), "no imagezmq message within 30 s"
            if encoding == "raw":
                msg, image = hub.recv_image()
            else:
                import cv2

                msg, jpg = hub.recv_jpg()
                image = cv2.imdecode(np.frombuffer(jpg, dtype=np.uint8), cv2.IMREAD_COLOR)
            got.append((msg, image))
    finally:
        hub.close()
        pipe.stop()
        t.join(30)
    for msg, image in got:
        assert msg.startswith("stylecast seq=") and "style=style_a" in msg
        assert image.shape == (64, 96, 3) and image.dtype == np.uint8


def test_parts_shape_matches_imagezmq_send_array() -> None:
    import json

    img = np.zeros((4, 6, 3), np.uint8)
    head, body = imagezmq_parts(img, "m", "raw")
    assert json.loads(head) == {"msg": "m", "dtype": "uint8", "shape": [4, 6, 3]} and len(body) == 72
    head, body = imagezmq_parts(img, "m", "jpeg", b"\xff\xd8jpg")
    assert json.loads(head) == {"msg": "m"} and body == b"\xff\xd8jpg"
    with pytest.raises(ValueError):
        imagezmq_parts(img, "m", "jpeg")
