"""Thousands of malformed control requests to a live pipeline: every one answered exactly once,
no crash, no hang, frames keep flowing."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamer.bench import free_tcp_port
from streamer.config import ServeConfig
from streamer.daemon import build_pipeline
from streamer.pipeline import Pipeline

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
commands = st.sampled_from(["status", "set_style", "set_strength", "set_grading", "set_overlay", "nope", ""])
near_valid = st.fixed_dictionaries({"cmd": commands}, optional={
    "style": json_values, "value": json_values, "brightness": json_values, "contrast": json_values,
    "saturation": json_values, "opacity": json_values, "extra": json_values, "id": json_values})


def _encode(obj: Any) -> bytes:
    return json.dumps(obj, allow_nan=True).encode()


requests = st.one_of(
    st.binary(max_size=6000),
    json_values.map(_encode),
    near_valid.map(_encode),
    st.integers(min_value=1, max_value=3000).map(lambda n: b'{"cmd":"status","x":' + b"[" * n + b"]" * n + b"}"),
)


@pytest.fixture(scope="module")
def live(tiny_model: Path) -> Iterator[tuple[Pipeline, zmq.Socket]]:  # type: ignore[type-arg]
    cfg = replace(ServeConfig(model=str(tiny_model), width=96, height=64, fps=30), publish=f"tcp://127.0.0.1:{free_tcp_port()}", control=f"tcp://127.0.0.1:{free_tcp_port()}")
    pipe = build_pipeline(cfg)
    t = threading.Thread(target=pipe.run)
    t.start()
    assert pipe.first_published.wait(60)
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(cfg.control)
    try:
        yield pipe, sock
    finally:
        sock.close(0)
        pipe.stop()
        t.join(15)
        assert not t.is_alive(), "pipeline did not stop"
        assert not pipe.errors, pipe.errors


EXAMPLES = int(os.environ.get("STYLECAST_FUZZ_EXAMPLES", "2000"))
"""Fuzzed requests per run: 2,000 in CI; ``STYLECAST_FUZZ_EXAMPLES=20000`` for the long run."""


@settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(raw=requests)
def test_every_request_gets_exactly_one_reply(live: tuple[Pipeline, zmq.Socket], raw: bytes) -> None:  # type: ignore[type-arg]
    pipe, sock = live
    sock.send(raw)
    assert sock.poll(5000), f"no reply within 5 s to {raw[:80]!r}"
    reply = json.loads(sock.recv())
    assert reply["ok"] in (True, False)
    if not reply["ok"]:
        assert isinstance(reply["error"], str) and reply["error"]
    assert not pipe.stop_event.is_set()


def test_frames_kept_flowing(live: tuple[Pipeline, zmq.Socket]) -> None:
    pipe, sock = live
    before = pipe.stats.counters.get("published", 0)
    sock.send(b'{"cmd": "status"}')
    assert sock.poll(5000)
    reply = json.loads(sock.recv())
    assert reply["ok"] is True and reply["status"]["counters"].get("control_errors", 0) > 100
    import time

    time.sleep(1.0)
    assert pipe.stats.counters.get("published", 0) > before
