"""Fault tests with a real RTSP server on loopback (gst-rtsp-server via the system python3-gi):
server killed and restarted, frozen (SIGSTOP) and resumed, a bad URL, a resolution change. In
each case the daemon keeps running and publishing stats, reports the fault, and stylised frames
resume within 5 s of the source coming back. Detection/recovery times are printed (and appended
as JSON lines to $STYLECAST_RELIABILITY_OUT when set) for docs/RELIABILITY.md."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streamer import wire
from streamer.bench import free_tcp_port
from streamer.client import Subscriber, request

pytestmark = pytest.mark.slow
SERVER = Path(__file__).parent / "tools" / "rtsp_server.py"
SYSTEM_PY = "/usr/bin/python3"


def _have_gst() -> bool:
    if not Path(SYSTEM_PY).exists():
        return False
    code = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    return subprocess.run([SYSTEM_PY, "-c", code], capture_output=True, timeout=30).returncode == 0


if not _have_gst():
    pytest.skip("gst-rtsp-server for the system python3 is missing (apt-get install gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-ugly; .ci/run does)", allow_module_level=True)


class RtspServer:
    def __init__(self, port: int) -> None:
        self.port, self.proc = port, None  # type: ignore[var-annotated]

    def start(self, w: int = 320, h: int = 240) -> float:
        self.proc = subprocess.Popen([SYSTEM_PY, str(SERVER), str(self.port), str(w), str(h)], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        assert line.strip() == "READY", f"rtsp server said {line!r}"
        return time.monotonic()

    def kill(self) -> float:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        return time.monotonic()

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam"


@pytest.fixture()
def rig(tmp_path: Path) -> Iterator[tuple[RtspServer, Callable[[str], subprocess.Popen[str]], str, str]]:
    server = RtspServer(free_tcp_port())
    pub, ctl = f"tcp://127.0.0.1:{free_tcp_port()}", f"tcp://127.0.0.1:{free_tcp_port()}"
    procs: list[subprocess.Popen[str]] = []
    log = (tmp_path / "serve.log").open("w")

    def start_daemon(url: str) -> subprocess.Popen[str]:
        p = subprocess.Popen([sys.executable, "-m", "streamer", "serve", "--source", url, "--source-timeout", "2", "--width", "320", "--height", "184",
                              "--publish", pub, "--control", ctl], stdout=log, stderr=subprocess.STDOUT, text=True)
        procs.append(p)
        return p

    try:
        yield server, start_daemon, pub, ctl
    finally:
        server.kill()
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        log.close()
        print((tmp_path / "serve.log").read_text()[-3000:])


def wait_for(sub: Subscriber, pred: Callable[[Any], bool], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = sub.recv(0.5)
        if msg is not None and pred(msg):
            return msg
    raise AssertionError(f"condition not met within {timeout} s")


def is_frame(msg: Any) -> bool:
    return bool(msg.topic == wire.TOPIC_STYLISED)


def reconnecting(msg: Any) -> bool:
    return bool(msg.topic == wire.TOPIC_STATS and msg.header.get("source_state") == "reconnecting")


def record(case: str, **figures: float) -> None:
    line = json.dumps({"case": case, **{k: round(v, 2) for k, v in figures.items()}})
    print(line)
    out = os.environ.get("STYLECAST_RELIABILITY_OUT")
    if out:
        with open(out, "a") as f:
            f.write(line + "\n")


def test_server_killed_and_restarted(rig) -> None:  # type: ignore[no-untyped-def]
    server, start_daemon, pub, ctl = rig
    server.start()
    daemon = start_daemon(server.url)
    with Subscriber(pub, topics=["frame.stylised\x00", "meta.stats\x00"]) as sub:
        wait_for(sub, is_frame, 60)
        t_kill = server.kill()
        wait_for(sub, reconnecting, 15)
        detect = time.monotonic() - t_kill
        wait_for(sub, lambda m: m.topic == wire.TOPIC_STATS, 3)  # stats keep flowing while the camera is away
        t_back = server.start()
        wait_for(sub, lambda m: is_frame(m) and m.frame.t_capture > time.time() - (time.monotonic() - t_back), 5.0)
        recover = time.monotonic() - t_back
    assert daemon.poll() is None
    assert request(ctl, {"cmd": "status"})["status"]["counters"]["reconnects"] >= 1
    record("server killed, restarted", detect_s=detect, recover_s=recover)


def test_server_frozen_then_resumed(rig) -> None:  # type: ignore[no-untyped-def]
    server, start_daemon, pub, _ = rig
    server.start()
    daemon = start_daemon(server.url)
    with Subscriber(pub, topics=["frame.stylised\x00", "meta.stats\x00"]) as sub:
        wait_for(sub, is_frame, 60)
        server.proc.send_signal(signal.SIGSTOP)
        t_stop = time.monotonic()
        wait_for(sub, reconnecting, 15)
        detect = time.monotonic() - t_stop
        time.sleep(1.0)
        server.proc.send_signal(signal.SIGCONT)
        t_back = time.monotonic()
        wait_for(sub, lambda m: is_frame(m) and m.frame.t_capture > time.time() - (time.monotonic() - t_back), 5.0)
        recover = time.monotonic() - t_back
    assert daemon.poll() is None
    record("server frozen (SIGSTOP), resumed", detect_s=detect, recover_s=recover)


def test_bad_url_keeps_daemon_up_and_reports(rig) -> None:  # type: ignore[no-untyped-def]
    server, start_daemon, pub, ctl = rig
    t0 = time.monotonic()
    daemon = start_daemon(f"rtsp://127.0.0.1:{free_tcp_port()}/nothing-here")
    with Subscriber(pub, topics=["meta.stats\x00"]) as sub:
        msg = wait_for(sub, reconnecting, 30)
        detect = time.monotonic() - t0
        assert "cannot open" in msg.header["source_error"]
        wait_for(sub, reconnecting, 5)  # still publishing stats
    reply = request(ctl, {"cmd": "status"})
    assert reply["ok"] and reply["status"]["counters"]["reconnects"] >= 1 and daemon.poll() is None
    record("bad URL", detect_s=detect)


def test_resolution_change_between_runs(rig) -> None:  # type: ignore[no-untyped-def]
    server, start_daemon, pub, ctl = rig
    server.start(320, 240)
    start_daemon(server.url)
    with Subscriber(pub, topics=["frame.stylised\x00", "meta.stats\x00"]) as sub:
        wait_for(sub, lambda m: m.topic == wire.TOPIC_STATS and m.header.get("source_size") == [320, 240], 60)
        server.kill()
        wait_for(sub, reconnecting, 15)
        t_back = server.start(480, 272)
        msg = wait_for(sub, lambda m: is_frame(m) and m.frame.t_capture > time.time() - (time.monotonic() - t_back), 5.0)
        recover = time.monotonic() - t_back
        assert msg.image.shape == (184, 320, 3)  # still the processing size
        wait_for(sub, lambda m: m.topic == wire.TOPIC_STATS and m.header.get("source_size") == [480, 272], 5)
    assert request(ctl, {"cmd": "status"})["status"]["counters"]["resolution_changes"] == 1
    record("resolution change 320x240 -> 480x272", recover_s=recover)
