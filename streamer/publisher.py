"""The ZeroMQ publish socket: one per daemon, created, used and closed on the publish thread.

It is an XPUB socket (to subscribers, a PUB: the wire is unchanged), so the daemon knows which
topics anyone has subscribed to (``Subscriptions``) and skips rendering and sending a topic no
one reads: the overlay, when every viewer takes the stylised frame only.
"""

from __future__ import annotations

import errno
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


MAX_INBOUND_BYTES = 64
"""Largest message a subscriber may send; a longer one drops the peer. Subscribers only send
the ZMTP handshake (READY with its metadata: 26 bytes for an XSUB, the relay) and
subscriptions (a prefix of a topic and its NUL, ≤ 15 bytes, behind ZMTP 3.1's SUBSCRIBE command
name). ZeroMQ keeps every distinct subscription a peer sends in a byte trie, so this cap is what
bounds a flood of junk ones: 20,000 of 1,000 bytes took the daemon from ~120 MB to ~1 GB with a
1 KiB cap (issue 32) and grow it by < 1 MB with this one; 20,000 distinct ones of 63 bytes, the
most that pass, grew a bare socket's process by 54 MB here."""

MAX_INBOUND_BYTES_CURVE = 1024
"""With CURVE the cap must pass the handshake too (its INITIATE command with metadata was 276
bytes here); only peers whose key is allowed get as far as subscribing, so the flood above
needs an allowed key."""

HANDSHAKE_MS = 5000
"""A peer that has not finished the ZMTP greeting (and CURVE handshake) within this many ms is
dropped (libzmq's default is 30 s): idle connections from a scanner or a flood free their
descriptors six times sooner. Used for the control socket too."""


MAX_PREFIXES = 256
"""Distinct subscription prefixes tracked; past this many (a flood), every topic counts as wanted."""

MAX_EVENTS_PER_POLL = 64
"""Subscription events read per ``Subscriptions.poll``: a flood cannot stall the publish thread."""


class Subscriptions:
    """The topic prefixes subscribed to on an XPUB socket, from the events it delivers (without
    XPUB_VERBOSE: one subscribe per distinct prefix, one unsubscribe when its last subscriber
    leaves or disconnects). Bounded: past ``MAX_PREFIXES`` it stops tracking and wants every
    topic, which is the PUB socket's own behaviour, so a flood costs speed, never frames."""

    def __init__(self) -> None:
        self.prefixes: set[bytes] = set()
        self.overflow = False

    def apply(self, event: bytes) -> None:
        """One XPUB event: ``\x01`` + prefix subscribes, ``\x00`` + prefix unsubscribes; other bytes are ignored."""
        if not event or event[0] not in (0, 1):
            return
        prefix = bytes(event[1:])
        if event[0] == 0:
            self.prefixes.discard(prefix)
        elif len(self.prefixes) < MAX_PREFIXES or prefix in self.prefixes:
            self.prefixes.add(prefix)
        else:
            self.overflow = True  # never reset: a peer that flooded once may hold any of them

    def poll(self, sock: zmq.Socket[Any]) -> None:
        """Read the events waiting on ``sock`` without blocking. More than MAX_EVENTS_PER_POLL
        waiting is a flood, whose events ZeroMQ may drop past its queue: ``overflow``."""
        for _ in range(MAX_EVENTS_PER_POLL):
            try:
                self.apply(sock.recv(zmq.NOBLOCK))
            except zmq.Again:
                return
        self.overflow = True

    def wants(self, topic: str) -> bool:
        """Whether a message of ``topic`` (``topic\x00…`` on the wire) reaches any subscriber."""
        head = topic.encode() + b"\x00"
        return self.overflow or any(head.startswith(p) or p.startswith(head) for p in self.prefixes)


def bind_pub(ctx: zmq.Context[Any], endpoint: str, what: str, curve: ServerKeys | None = None, xpub: bool = False) -> zmq.Socket[Any]:
    """A bound PUB (``xpub``: XPUB) socket that never queues much (SNDHWM 4, no linger) and drops
    peers that send more than a subscription; raises PublishError naming ``what`` if it cannot bind."""
    sock: zmq.Socket[Any] = ctx.socket(zmq.XPUB if xpub else zmq.PUB)
    sock.setsockopt(zmq.SNDHWM, 4)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_INBOUND_BYTES if curve is None else MAX_INBOUND_BYTES_CURVE)
    sock.setsockopt(zmq.HANDSHAKE_IVL, HANDSHAKE_MS)
    try:
        if curve is not None:
            curve.apply(sock)
        sock.bind(endpoint)
    except zmq.ZMQError as e:
        sock.close(0)
        raise PublishError(f"cannot bind {what} to {endpoint}: {e}") from e
    return sock


def rebind(sock: zmq.Socket[Any], endpoint: str, wait_s: float = 2.0) -> None:
    """Unbind ``sock`` from ``endpoint`` and bind it again, on the thread that owns it: libzmq
    closes every connection accepted there, and the peers reconnect (and handshake) anew. The
    listener closes in libzmq's I/O thread, so the port is retried for up to ``wait_s``."""
    sock.unbind(sock.getsockopt_string(zmq.LAST_ENDPOINT))
    deadline = time.monotonic() + wait_s
    while True:
        try:
            sock.bind(endpoint)
            return
        except zmq.ZMQError as e:
            if e.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                raise PublishError(f"cannot bind {endpoint} again after dropping its sessions: {e}") from e
            time.sleep(0.01)


class Publisher:
    """Sends single-part wire-v1 messages; never blocks on a slow subscriber (small HWM, NOBLOCK)."""

    def __init__(self, ctx: zmq.Context[Any], endpoint: str, encoding: wire.Encoding = "raw", jpeg_quality: int = 85,
                 curve: ServerKeys | None = None) -> None:
        """``curve``: serve CURVE-encrypted to allowed keys only (the context's ZAP handler decides)."""
        self.ctx, self.endpoint, self.curve = ctx, endpoint, curve
        self.encoding, self.jpeg_quality = encoding, jpeg_quality
        self._sock: zmq.Socket[Any] | None = None
        self.dropped = 0  # messages ZeroMQ refused because every queue was full
        self.subscriptions = Subscriptions()

    def __enter__(self) -> Self:
        self._sock = bind_pub(self.ctx, self.endpoint, "publisher", self.curve, xpub=True)
        self.subscriptions = Subscriptions()
        return self

    def wants(self, topic: str) -> bool:
        """Whether anyone has subscribed to ``topic``, after reading the subscription events waiting."""
        assert self._sock is not None, "Publisher used outside 'with'"
        self.subscriptions.poll(self._sock)
        return self.subscriptions.wants(topic)

    def rebind(self) -> None:
        """Drop every subscriber's connection (``rebind``); they reconnect and subscribe again."""
        rebind(self.socket, self.endpoint)

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
