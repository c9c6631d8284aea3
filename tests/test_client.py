"""The subscriber client's counters (gaps, lateness, invalid) and state-on-change publishing."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import zmq

from streamer import wire
from streamer.bench import free_tcp_port
from streamer.client import Subscriber, request
from streamer.config import ServeConfig
from streamer.daemon import build_pipeline
from tests.service_tools import running


def _frame_msg(seq: int, t_capture: float) -> bytes:
    img = np.zeros((2, 3, 3), np.uint8)
    h = wire.FrameHeader(seq=seq, t_capture=t_capture, t_publish=time.time(), shape=(2, 3, 3), encoding="raw", style={"a": 1.0}, strength=1.0)
    return wire.encode_frame(wire.TOPIC_STYLISED, h, memoryview(img.data).cast("B"))


def test_gaps_lateness_and_invalid_are_counted() -> None:
    ep = f"tcp://127.0.0.1:{free_tcp_port()}"
    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(ep)
    try:
        with Subscriber(ep, topics=["frame."], late_ms=500) as sub:
            now = time.time()
            msgs = [_frame_msg(1, now), _frame_msg(2, now), _frame_msg(5, now), b"frame.stylised\x00garbage", _frame_msg(6, now - 2.0)]
            got = []
            deadline = time.monotonic() + 10
            while len(got) < 4 and time.monotonic() < deadline:  # PUB drops until the SUB is connected: resend
                for m in msgs:
                    pub.send(m)
                while (msg := sub.recv(0.2)) is not None:
                    got.append(msg.frame.seq if msg.frame else None)
                if len(got) < 4:
                    got, sub.counters.gaps, sub.counters.late, sub.counters.invalid = [], 0, 0, 0
                    sub.counters.last_seq.clear()
            assert got == [1, 2, 5, 6]
            assert sub.counters.gaps == 2  # 3 and 4 never came
            assert sub.counters.late == 1  # seq 6 was captured 2 s ago
            assert sub.counters.invalid == 1
    finally:
        pub.close(0)


def test_state_is_published_on_change_not_only_on_the_timer(tiny_model: Path) -> None:
    cfg = replace(ServeConfig(model=str(tiny_model), width=96, height=64, fps=20, stats_interval=30.0),
                  publish=f"tcp://127.0.0.1:{free_tcp_port()}", control=f"tcp://127.0.0.1:{free_tcp_port()}")
    with running(build_pipeline(cfg)):
        with Subscriber(cfg.publish, topics=[wire.TOPIC_STATE + "\x00"]) as sub:
            # until the subscription has reached the publisher (under load that takes a while),
            # each change is published at once: the timer would take 30 s
            for i in range(20):
                style = ("style_b", "style_a")[i % 2]
                t0 = time.monotonic()
                assert request(cfg.control, {"cmd": "set_style", "style": style})["ok"]
                msg = sub.recv(1.0)
                if msg is not None:
                    break
            assert msg is not None and msg.header["state"]["style"][style] == 1.0
            assert time.monotonic() - t0 < 5.0
