"""Wire format v1: pure encode/decode of the messages published on the PUB socket.

Every message is ONE ZeroMQ frame (so a subscriber may set ``ZMQ_CONFLATE`` and always get the
newest; conflate ignores multipart messages)::

    topic \\x00 | header length (uint32, big-endian) | header (UTF-8 JSON object) | payload

Topics are chosen for prefix subscription: ``frame.stylised`` and ``frame.overlay`` (subscribe to
``frame.`` for both), ``meta.stats`` and ``meta.state`` (``meta.`` for both). Subscribing to a
topic plus the NUL byte matches that topic exactly. See docs/WIRE.md.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

WIRE_VERSION = 1
TOPIC_STYLISED = "frame.stylised"
TOPIC_OVERLAY = "frame.overlay"
TOPIC_STATS = "meta.stats"
TOPIC_STATE = "meta.state"
TOPICS = (TOPIC_STYLISED, TOPIC_OVERLAY, TOPIC_STATS, TOPIC_STATE)
MAX_HEADER_BYTES = 64 * 1024

Encoding = Literal["raw", "jpeg"]
_LEN = struct.Struct(">I")


class WireError(ValueError):
    """A message that is not valid wire format v1."""


@dataclass(frozen=True)
class FrameHeader:
    """Metadata of one published image.

    seq: capture sequence number (gaps mean dropped frames); t_capture / t_publish: Unix time, s;
    shape: [H, W, C] of the decoded image; encoding: raw bytes (row-major HWC) or a JPEG file;
    color: ``bgr`` (3 channels). style: weights by style name; strength in [0, 1].
    """

    seq: int
    t_capture: float
    t_publish: float
    shape: tuple[int, int, int]
    encoding: Encoding
    style: dict[str, float]
    strength: float
    dtype: str = "uint8"
    color: str = "bgr"
    extra: dict[str, Any] = field(default_factory=dict)


def pack(topic: str, header: dict[str, Any], payload: bytes | memoryview = b"") -> list[bytes | memoryview]:
    """Message parts to be joined into one frame: [prefix, payload]. Header gets ``v`` added."""
    body = json.dumps({"v": WIRE_VERSION, **header}, separators=(",", ":"), allow_nan=False).encode()
    return [topic.encode() + b"\x00" + _LEN.pack(len(body)) + body, payload]


def join(parts: list[bytes | memoryview]) -> bytes:
    """One contiguous message: one copy of the payload (``bytes.join`` reads a memoryview in place;
    ZeroMQ would copy a single frame anyway)."""
    return b"".join(parts)


def encode_frame(topic: str, h: FrameHeader, payload: bytes | memoryview) -> bytes:
    header = {
        "kind": "frame", "seq": h.seq, "t_capture": h.t_capture, "t_publish": h.t_publish,
        "shape": list(h.shape), "dtype": h.dtype, "color": h.color, "encoding": h.encoding,
        "style": h.style, "strength": h.strength, **h.extra,
    }
    return join(pack(topic, header, payload))


def encode_meta(topic: str, body: dict[str, Any]) -> bytes:
    """Stats or state: everything in the header, empty payload."""
    return join(pack(topic, {"kind": topic.split(".", 1)[1], **body}))


def split(msg: bytes) -> tuple[str, dict[str, Any], memoryview]:
    """topic, header dict, payload view (into ``msg``). Raises WireError on anything malformed."""
    nul = msg.find(b"\x00", 0, 64)
    if nul <= 0:
        raise WireError("no topic terminator in the first 64 bytes")
    topic = msg[:nul].decode("ascii", "replace")
    if len(msg) < nul + 1 + _LEN.size:
        raise WireError(f"{topic}: message truncated before header length")
    (n,) = _LEN.unpack_from(msg, nul + 1)
    start = nul + 1 + _LEN.size
    if n > MAX_HEADER_BYTES or start + n > len(msg):
        raise WireError(f"{topic}: header length {n} exceeds message ({len(msg)} bytes) or cap")
    try:
        header = json.loads(msg[start : start + n], parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise WireError(f"{topic}: header is not valid JSON: {e}") from e
    if not isinstance(header, dict):
        raise WireError(f"{topic}: header must be a JSON object")
    if header.get("v") != WIRE_VERSION:
        raise WireError(f"{topic}: unsupported wire version {header.get('v')!r} (this decoder reads {WIRE_VERSION})")
    return topic, header, memoryview(msg)[start + n :]


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name} not allowed")


def decode_frame(msg: bytes) -> tuple[str, FrameHeader, npt.NDArray[np.uint8]]:
    """Topic, header and image [H,W,3] uint8 of a frame message (JPEG decoded with OpenCV)."""
    topic, hd, payload = split(msg)
    try:
        shape = hd["shape"]
        if not isinstance(shape, list) or len(shape) != 3 or not all(_is_int(v) and v > 0 for v in shape) or shape[2] != 3:
            raise ValueError(f"shape must be [H, W, 3] with positive integer sizes, got {shape!r}")
        style = hd["style"]
        if not isinstance(style, dict) or not all(isinstance(k, str) and _is_number(v) for k, v in style.items()):
            raise ValueError(f"style must map names to finite numbers, got {style!r}")
        header = FrameHeader(
            seq=_field(hd, "seq", _is_int), t_capture=float(_field(hd, "t_capture", _is_number)),
            t_publish=float(_field(hd, "t_publish", _is_number)), shape=(shape[0], shape[1], shape[2]),
            encoding=_field(hd, "encoding", _is_str), style={k: float(v) for k, v in style.items()},
            strength=float(_field(hd, "strength", _is_number)), dtype=_field(hd, "dtype", _is_str), color=_field(hd, "color", _is_str),
        )
    except (KeyError, ValueError) as e:
        raise WireError(f"{topic}: bad frame header {hd!r}: {e}") from e
    if header.dtype != "uint8" or header.color != "bgr":
        raise WireError(f"{topic}: expected uint8 bgr pixels, got {header.dtype} {header.color}")
    return topic, header, _decode_image(topic, header, payload)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    """A finite JSON number: ``1e400`` parses to inf, which ``int()`` would raise OverflowError on."""
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)  # type: ignore[arg-type]


def _is_str(v: object) -> bool:
    return isinstance(v, str)


def _field(hd: dict[str, Any], name: str, ok: Callable[[object], bool]) -> Any:
    """``hd[name]`` if ``ok`` accepts it; KeyError if missing, ValueError if mistyped."""
    v = hd[name]
    if not ok(v):
        raise ValueError(f"{name} has the wrong type or value: {v!r}")
    return v


def _decode_image(topic: str, h: FrameHeader, payload: memoryview) -> npt.NDArray[np.uint8]:
    if h.encoding == "raw":
        if len(payload) != math.prod(h.shape):
            raise WireError(f"{topic}: raw payload is {len(payload)} bytes, shape {list(h.shape)} needs {math.prod(h.shape)}")
        return np.frombuffer(payload, dtype=np.uint8).reshape(h.shape)
    if h.encoding == "jpeg":
        import cv2

        img = cv2.imdecode(np.frombuffer(payload, dtype=np.uint8), cv2.IMREAD_COLOR)
        if img is None or img.shape != h.shape:
            raise WireError(f"{topic}: JPEG payload does not decode to {list(h.shape)}")
        return img.astype(np.uint8, copy=False)
    raise WireError(f"{topic}: unknown encoding {h.encoding!r} (expected raw or jpeg)")


def decode_meta(msg: bytes) -> tuple[str, dict[str, Any]]:
    topic, header, _ = split(msg)
    return topic, header
