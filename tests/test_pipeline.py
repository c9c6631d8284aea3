"""The pipeline in-process with the tiny trained model, a fake engine only where a test needs to
control timing or failure."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import engines
from streamer import render
from streamer.bench import free_tcp_port, run_bench
from streamer.client import Subscriber
from streamer.config import ServeConfig
from streamer.daemon import build_pipeline
from streamer.mailbox import Mailbox, MailboxClosed
from streamer.pipeline import Pipeline


def test_mailbox_keeps_newest_and_counts_drops() -> None:
    mb: Mailbox[int] = Mailbox("t")
    assert mb.get(0.01) is None
    for i in range(5):
        mb.put(i)
    assert mb.get(0.01) == 4 and mb.dropped == 4
    mb.close()
    with pytest.raises(MailboxClosed):
        mb.get(0.01)


def test_mailbox_get_wakes_on_put() -> None:
    mb: Mailbox[str] = Mailbox("t")
    threading.Timer(0.05, mb.put, args=("x",)).start()
    t0 = time.monotonic()
    assert mb.get(5.0) == "x" and time.monotonic() - t0 < 2.0


def test_grading_and_overlay() -> None:
    f = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert render.grade(f, render.Grading()) is f
    brighter = render.grade(f, render.Grading(brightness=0.2))
    assert brighter.mean() > f.mean()
    # y = c·x + (1−c)·128 + 255·b, clipped: darkening and contrast keep the tones' order
    ramp = np.array([0, 10, 64, 128, 255], np.uint8)[None, :, None].repeat(3, axis=2)
    for grading, want in ((render.Grading(brightness=-0.5), [0, 0, 0, 0, 128]), (render.Grading(brightness=-1.0), [0, 0, 0, 0, 0]),
                          (render.Grading(contrast=3.0), [0, 0, 0, 128, 255]), (render.Grading(brightness=0.5), [128, 138, 192, 255, 255])):
        np.testing.assert_allclose(render.grade(ramp, grading)[0, :, 1], want, atol=1)  # was [128, 118, 64, 0, 128] at −0.5: |y|
    gray = render.grade(f, render.Grading(saturation=0.0))
    assert np.abs(gray[..., 0].astype(int) - gray[..., 2].astype(int)).max() <= 1
    ov = render.attention_overlay(f, np.full((8, 8), 255, np.uint8), 1.0)
    assert ov.shape == f.shape and not np.array_equal(ov, f)
    np.testing.assert_array_equal(render.attention_overlay(f, np.zeros((8, 8), np.uint8), 0.0), f)


def _cfg(model: Path, **kw: object) -> ServeConfig:
    return replace(ServeConfig(model=str(model), width=96, height=64, fps=60, publish=f"tcp://127.0.0.1:{free_tcp_port()}",
                               control=f"tcp://127.0.0.1:{free_tcp_port()}"), **kw)  # type: ignore[arg-type]


def test_pipeline_publishes_and_stops_after_max_frames(tiny_model: Path) -> None:
    cfg = _cfg(tiny_model, max_frames=15)
    pipe = build_pipeline(cfg)
    with Subscriber(cfg.publish, topics=["frame.stylised\x00"]) as sub:
        t = threading.Thread(target=pipe.run)
        t.start()
        msg = sub.recv(30)
        t.join(60)
    assert not t.is_alive()
    assert msg is not None and msg.image is not None and msg.image.shape == (64, 96, 3)
    assert pipe.stats.counters["published"] == 15 and pipe.first_published.is_set()


class SlowEngine(engines.BaseEngine):
    """Test double: sleeps instead of inferring, so the capture stage outruns it."""

    name = "slow"

    def _open(self) -> None:
        pass

    def _run(self, frame, style, strength):  # type: ignore[no-untyped-def]
        time.sleep(0.05)
        return frame, np.zeros(frame.shape[:3] + (1,), np.uint8)

    def _close(self) -> None:
        pass


def test_slow_inference_drops_oldest_frames(tiny_model: Path) -> None:
    info = engines.load_model_info(tiny_model)
    cfg = _cfg(tiny_model, fps=200, max_frames=20)
    pipe = Pipeline(cfg, lambda: SlowEngine(info), info.styles)
    pipe.run()
    assert pipe.frames.dropped > 0 and pipe.stats.counters["published"] == 20


class FailingEngine(SlowEngine):
    def _run(self, frame, style, strength):  # type: ignore[no-untyped-def]
        raise engines.EngineError("device lost")


def test_engine_failure_stops_pipeline_and_is_raised(tiny_model: Path) -> None:
    info = engines.load_model_info(tiny_model)
    pipe = Pipeline(_cfg(tiny_model), lambda: FailingEngine(info), info.styles)
    with pytest.raises(engines.EngineError, match="device lost"):
        pipe.run()


class RebuildingEngine(SlowEngine):
    """Test double: its third frame announces a long call (as TensorRT's FP32 rebuild does) and
    records how stale the infer stage looks to the watchdog while inside it."""

    def __init__(self, info: engines.ModelInfo, pipe_ref: list[Pipeline]) -> None:
        super().__init__(info)
        self.pipe_ref, self.frames, self.stale_inside = pipe_ref, 0, None

    def _run(self, frame, style, strength):  # type: ignore[no-untyped-def]
        self.frames += 1
        if self.frames == 3:
            self._long_call(600.0)
            time.sleep(0.3)  # "building": longer than the 0.2 s max age asked of the watchdog below
            self.stale_inside = self.pipe_ref[0].heartbeats.stale(0.2)
        return super()._run(frame, style, strength)


def test_a_long_engine_call_keeps_the_infer_stage_fresh(tiny_model: Path) -> None:
    info = engines.load_model_info(tiny_model)
    ref: list[Pipeline] = []
    made: list[RebuildingEngine] = []

    def factory() -> RebuildingEngine:
        made.append(RebuildingEngine(info, ref))
        return made[0]

    pipe = Pipeline(_cfg(tiny_model, max_frames=6), factory, info.styles)
    ref.append(pipe)
    pipe.run()
    assert made[0].stale_inside is not None and "infer" not in made[0].stale_inside
    assert made[0].on_long_call is not None


def test_port_in_use_is_a_clear_error(tiny_model: Path) -> None:
    import zmq

    from streamer.publisher import PublishError

    cfg = _cfg(tiny_model)
    s = zmq.Context.instance().socket(zmq.PUB)
    s.bind(cfg.publish)
    try:
        with pytest.raises(PublishError, match="cannot bind publisher"):
            build_pipeline(cfg).run()
    finally:
        s.close(0)


def test_bench_reports_every_figure(tiny_model: Path) -> None:
    r = run_bench(_cfg(tiny_model), seconds=1.0, warmup=0.3)
    assert set(r["stage_ms"]) == {"capture", "infer", "render", "publish"}
    assert r["frames"] > 1 and r["fps"] > 0 and r["latency_ms"]["p95"] >= r["latency_ms"]["p50"] > 0
    # its own subscriber read the stylised frames: a bench with none measured no encoding or sending
    assert r["subscribed"] == ["frame.stylised"] and r["received_fps"] > 0
    assert run_bench(_cfg(tiny_model), seconds=0.5, warmup=0.2, subscribe="none")["received_fps"] is None


def test_the_null_backend_passes_the_frame_through(tiny_model: Path) -> None:
    from engines.null import FLAT_ATTENTION

    frame = np.random.default_rng(1).integers(0, 256, (36, 52, 3), dtype=np.uint8)  # not a multiple of 8
    with engines.create_engine("null", tiny_model) as e:
        res = e.infer(frame, np.array([0.0, 1.0], np.float32), 0.5)
        np.testing.assert_array_equal(res.output, frame)
        assert res.attention.shape == (36, 52) and (res.attention == FLAT_ATTENTION).all()
        with pytest.raises(engines.InputError):  # checked like any backend's input
            e.infer(frame.astype(np.float32), np.array([0.0, 1.0], np.float32), 0.5)  # type: ignore[arg-type]


def test_bench_with_the_null_backend_measures_the_host_side(tiny_model: Path) -> None:
    """``stylecast bench --backend null`` runs through the CLI and reports backend null."""
    import json
    import subprocess
    import sys

    out_json = tiny_model.parent / "null_bench.json"
    out = subprocess.run([sys.executable, "-m", "streamer", "bench", "--backend", "null", "--model", str(tiny_model), "--width", "160", "--height", "96",
                          "--seconds", "1", "--warmup", "0.3", "--json", str(out_json)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    r = json.loads(out_json.read_text())
    assert r["backend"] == "null" and r["frames"] > 1 and set(r["stage_ms"]) == {"capture", "infer", "render", "publish"}
    assert "backend null" in out.stdout


def test_compare_models_reports_each(tiny_model: Path) -> None:
    from streamer.bench import compare_models

    r = compare_models({"a": tiny_model, "b": tiny_model}, (96, 64), iters=3)
    assert set(r["models"]) == {"a", "b"}
    assert all(m["median_ms"] > 0 and m["speedup_vs_slowest"] >= 1.0 for m in r["models"].values())


def test_output_modes_and_snapshot(tiny_model: Path, tmp_path: Path) -> None:
    import json

    import cv2

    from streamer.client import request

    cfg = _cfg(tiny_model, snapshot_dir=str(tmp_path / "snaps"))
    pipe = build_pipeline(cfg)
    t = threading.Thread(target=pipe.run)
    t.start()
    try:
        assert pipe.first_published.wait(60)
        with Subscriber(cfg.publish, topics=["frame.stylised\x00"]) as sub:
            assert request(cfg.control, {"cmd": "set_mode", "mode": "side_by_side"})["ok"]
            shapes = set()
            for _ in range(40):
                msg = sub.recv(5)
                assert msg is not None and msg.image is not None
                shapes.add(msg.image.shape)
                if msg.image.shape == (64, 192, 3):
                    break
            assert (64, 192, 3) in shapes  # input | output
            reply = request(cfg.control, {"cmd": "snapshot", "name": "snap.png"})
            assert reply["ok"], reply
            assert cv2.imread(reply["snapshot"]).shape[1] in (96, 192)
            assert request(cfg.control, {"cmd": "set_mode", "mode": "attention"})["state"]["mode"] == "attention"
            bad = request(cfg.control, json.dumps({"cmd": "snapshot", "name": "../x.png"}).encode())
            assert bad["ok"] is False
    finally:
        pipe.stop()
        t.join(30)
    assert (tmp_path / "snaps" / "snap.png").is_file()


def test_a_source_of_only_rejected_frames_is_reported_down(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A camera delivering only frames normalise_frame refuses (16-bit here) stayed 'streaming'
    with source_error None, so metrics and the watchdog saw a healthy daemon publishing nothing."""
    import streamer.pipeline as P
    from streamer.sources import normalise_frame

    class Deep:
        def __enter__(self) -> Deep:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def pace(self) -> None:
            time.sleep(0.01)

        def read(self) -> np.ndarray:
            return normalise_frame(np.zeros((64, 96), np.uint16))

    monkeypatch.setattr(P, "open_source", lambda *a: Deep())
    pipe = build_pipeline(_cfg(tiny_model, source_timeout=0.3))
    t = threading.Thread(target=pipe.run)
    t.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not pipe.stats.counters.get("source_errors"):
            time.sleep(0.05)
        status = pipe.status()
    finally:
        pipe.stop()
        t.join(10)
    assert status["counters"]["source_errors"] >= 1 and status["counters"]["invalid_frames"] > 10
    assert "no usable frame for 0.3 s" in str(status.get("source_error")), status


def test_documented_counters_are_there_from_the_start(tiny_model: Path) -> None:
    """A client reading counters["reconnects"] got a KeyError until the first reconnect."""
    from streamer.pipeline import COUNTERS

    pipe = build_pipeline(_cfg(tiny_model))
    counters = pipe.status()["counters"]
    assert {k: counters[k] for k in COUNTERS} == dict.fromkeys(COUNTERS, 0)
    assert "auth_failures" not in counters  # CURVE's, only with CURVE on


def test_subscriptions_follow_subscribers_and_survive_a_flood() -> None:
    """The publisher knows which topics anyone reads (XPUB events), so an unread overlay is not
    drawn; a flood of prefixes turns tracking off rather than lose a topic someone wants."""
    import zmq

    from streamer import wire
    from streamer.publisher import MAX_PREFIXES, Publisher, Subscriptions

    ctx = zmq.Context()
    endpoint = f"tcp://127.0.0.1:{free_tcp_port()}"
    try:
        with Publisher(ctx, endpoint) as pub:
            assert not pub.wants(wire.TOPIC_STYLISED) and not pub.wants(wire.TOPIC_OVERLAY)
            sub = ctx.socket(zmq.SUB)
            sub.connect(endpoint)
            sub.setsockopt(zmq.SUBSCRIBE, wire.TOPIC_STYLISED.encode() + b"\x00")
            deadline = time.monotonic() + 5
            while not pub.wants(wire.TOPIC_STYLISED) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert pub.wants(wire.TOPIC_STYLISED) and not pub.wants(wire.TOPIC_OVERLAY)
            sub.setsockopt(zmq.SUBSCRIBE, b"frame.")  # a shorter prefix takes both frame topics
            while not pub.wants(wire.TOPIC_OVERLAY) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert pub.wants(wire.TOPIC_OVERLAY) and not pub.wants(wire.TOPIC_STATS)
            sub.close(0)  # a subscriber that leaves takes its subscriptions with it
            while pub.wants(wire.TOPIC_OVERLAY) and time.monotonic() < deadline + 5:
                time.sleep(0.02)
            assert not pub.wants(wire.TOPIC_OVERLAY) and not pub.wants(wire.TOPIC_STYLISED)
    finally:
        ctx.term()
    subs = Subscriptions()
    for i in range(MAX_PREFIXES + 10):
        subs.apply(b"\x01junk%d" % i)
    assert len(subs.prefixes) == MAX_PREFIXES and subs.overflow and subs.wants(wire.TOPIC_OVERLAY)
    subs.apply(b"")  # an empty or unknown event is ignored
    subs.apply(b"\x07x")
    assert len(subs.prefixes) == MAX_PREFIXES
