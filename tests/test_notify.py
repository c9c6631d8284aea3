"""sd_notify without systemd: a fake NOTIFY_SOCKET receives READY, STATUS, WATCHDOG and STOPPING
from a real `stylecast serve`; the watchdog pings stop when inference hangs and keep going while
the source is only reconnecting."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.client import Subscriber
from streamer.faults import WEDGE_INFER_ENV
from streamer.heartbeat import Heartbeats
from streamer.notify import Notifier, NotifyError, socket_address, watchdog_interval
from streamer.service import status_line
from tests.service_tools import SMALL, NotifyListener, start_daemon

W_S = 2.0  # WatchdogSec the tests pretend systemd set
WATCHDOG_ENV = {"WATCHDOG_USEC": str(int(W_S * 1e6))}


# -- the protocol, in-process -------------------------------------------------------------
def test_notifier_path_and_abstract_socket(tmp_path: Path) -> None:
    for name in (str(tmp_path / "n.sock"), f"@stylecast-test-{os.getpid()}"):
        listener = NotifyListener(name)
        try:
            with Notifier(name) as n:
                assert n.enabled
                n.ready("publishing,\nsource: cv2 error")  # e.g. a source error's text: READY must still go out
                n.watchdog()
                n.status("fps 30\n drops 0")  # newlines would split the assignment: folded
            listener.poll(0.5)
            assert [m for _, m in listener.messages] == [{"READY": "1", "STATUS": "publishing, source: cv2 error"}, {"WATCHDOG": "1"}, {"STATUS": "fps 30 drops 0"}]
        finally:
            listener.close()


def test_notifier_without_systemd_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    with Notifier() as n:
        assert not n.enabled
        n.ready()
        n.stopping()


def test_notifier_errors_are_typed(tmp_path: Path) -> None:
    with pytest.raises(NotifyError, match="absolute path"):
        socket_address("relative.sock")
    with Notifier(str(tmp_path / "nobody-listens.sock")) as n, pytest.raises(NotifyError, match="failed"):
        n.watchdog()
    with Notifier(str(tmp_path / "x.sock")) as n, pytest.raises(NotifyError, match="KEY=VALUE"):
        n.notify("READY")
    assert socket_address("@abc") == "\0abc"


def test_watchdog_interval_reads_usec_and_pid() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "2500000"}) == 2.5
    assert watchdog_interval({"WATCHDOG_USEC": "2500000", "WATCHDOG_PID": str(os.getpid())}) == 2.5
    assert watchdog_interval({"WATCHDOG_USEC": "2500000", "WATCHDOG_PID": "1"}, pid=2) is None  # meant for another process
    assert watchdog_interval({}) is None and watchdog_interval({"WATCHDOG_USEC": "soon"}) is None


def test_heartbeats_stale_and_grace() -> None:
    hb = Heartbeats(("a", "b"))
    assert hb.stale(1.0) == ["a", "b"] and not hb.started()
    now = time.monotonic()
    hb.beat("a")
    hb.beat("b", grace_s=5.0)  # about to block for up to 5 s on purpose
    assert hb.started() and hb.stale(1.0, now + 0.5) == []
    assert hb.stale(1.0, now + 2.0) == ["a"]  # b is still inside its grace
    assert hb.stale(1.0, now + 7.0) == ["a", "b"]
    with pytest.raises(KeyError):
        hb.beat("c")


def test_status_line() -> None:
    line = status_line({"fps": 29.94, "drops": {"capture": 3, "infer": 1}, "latency_ms": {"p50": 41.2, "p95": 60.7}, "source_state": "streaming"})
    assert line == "fps 29.9, drops 3+1, latency p50 41 ms p95 61 ms, source streaming"
    assert "connection refused" in status_line({"source_state": "reconnecting", "source_error": "connection refused"})


# -- a real daemon --------------------------------------------------------------------------
@pytest.mark.slow
def test_ready_status_watchdog_stopping_in_order(tmp_path: Path) -> None:
    listener = NotifyListener(tmp_path / "notify.sock")
    d = start_daemon(tmp_path, *SMALL, env={"NOTIFY_SOCKET": listener.path, **WATCHDOG_ENV})
    try:
        t_ready = listener.wait_for("READY", 60)
        listener.poll(2.5)
        assert d.proc.poll() is None
        rc = d.stop()
        listener.poll(1.0)
    finally:
        listener.close()
        if d.proc.poll() is None:
            d.proc.kill()
    print(d.output())
    assert rc == 0
    t_status, t_ping, t_stopping = (listener.times(k) for k in ("STATUS", "WATCHDOG", "STOPPING"))
    assert t_status and t_ping and len(t_stopping) == 1
    # READY first (nothing is reported before the first frame is out), then STATUS and WATCHDOG, STOPPING last
    assert min(t_status) >= t_ready and min(t_ping) >= t_ready
    assert max(t_status + t_ping) <= t_stopping[0] and listener.messages[-1][1] == {"STOPPING": "1"}
    assert [m for _, m in listener.messages].index({"WATCHDOG": "1"}) > 0
    # STATUS once a second with fps, drops and latency; pings every W/3
    status = [m["STATUS"] for _, m in listener.messages if "STATUS" in m]
    assert any("fps" in s and "drops" in s and "latency" in s for s in status), status
    assert len(t_ping) >= 3


@pytest.mark.slow
def test_wedged_inference_stops_the_pings_within_the_watchdog_interval(tmp_path: Path) -> None:
    listener = NotifyListener(tmp_path / "notify.sock")
    d = start_daemon(tmp_path, *SMALL, env={"NOTIFY_SOCKET": listener.path, **WATCHDOG_ENV, WEDGE_INFER_ENV: "40"})
    try:
        with Subscriber(d.publish, topics=["frame.stylised\x00"]) as sub:
            listener.wait_for("READY", 60)
            t_last_frame = time.monotonic()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # frames flow, then stop when inference hangs
                listener.poll(0.0)
                msg = sub.recv(1.0)
                if msg is None:
                    break
                t_last_frame = time.monotonic()
            assert time.monotonic() < deadline, "frames never stopped: the fault hook did not fire"
        listener.poll(3 * W_S)  # three watchdog intervals of silence: systemd would have restarted us
        assert d.proc.poll() is None, "the daemon itself must stay up (only systemd restarts it)"
    finally:
        listener.close()
        d.stop()
    out = d.output()
    print(out)
    pings = listener.times("WATCHDOG")
    assert pings, "pings before the hang"
    assert max(pings) <= t_last_frame + W_S, f"pinged {max(pings) - t_last_frame:.2f} s after the last frame (watchdog {W_S} s)"
    assert any(t > max(pings) + W_S for t in listener.times("STATUS")), "STATUS keeps coming: the service thread is alive, it just stopped pinging"
    assert "stopped pinging; stale: ['infer']" in out


def _tiny_video(path: Path, n: int = 20) -> None:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15, (128, 72))
    for i in range(n):
        w.write(np.full((72, 128, 3), (i * 12) % 256, np.uint8))
    w.release()


@pytest.mark.slow
@pytest.mark.parametrize("source", ["rtsp", "unreadable_file"])
def test_reconnecting_source_keeps_pinging(tmp_path: Path, source: str) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on: connection refused, every time
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    video = tmp_path / "cam.avi"
    video.write_bytes(b"")  # there, but not a video yet (a file that is missing at start is a config error)
    url = f"rtsp://127.0.0.1:{closed}/cam" if source == "rtsp" else str(video)
    listener = NotifyListener(tmp_path / "notify.sock")
    d = start_daemon(tmp_path, "--source", url, "--width", "128", "--height", "72", "--source-timeout", "0.2",
                     env={"NOTIFY_SOCKET": listener.path, **WATCHDOG_ENV})
    try:
        t0 = listener.wait_for("WATCHDOG", 60)
        listener.poll(4 * W_S)  # several backoff rounds (0.2 → 2 s) and open attempts
        pings = [t for t in listener.times("WATCHDOG") if t >= t0]
        gaps = np.diff(pings)
        assert len(pings) >= 8 and gaps.max() < W_S / 3 + 0.4, f"pings {len(pings)}, largest gap {gaps.max():.2f} s"
        assert not listener.times("READY"), "no frame yet: READY must wait"
        if source == "unreadable_file":  # the file becomes a video: frames and READY follow
            _tiny_video(video)
            listener.wait_for("READY", 30)
            listener.poll(1.5)
            assert listener.times("WATCHDOG")[-1] > listener.times("READY")[0]
        assert d.proc.poll() is None
        assert d.stop() == 0
    finally:
        listener.close()
        if d.proc.poll() is None:
            d.proc.kill()
    print(d.output())
