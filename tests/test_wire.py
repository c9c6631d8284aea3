import json
import struct

import numpy as np
import pytest

from streamer import wire


def _frame(shape=(6, 8, 3), seed=0):  # type: ignore[no-untyped-def]
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _header(shape, enc="raw"):  # type: ignore[no-untyped-def]
    return wire.FrameHeader(seq=7, t_capture=100.5, t_publish=100.6, shape=shape, encoding=enc, style={"a": 0.25, "b": 0.75}, strength=0.5)


def test_raw_frame_round_trip() -> None:
    img = _frame()
    msg = wire.encode_frame(wire.TOPIC_STYLISED, _header(img.shape), memoryview(img).cast("B"))
    topic, h, out = wire.decode_frame(msg)
    assert topic == wire.TOPIC_STYLISED
    assert (h.seq, h.shape, h.encoding, h.style, h.strength) == (7, (6, 8, 3), "raw", {"a": 0.25, "b": 0.75}, 0.5)
    np.testing.assert_array_equal(out, img)


def test_jpeg_frame_round_trip() -> None:
    import cv2

    img = np.full((32, 48, 3), 120, np.uint8)
    _ok, buf = cv2.imencode(".jpg", img)
    msg = wire.encode_frame(wire.TOPIC_OVERLAY, _header(img.shape, "jpeg"), buf.tobytes())
    _, _h, out = wire.decode_frame(msg)
    assert out.shape == img.shape and np.abs(out.astype(int) - 120).max() <= 3


def test_topics_prefix_subscribe_as_documented() -> None:
    msg = wire.encode_meta(wire.TOPIC_STATS, {"fps": 3.0})
    assert msg.startswith(b"meta.") and msg.startswith(wire.TOPIC_STATS.encode() + b"\x00")
    frame_topics = [t for t in wire.TOPICS if t.startswith("frame.")]
    assert sorted(frame_topics) == [wire.TOPIC_OVERLAY, wire.TOPIC_STYLISED]
    # exact-topic subscription (topic + NUL) does not match a longer topic sharing the prefix
    assert not (wire.TOPIC_STYLISED + "_x\x00").startswith(wire.TOPIC_STYLISED + "\x00")


def test_meta_round_trip() -> None:
    topic, body = wire.decode_meta(wire.encode_meta(wire.TOPIC_STATE, {"state": {"strength": 1.0}}))
    assert topic == wire.TOPIC_STATE and body["v"] == wire.WIRE_VERSION and body["kind"] == "state" and body["state"] == {"strength": 1.0}


def _raw_msg(header: dict, payload: bytes = b"", topic: bytes = b"frame.stylised") -> bytes:  # type: ignore[type-arg]
    body = json.dumps(header).encode()
    return topic + b"\x00" + struct.pack(">I", len(body)) + body + payload


@pytest.mark.parametrize(
    "msg, match",
    [
        (b"no terminator at all", "terminator"),
        (b"frame.stylised\x00\x00\x00", "truncated"),
        (b"frame.stylised\x00" + struct.pack(">I", 999) + b"{}", "header length"),
        (b"frame.stylised\x00" + struct.pack(">I", 3) + b"{x}", "not valid JSON"),
        (b"frame.stylised\x00" + struct.pack(">I", 2) + b"[]", "JSON object"),
        (_raw_msg({"v": 2, "kind": "frame"}), "unsupported wire version"),
        (b"frame.stylised\x00" + struct.pack(">I", 12) + b'{"v":NaN}   ', "not valid JSON"),
    ],
)
def test_decoder_rejects_malformed(msg: bytes, match: str) -> None:
    with pytest.raises(wire.WireError, match=match):
        wire.decode_frame(msg)


def test_decoder_rejects_payload_size_mismatch_and_bad_fields() -> None:
    h = {"v": 1, "kind": "frame", "seq": 1, "t_capture": 0, "t_publish": 0, "shape": [2, 2, 3], "dtype": "uint8", "color": "bgr", "encoding": "raw", "style": {}, "strength": 1}
    with pytest.raises(wire.WireError, match="needs 12"):
        wire.decode_frame(_raw_msg(h, b"\x00" * 11))
    with pytest.raises(wire.WireError, match="unknown encoding"):
        wire.decode_frame(_raw_msg({**h, "encoding": "png"}, b"\x00" * 12))
    with pytest.raises(wire.WireError, match="bad frame header"):
        wire.decode_frame(_raw_msg({k: v for k, v in h.items() if k != "seq"}, b"\x00" * 12))
    with pytest.raises(wire.WireError, match="positive integer sizes"):
        wire.decode_frame(_raw_msg({**h, "shape": [0, 2, 3]}))


H = {"v": 1, "kind": "frame", "seq": 1, "t_capture": 0, "t_publish": 0, "shape": [2, 2, 3], "dtype": "uint8", "color": "bgr",
     "encoding": "raw", "style": {"a": 1}, "strength": 1}


@pytest.mark.parametrize("change", [
    {"seq": "1e400"},  # replaced by the bare number below: JSON's 1e400 is inf, and int(inf) raised OverflowError
    {"seq": 1.5}, {"seq": True}, {"seq": "7"}, {"t_capture": "now"}, {"strength": None},
    {"shape": [2, 2, 1]}, {"shape": [1, 1, 12]}, {"shape": "223"}, {"shape": [2, 2]}, {"shape": [2, 2.0, 3]}, {"shape": [True, 2, 3]},
    {"style": ["a"]}, {"style": {"a": "x"}}, {"encoding": 3}, {"color": "rgb"}, {"dtype": "float32"},
], ids=lambda c: ",".join(f"{k}={v!r}" for k, v in c.items()))
def test_decoder_rejects_mistyped_fields(change: dict) -> None:  # type: ignore[type-arg]
    """Every mistyped field is a WireError: anything else escaped Subscriber.recv and killed the viewer."""
    msg = _raw_msg({**H, **change}, b"\x00" * 12)
    if change == {"seq": "1e400"}:
        msg = msg.replace(b'"1e400"', b"1e400  ")  # same length: the header length stays right
    with pytest.raises(wire.WireError):
        wire.decode_frame(msg)


def test_decoder_takes_a_valid_header_of_ints_and_floats() -> None:
    topic, h, img = wire.decode_frame(_raw_msg({**H, "t_capture": 1.5, "strength": 0.5}, bytes(range(12))))
    assert (h.seq, h.t_capture, h.strength, h.style, h.shape) == (1, 1.5, 0.5, {"a": 1.0}, (2, 2, 3))
    assert img.shape == (2, 2, 3) and img[1, 1, 2] == 11


def test_encoder_refuses_non_finite() -> None:
    with pytest.raises(ValueError):
        wire.encode_meta(wire.TOPIC_STATS, {"fps": float("nan")})
