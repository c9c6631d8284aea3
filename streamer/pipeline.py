"""The running pipeline: capture → infer → render+publish threads joined by single-slot mailboxes,
plus a control thread. Each thread opens, uses and closes its own resources (source, engine, PUB
socket, REP socket). The first fatal error in any thread stops all of them and is re-raised by
``run()``.

Frame ownership: the capture thread allocates each frame; after ``put`` it belongs to the
mailbox's taker. Engine outputs are copied before they are handed on (backends may reuse them).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
import numpy.typing as npt
import zmq

from engines import BaseEngine, EngineError, InputError
from streamer import controls, faults, snapshots, wire
from streamer.config import ServeConfig
from streamer.controls import ControlError, ControlState
from streamer.heartbeat import Heartbeats
from streamer.imagezmq_compat import ImageZmqPublisher, describe, imagezmq_parts
from streamer.mailbox import Mailbox, MailboxClosed
from streamer.publisher import HANDSHAKE_MS, Publisher, rebind
from streamer.render import attention_overlay, compose, grade
from streamer.security import HandshakeWatch, ServerKeys
from streamer.sources import FrameError, SourceError, open_source, parse_source
from streamer.stabilise import Stabiliser
from streamer.stats import FrameTiming, Stats

log = logging.getLogger(__name__)
U8 = npt.NDArray[np.uint8]

BACKOFF_START_S = 0.2
BACKOFF_CAP_S = 2.0  # small, so frames resume within a few seconds of a camera coming back


@dataclass
class Captured:
    seq: int
    t_capture: float  # Unix time, s (goes on the wire)
    t_mono: float  # monotonic, s (latency)
    frame: U8  # [H, W, 3] uint8 BGR at the processing size
    capture_ms: float


@dataclass
class Inferred:
    cap: Captured
    output: U8  # [H, W, 3] uint8 BGR
    attention: U8  # [H, W] uint8
    state: ControlState
    infer_ms: float


COUNTERS = ("published", "reconnects", "source_errors", "invalid_frames", "resolution_changes", "control_ok", "control_errors")
CURVE_COUNTERS = ("auth_failures", "protocol_failures", "handshake_failures")  # streamer.security.HandshakeWatch


class Pipeline:
    def __init__(self, cfg: ServeConfig, engine_factory: Callable[[], BaseEngine], styles: tuple[str, ...], stats: Stats | None = None, ctx: zmq.Context[Any] | None = None,
                 curve: ServerKeys | None = None) -> None:
        """``curve``: the publish and control sockets become CURVE servers with these keys (the
        context needs a running ZAP handler, streamer.security.CurveAuthenticator)."""
        self.cfg, self.engine_factory, self.styles, self.curve = cfg, engine_factory, styles, curve
        self.heartbeats = Heartbeats()  # every loop beats each turn; read by the service watchdog
        self.frame_observers: list[Callable[[FrameTiming], None]] = []  # called on the publish thread per frame (metrics)
        self._wedge_after = faults.wedge_infer_after()
        self.stats = stats or Stats()
        for name in COUNTERS + (CURVE_COUNTERS if curve is not None else ()):
            self.stats.count(name, 0)  # present from the first meta.stats on, as docs/WIRE.md lists them
        self.ctx = ctx or zmq.Context.instance()
        self.stop_event = threading.Event()
        self.first_published = threading.Event()
        self.sessions_epoch = 0  # ``drop_sessions`` bumps it; the publish and control threads rebind their sockets when it moves
        self.frames: Mailbox[Captured] = Mailbox("capture→infer")
        self.results: Mailbox[Inferred] = Mailbox("infer→publish")
        self._state_lock = threading.Lock()
        self._state = controls.initial_state(styles, cfg.style or None, cfg.strength, cfg.overlay_opacity, cfg.stabilise)
        self._state_version = 0
        self.errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []
        self._last_published: tuple[int, U8] | None = None
        self._last_capture = 0.0  # monotonic s of the newest captured frame

    # -- state shared with the control thread ------------------------------------------
    @property
    def state(self) -> tuple[ControlState, int]:
        with self._state_lock:
            return self._state, self._state_version

    def _set_state(self, s: ControlState) -> None:
        with self._state_lock:
            if s != self._state:
                self._state, self._state_version = s, self._state_version + 1

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        for name, target in (("capture", self._capture_loop), ("infer", self._infer_loop), ("publish", self._publish_loop), ("control", self._control_loop)):
            t = threading.Thread(target=self._guard, args=(name, target), name=f"stylecast-{name}", daemon=True)
            t.start()
            self._threads.append(t)

    def _guard(self, name: str, body: Callable[[], None]) -> None:
        try:
            body()
        except BaseException as e:  # any thread's failure stops the whole pipeline
            log.error("%s thread failed: %s", name, e)
            self.errors.append(e)
            self.stop_event.set()
        finally:
            # Wake the downstream stage: it sees MailboxClosed once the mailbox is empty.
            if name == "capture":
                self.frames.close()
            elif name == "infer":
                self.results.close()

    def stop(self) -> None:
        self.stop_event.set()

    def join(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            log.warning("threads still running after %.1f s: %s", timeout, alive)

    def run(self) -> None:
        """Start, wait until stopped (``stop()``, ``max_frames`` or a failure), join, re-raise."""
        self.start()
        self.stop_event.wait()
        self.frames.close()
        self.join()
        if self.errors:
            raise self.errors[0]

    # -- capture ------------------------------------------------------------------------
    def _capture_loop(self) -> None:
        """Open the source, read until it fails, reopen with capped exponential backoff. Reopening
        also picks up a new resolution (OpenCV would otherwise rescale to the first size)."""
        cfg, spec = self.cfg, parse_source(self.cfg.source)
        backoff, seq, native = BACKOFF_START_S, 0, None
        read_grace = cfg.source_timeout + 1.0 / cfg.fps  # a read may block this long, pacing included
        while not self.stop_event.is_set():
            self.heartbeats.beat("capture", cfg.source_timeout)  # opening a network source may take that long
            try:
                with open_source(spec, cfg.size, cfg.fps, cfg.source_timeout) as src:
                    self.stats.set_status(source=spec.kind, source_state="streaming", source_error=None)
                    last_good, rejected = time.monotonic(), 0
                    while not self.stop_event.is_set():
                        self.heartbeats.beat("capture", read_grace)
                        src.pace()
                        t0 = time.perf_counter()
                        try:
                            frame = src.read()
                        except FrameError as e:
                            self.stats.count("invalid_frames")
                            if rejected == 0:  # once per run of them, not at the frame rate
                                log.warning("source frame rejected: %s", e)
                            rejected += 1
                            if time.monotonic() - last_good > cfg.source_timeout:
                                # only unusable frames: report the source as down and reopen it,
                                # rather than stay "streaming" with nothing published
                                raise SourceError(f"no usable frame for {cfg.source_timeout:g} s ({rejected} rejected; last: {e})") from e
                            continue
                        except SourceError as e:
                            # Report now: releasing a stalled RTSP session can itself take seconds.
                            self.stats.set_status(source_state="reconnecting", source_error=str(e))
                            raise
                        last_good, rejected = time.monotonic(), 0
                        backoff = BACKOFF_START_S  # a frame arrived: the source is healthy
                        if frame.shape[:2] != native:
                            if native is not None:
                                self.stats.count("resolution_changes")
                                log.info("source resolution changed from %s to %s", native, frame.shape[:2])
                            native = frame.shape[:2]
                            self.stats.set_status(source_size=[frame.shape[1], frame.shape[0]])
                        if (frame.shape[1], frame.shape[0]) != cfg.size:
                            frame = cast(U8, cv2.resize(frame, cfg.size, interpolation=cv2.INTER_AREA))
                        seq += 1
                        self._last_capture = time.monotonic()
                        self.frames.put(Captured(seq, time.time(), time.monotonic(), frame, (time.perf_counter() - t0) * 1000))
            except SourceError as e:
                self.stats.count("source_errors")
                self.stats.set_status(source_state="reconnecting", source_error=str(e))
                log.warning("source: %s; retrying in %.1f s", e, backoff)
                self._idle("capture", backoff)
                backoff = min(backoff * 2, BACKOFF_CAP_S)
                self.stats.count("reconnects")

    def _idle(self, stage: str, seconds: float) -> None:
        """Wait ``seconds`` (or until stopped) in short slices, beating, so a stage that is only
        waiting (reconnect backoff) never looks hung to the watchdog."""
        deadline = time.monotonic() + seconds
        while not self.stop_event.is_set() and (left := deadline - time.monotonic()) > 0:
            self.heartbeats.beat(stage)
            self.stop_event.wait(min(0.1, left))

    # -- inference ----------------------------------------------------------------------
    def _infer_loop(self) -> None:
        done = 0
        with self.engine_factory() as engine:
            self.stats.set_status(backend=engine.name)
            if hasattr(engine, "on_long_call"):  # e.g. TensorRT's FP32 rebuild: not a hang
                engine.on_long_call = lambda s: self.heartbeats.beat("infer", s)
            while not self.stop_event.is_set():
                self.heartbeats.beat("infer")
                if self._wedge_after is not None and done >= self._wedge_after:
                    log.error("TEST FAULT: inference hangs now (%s)", faults.WEDGE_INFER_ENV)
                    self.stop_event.wait()  # no beats from here on, as in a hung GPU call
                    return
                try:
                    cap = self.frames.get(0.1)
                except MailboxClosed:
                    return
                if cap is None:
                    continue
                state, _ = self.state
                t0 = time.perf_counter()
                try:
                    res = engine.infer(cap.frame, np.asarray(state.weights(self.styles), np.float32), state.strength)
                except InputError as e:
                    self.stats.count("invalid_frames")
                    log.warning("frame %d rejected: %s", cap.seq, e)
                    continue
                except EngineError:
                    raise
                ms = (time.perf_counter() - t0) * 1000
                counters = getattr(engine, "counters", None)  # e.g. TensorRT's non-finite guard
                if counters:
                    self.stats.set_status(engine_counters=dict(counters))
                done += 1
                self.results.put(Inferred(cap, np.array(res.output), np.array(res.attention), state, ms))

    # -- render + publish ---------------------------------------------------------------
    def _publish_loop(self) -> None:
        cfg, next_stats, published_version = self.cfg, 0.0, -1
        izmq_cm: AbstractContextManager[ImageZmqPublisher | None] = ImageZmqPublisher(self.ctx, cfg.imagezmq) if cfg.imagezmq else nullcontext()
        stabiliser = Stabiliser()  # this thread's: the history of the stream it publishes
        with Publisher(self.ctx, cfg.publish, cfg.encoding, cfg.jpeg_quality, self.curve) as pub, izmq_cm as izmq, \
                HandshakeWatch(pub.socket, "publish", self.stats.count, self.curve is not None) as refused:
            epoch = self.sessions_epoch
            while not self.stop_event.is_set():
                self.heartbeats.beat("publish")
                refused.check()
                if epoch != self.sessions_epoch:
                    epoch = self.sessions_epoch
                    pub.rebind()
                try:
                    item = self.results.get(0.05)
                except MailboxClosed:
                    return
                if item is not None:
                    self._publish_frame(pub, izmq, item, stabiliser)
                now = time.monotonic()
                state, version = self.state
                if now >= next_stats or version != published_version:
                    pub.send_meta(wire.TOPIC_STATE, {"state": state.to_json(), "styles": list(self.styles)})
                    published_version = version
                if now >= next_stats:
                    pub.send_meta(wire.TOPIC_STATS, self.status())
                    next_stats = now + cfg.stats_interval

    def _publish_frame(self, pub: Publisher, izmq: ImageZmqPublisher | None, item: Inferred, stabiliser: Stabiliser) -> None:
        cap, state = item.cap, item.state
        t0 = time.perf_counter()
        stabiliser.set_history(state.stabilise)  # a live setting
        output, attention = stabiliser(cap.frame, item.output, item.attention)
        self.stats.set_status(stabilise_weight=round(stabiliser.last_weight, 3))  # 0: off, a cut, or no motion estimate
        graded = grade(output, state.grading)
        out = compose(state.mode, cap.frame, graded, attention)
        want_overlay = self.cfg.publish_overlay and state.overlay_enabled and pub.wants(wire.TOPIC_OVERLAY)
        overlay = attention_overlay(graded, attention, state.overlay_opacity) if want_overlay else None  # no one subscribed: not drawn
        self._last_published = (cap.seq, out)  # one reference swap: read by snapshot requests
        t1 = time.perf_counter()
        wanted = pub.wants(wire.TOPIC_STYLISED)
        izmq_jpeg = izmq is not None and self.cfg.encoding == "jpeg"
        payload = pub.encode_image(out) if wanted or izmq_jpeg else b""  # one encode for both endpoints
        if wanted:
            pub.send_frame(wire.TOPIC_STYLISED, out, cap.seq, cap.t_capture, state.style, state.strength, payload)
        if izmq is not None:
            izmq.send(imagezmq_parts(out, describe(cap.seq, state.style), self.cfg.encoding, bytes(payload) if izmq_jpeg else None))
        if overlay is not None:
            pub.send_frame(wire.TOPIC_OVERLAY, overlay, cap.seq, cap.t_capture, state.style, state.strength)
        t2 = time.perf_counter()
        timing = FrameTiming(cap.capture_ms, item.infer_ms, (t1 - t0) * 1000, (t2 - t1) * 1000, (time.monotonic() - cap.t_mono) * 1000, time.monotonic())
        self.stats.record(timing)
        for observe in self.frame_observers:
            observe(timing)
        self.first_published.set()
        if self.cfg.max_frames and self.stats.counter("published") >= self.cfg.max_frames:
            self.stop_event.set()

    def status(self) -> dict[str, Any]:
        s = self.stats.snapshot()
        s["drops"] = {"capture": self.frames.dropped, "infer": self.results.dropped}
        if self._last_capture:
            s["frame_age_ms"] = round((time.monotonic() - self._last_capture) * 1000, 1)  # grows while a source is away
        return s

    def drop_sessions(self) -> None:
        """Close every peer's connection to the publish and control sockets (each thread rebinds
        its own at its next turn). Clients reconnect by themselves and handshake again, so after
        a CURVE key was removed from the allow-list its sessions end while the others resume
        within ZeroMQ's reconnect interval (~0.2 s)."""
        self.sessions_epoch += 1

    # -- control ------------------------------------------------------------------------
    def _control_loop(self) -> None:
        sock = self.ctx.socket(zmq.REP)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, controls.MAX_REQUEST_BYTES * 4)
        sock.setsockopt(zmq.HANDSHAKE_IVL, HANDSHAKE_MS)
        try:
            if self.curve is not None:
                self.curve.apply(sock)
            sock.bind(self.cfg.control)
        except zmq.ZMQError as e:
            sock.close(0)
            raise ControlError(f"cannot bind control socket to {self.cfg.control}: {e}") from e
        refused = HandshakeWatch(sock, "control", self.stats.count, self.curve is not None)
        epoch = self.sessions_epoch
        try:
            while not self.stop_event.is_set():
                self.heartbeats.beat("control")
                refused.check()
                if epoch != self.sessions_epoch:
                    epoch = self.sessions_epoch
                    rebind(sock, self.cfg.control)
                if sock.poll(100):
                    # every part is read before the reply: REP refuses to send with parts unread
                    sock.send(self.handle_parts(sock.recv_multipart()))
        finally:
            refused.close()
            sock.close(0)

    def reconfigure(self, live: dict[str, Any]) -> None:
        """Apply reloaded settings (streamer.settings.RELOADABLE) to the running pipeline: style,
        strength, overlay opacity and stabilisation go into the control state, like a control request would."""
        unknown = set(live) - {"style", "strength", "overlay_opacity", "publish_overlay", "stabilise"}
        if unknown:
            raise ControlError(f"cannot change {sorted(unknown)} while running")
        state, _ = self.state
        if "style" in live:
            state = replace(state, style=controls.resolve_style(live["style"] or self.styles[0], self.styles))
        if "strength" in live:
            state = replace(state, strength=float(live["strength"]))
        if "overlay_opacity" in live:
            state = replace(state, overlay_opacity=float(live["overlay_opacity"]))
        if "stabilise" in live:
            state = replace(state, stabilise=float(live["stabilise"]))
        self._set_state(state)
        if "publish_overlay" in live:
            self.cfg = replace(self.cfg, publish_overlay=bool(live["publish_overlay"]))  # one reference swap, read per frame

    def snapshot(self, name: str | None) -> Path:
        """Write the last published ``frame.stylised`` image to the snapshot folder
        (``cfg.snapshot_dir``, else ``snapshots.default_dir``); returns its path."""
        last = self._last_published
        if last is None:
            raise ControlError("no frame has been published yet")
        seq, image = last
        return snapshots.write(Path(self.cfg.snapshot_dir) if self.cfg.snapshot_dir else snapshots.default_dir(), name, seq, image)

    def handle_parts(self, parts: list[bytes]) -> bytes:
        """The reply to one received message of ``parts`` (a request is exactly one part)."""
        if len(parts) != 1:
            self.stats.count("control_errors")
            return controls.reply_error(f"a request is one message part, got {len(parts)}")
        return self.handle_request(parts[0])

    def handle_request(self, raw: bytes) -> bytes:
        """One reply for one request; never raises for a bad request."""
        try:
            req = controls.parse_request(raw)
            state, _ = self.state
            new = controls.apply_request(state, req, self.styles)
            extra = {"snapshot": str(self.snapshot(controls.snapshot_name(req)))} if req["cmd"] == "snapshot" else None
            self._set_state(new)
            self.stats.count("control_ok")
            return controls.reply_ok(new, self.status(), extra)
        except ControlError as e:
            self.stats.count("control_errors")
            return controls.reply_error(str(e))
        except Exception as e:  # a bug must not take the control socket down; the reply says so
            log.exception("control request failed")
            self.stats.count("control_errors")
            return controls.reply_error(f"internal error: {type(e).__name__}")
