"""The ZeroMQ PUB socket: one per daemon, created, used and closed on the publish thread."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any, Self

import cv2
import numpy as np
import numpy.typing as npt
import zmq

from streamer import wire
from streamer.security import ServerKeys

U8 = npt.NDArray[np.uint8]


class PublishError(RuntimeError):
    """The PUB socket could not bind or encode a frame."""


# Subscribers only send subscriptions (a topic prefix); anything bigger drops the peer.
MAX_INBOUND_BYTES = 1024


def bind_pub(ctx: zmq.Context[Any], endpoint: str, what: str, curve: ServerKeys | None = None) -> zmq.Socket[Any]:
    """A bound PUB socket that never queues much (SNDHWM 4, no linger) and drops peers that send
    more than a subscription; raises PublishError naming ``what`` if it cannot bind."""
    sock: zmq.Socket[Any] = ctx.socket(zmq.PUB)
    sock.setsockopt(zmq.SNDHWM, 4)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_INBOUND_BYTES)
    try:
        if curve is not None:
            curve.apply(sock)
        sock.bind(endpoint)
    except zmq.ZMQError as e:
        sock.close(0)
        raise PublishError(f"cannot bind {what} to {endpoint}: {e}") from e
    return sock


class Publisher:
    """Sends single-part wire-v1 messages; never blocks on a slow subscriber (small HWM, NOBLOCK)."""

    def __init__(self, ctx: zmq.Context[Any], endpoint: str, encoding: wire.Encoding = "raw", jpeg_quality: int = 85,
                 curve: ServerKeys | None = None) -> None:
        """``curve``: serve CURVE-encrypted to allowed keys only (the context's ZAP handler decides)."""
        self.ctx, self.endpoint, self.curve = ctx, endpoint, curve
        self.encoding, self.jpeg_quality = encoding, jpeg_quality
        self._sock: zmq.Socket[Any] | None = None
        self.dropped = 0  # messages ZeroMQ refused because every queue was full

    def __enter__(self) -> Self:
        self._sock = bind_pub(self.ctx, self.endpoint, "publisher", self.curve)
        return self

    @property
    def socket(self) -> zmq.Socket[Any]:
        """The PUB socket, inside ``with`` only (used on the thread that opened it)."""
        assert self._sock is not None, "Publisher used outside 'with'"
        return self._sock

    def _send(self, msg: bytes) -> None:
        assert self._sock is not None, "Publisher used outside 'with'"
        try:
            self._sock.send(msg, zmq.NOBLOCK, copy=False)
        except zmq.Again:
            self.dropped += 1

    def encode_image(self, image: U8) -> bytes | memoryview:
        if self.encoding == "jpeg":
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if not ok:
                raise PublishError(f"JPEG encoding failed for image {list(image.shape)}")
            return buf.tobytes()
        return memoryview(np.ascontiguousarray(image).data).cast("B")

    def send_frame(self, topic: str, image: U8, seq: int, t_capture: float, style: dict[str, float], strength: float,
                   payload: bytes | memoryview | None = None) -> None:
        """Publish [H,W,3] uint8 BGR ``image`` (not kept after return). ``payload``: the image
        already encoded with ``encode_image`` (to share one JPEG encode between endpoints)."""
        h = wire.FrameHeader(seq=seq, t_capture=t_capture, t_publish=time.time(), shape=(image.shape[0], image.shape[1], image.shape[2]),
                             encoding=self.encoding, style=style, strength=strength)
        self._send(wire.encode_frame(topic, h, self.encode_image(image) if payload is None else payload))

    def send_meta(self, topic: str, body: dict[str, Any]) -> None:
        self._send(wire.encode_meta(topic, body))

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None
