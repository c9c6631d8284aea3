"""Subscriber client: a few lines for another app to receive stylecast's stream.

    from streamer.client import Subscriber
    with Subscriber("tcp://127.0.0.1:5555", topics=["frame.stylised"], conflate=True) as sub:
        msg = sub.recv(timeout=2.0)        # Message or None
        image = msg.image                  # [H, W, 3] uint8 BGR

Use one Subscriber per frame topic with ``conflate=True`` to always get only the newest frame
(ZeroMQ's CONFLATE keeps one message per socket, whatever its topic).

A daemon with CURVE on needs ``curve=load_client_keys("server.key", "me.key_secret")``
(streamer.security), for ``Subscriber`` and ``request`` alike.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import zmq

from streamer import wire
from streamer.security import ClientKeys


@dataclass
class Message:
    topic: str
    header: dict[str, Any]
    image: npt.NDArray[np.uint8] | None = None  # frames only; a view of the received buffer
    frame: wire.FrameHeader | None = None


@dataclass
class Counters:
    received: int = 0
    gaps: int = 0  # frames missing between consecutive sequence numbers (per topic)
    late: int = 0  # frames older than ``late_ms`` on arrival
    invalid: int = 0  # messages the decoder rejected
    last_seq: dict[str, int] = field(default_factory=dict)


class Subscriber:
    """SUB socket on ``endpoint``; open/use/close on one thread, or use ``with``.

    ``conflate``: keep only the newest message (ZMQ_CONFLATE), for display. Off, every frame comes
    in order, and a reader slower than the stream falls behind by what the queues hold (~30 raw
    640×360 frames: docs/WIRE.md)."""

    def __init__(self, endpoint: str, topics: list[str] | None = None, conflate: bool = False, late_ms: float = 500.0, ctx: zmq.Context[Any] | None = None,
                 curve: ClientKeys | None = None) -> None:
        self.endpoint, self.topics, self.conflate, self.late_ms = endpoint, topics or [""], conflate, late_ms
        self.curve = curve
        self._ctx = ctx or zmq.Context.instance()
        self._sock: zmq.Socket[Any] | None = None
        self.counters = Counters()

    def __enter__(self) -> Self:
        s = self._ctx.socket(zmq.SUB)
        s.setsockopt(zmq.LINGER, 0)
        if self.conflate:
            s.setsockopt(zmq.CONFLATE, 1)
        else:
            s.setsockopt(zmq.RCVHWM, 8)
        try:
            for t in self.topics:
                s.setsockopt(zmq.SUBSCRIBE, t.encode())
            if self.curve is not None:
                self.curve.apply(s)
            s.connect(self.endpoint)
        except BaseException:
            s.close(0)
            raise
        self._sock = s
        return self

    def recv(self, timeout: float = 1.0) -> Message | None:
        """The next valid message, or None after ``timeout`` s. Malformed messages are counted and skipped."""
        assert self._sock is not None, "Subscriber used outside 'with'"
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self._sock.poll(int(left * 1000) + 1):
                return None
            raw = self._sock.recv()
            try:
                return self._decode(raw)
            except wire.WireError:
                self.counters.invalid += 1

    def _decode(self, raw: bytes) -> Message:
        topic, header, _ = wire.split(raw)
        if header.get("kind") != "frame":
            self.counters.received += 1
            return Message(topic, header)
        topic, fh, image = wire.decode_frame(raw)
        c = self.counters
        c.received += 1
        last = c.last_seq.get(topic)
        if last is not None and fh.seq > last + 1:
            c.gaps += fh.seq - last - 1
        c.last_seq[topic] = fh.seq
        if (time.time() - fh.t_capture) * 1000 > self.late_ms:
            c.late += 1
        return Message(topic, header, image, fh)

    @property
    def socket(self) -> zmq.Socket[Any]:
        """The SUB socket (e.g. for ``get_monitor_socket()``); only inside ``with``."""
        assert self._sock is not None, "Subscriber used outside 'with'"
        return self._sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def request(endpoint: str, req: dict[str, Any] | bytes, timeout: float = 2.0, ctx: zmq.Context[Any] | None = None,
            curve: ClientKeys | None = None) -> dict[str, Any]:
    """One control request/reply on a fresh REQ socket. Raises TimeoutError if no reply comes
    (also what a CURVE server that refused our key looks like from here)."""
    c = ctx or zmq.Context.instance()
    s = c.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    try:
        if curve is not None:
            curve.apply(s)
        s.connect(endpoint)
        s.send(req if isinstance(req, bytes) else json.dumps(req).encode())
        if not s.poll(int(timeout * 1000)):
            raise TimeoutError(f"no reply from {endpoint} within {timeout} s")
        reply: dict[str, Any] = json.loads(s.recv())
        return reply
    finally:
        s.close(0)
