"""An optional second PUB endpoint speaking imagezmq's PUB/SUB message shape, so an existing
``imagezmq.ImageHub(open_port=ENDPOINT, REQ_REP=False)`` receives stylised frames unchanged.

imagezmq's shape (its ``SerializingSocket.send_array`` / ``send_jpg``) is a two-part message:
    raw:  [JSON {"msg": TEXT, "dtype": "uint8", "shape": [H, W, 3]}, the array's bytes]
    jpeg: [JSON {"msg": TEXT}, the JPEG bytes]
``ImageHub.recv_image()`` reads the first, ``recv_jpg()`` the second. ``TEXT`` here is
``stylecast seq=N style=NAME``. Like the main publisher it never blocks (HWM + NOBLOCK).
"""

from __future__ import annotations

import json
from types import TracebackType
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import zmq

from streamer.publisher import bind_pub
from streamer.wire import Encoding

U8 = npt.NDArray[np.uint8]


def imagezmq_parts(image: U8, msg: str, encoding: Encoding, jpeg: bytes | None = None) -> list[bytes | memoryview]:
    """The two message parts for one frame (pure). ``jpeg`` is required for ``encoding='jpeg'``."""
    if encoding == "jpeg":
        if jpeg is None:
            raise ValueError("jpeg bytes are required for encoding='jpeg'")
        return [json.dumps({"msg": msg}).encode(), jpeg]
    arr = np.ascontiguousarray(image)
    return [json.dumps({"msg": msg, "dtype": str(arr.dtype), "shape": list(arr.shape)}).encode(), memoryview(arr.data).cast("B")]


def describe(seq: int, style: dict[str, float]) -> str:
    main = max(style, key=lambda k: style[k]) if style else ""
    return f"stylecast seq={seq} style={main}"


class ImageZmqPublisher:
    """A PUB socket bound at ``endpoint`` (opened and used on the publish thread)."""

    def __init__(self, ctx: zmq.Context[Any], endpoint: str) -> None:
        self.ctx, self.endpoint = ctx, endpoint
        self._sock: zmq.Socket[Any] | None = None
        self.dropped = 0

    def __enter__(self) -> Self:
        self._sock = bind_pub(self.ctx, self.endpoint, "imagezmq endpoint")
        return self

    def send(self, parts: list[bytes | memoryview]) -> None:
        assert self._sock is not None, "ImageZmqPublisher used outside 'with'"
        try:
            self._sock.send_multipart(parts, zmq.NOBLOCK, copy=False)
        except zmq.Again:
            self.dropped += 1

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None
