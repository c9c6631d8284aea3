"""Scale-out: two daemons on one box from two TOML configs (what two stylecast@ instances run),
received directly and through `stylecast relay` (XSUB/XPUB), end to end in subprocesses."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import zmq

from streamer import wire
from streamer.bench import free_tcp_port
from streamer.client import Subscriber
from streamer.config import ServeConfig
from streamer.daemon import serve
from streamer.relay import Relay
from streamer.security import create_keypair, load_client_keys, load_server_keys
from tests.service_tools import start_daemon

pytestmark = pytest.mark.slow


def shapes_from(endpoint: str, want: set[tuple[int, int, int]], timeout: float = 60.0, **kw: object) -> set[tuple[int, int, int]]:
    """Frame shapes seen on ``endpoint`` until all of ``want`` arrived or ``timeout`` s passed."""
    seen: set[tuple[int, int, int]] = set()
    deadline = time.monotonic() + timeout
    with Subscriber(endpoint, topics=[wire.TOPIC_STYLISED + "\x00"], **kw) as sub:  # type: ignore[arg-type]
        while not want <= seen and time.monotonic() < deadline:
            msg = sub.recv(1.0)
            if msg is not None and msg.frame is not None:
                seen.add(msg.frame.shape)
    return seen


def test_two_instances_direct_and_through_a_relay(tmp_path: Path) -> None:
    cams = []
    for name, (w, h) in (("cam0", (128, 72)), ("cam1", (160, 96))):
        toml = tmp_path / f"{name}.toml"  # what /etc/stylecast/cam0.toml would hold
        toml.write_text(f'source = "demo"\nwidth = {w}\nheight = {h}\nfps = 10\n'
                        f'publish = "tcp://127.0.0.1:{free_tcp_port()}"\ncontrol = "tcp://127.0.0.1:{free_tcp_port()}"\n')
        cams.append((start_daemon(tmp_path, "--config", str(toml), name=name, ports=False), toml))
    backend = f"tcp://127.0.0.1:{free_tcp_port()}"
    pubs = [toml.read_text().split('publish = "')[1].split('"')[0] for _, toml in cams]
    relay_log = (tmp_path / "relay.log").open("w")
    relay = subprocess.Popen([sys.executable, "-m", "streamer", "relay", "--frontend", pubs[0], "--frontend", pubs[1], "--backend", backend],
                             stdout=relay_log, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert shapes_from(pubs[0], {(72, 128, 3)}) == {(72, 128, 3)}
        assert shapes_from(pubs[1], {(96, 160, 3)}) == {(96, 160, 3)}
        both = {(72, 128, 3), (96, 160, 3)}
        assert shapes_from(backend, both) == both, "the relay carries both cameras"
        # a second port in use: the relay refuses to start, exit 2
        busy = subprocess.run([sys.executable, "-m", "streamer", "relay", "--frontend", pubs[0], "--backend", backend],
                              capture_output=True, text=True, timeout=60)
        assert busy.returncode == 2 and "backend:" in busy.stderr and "already in use" in busy.stderr
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(10) == 0
        for d, _ in cams:
            assert d.stop() == 0
    finally:
        for p in [relay] + [d.proc for d, _ in cams]:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        relay_log.close()
        print((tmp_path / "relay.log").read_text(), *(d.output() for d, _ in cams))


def test_curve_relay(tmp_path: Path) -> None:
    """A CURVE daemon → relay (CURVE client upstream, CURVE server downstream) → an allowed viewer;
    a viewer without an allowed key gets nothing from the relay."""
    keys = tmp_path / "keys"
    _, daemon_secret = create_keypair(keys, "daemon")
    relay_pub, relay_secret = create_keypair(keys, "relay")
    viewer_pub, viewer_secret = create_keypair(keys, "viewer")
    _, stranger_secret = create_keypair(keys, "stranger")
    (tmp_path / "daemon_clients").mkdir()
    shutil.copy(relay_pub, tmp_path / "daemon_clients")  # the daemon allows the relay
    (tmp_path / "relay_clients").mkdir()
    shutil.copy(viewer_pub, tmp_path / "relay_clients")  # the relay allows the viewer
    cfg = ServeConfig(source="demo", width=96, height=64, fps=10, publish=f"tcp://127.0.0.1:{free_tcp_port()}", control=f"tcp://127.0.0.1:{free_tcp_port()}",
                      curve_server_key=str(daemon_secret), curve_clients_dir=str(tmp_path / "daemon_clients"))
    backend = f"tcp://127.0.0.1:{free_tcp_port()}"
    stop = threading.Event()
    ctx: zmq.Context[Any] = zmq.Context()  # the relay's own context: its own ZAP handler, apart from the daemon's
    relay = Relay([cfg.publish], backend, load_server_keys(relay_secret, tmp_path / "relay_clients"),
                  load_client_keys(keys / "daemon.key", relay_secret), ctx=ctx)
    threads = [threading.Thread(target=serve, args=(cfg, stop), daemon=True), threading.Thread(target=relay.run, args=(stop,), daemon=True)]
    for t in threads:
        t.start()
    try:
        assert relay.ready.wait(30)
        assert shapes_from(backend, {(64, 96, 3)}, curve=load_client_keys(keys / "relay.key", viewer_secret)) == {(64, 96, 3)}
        assert shapes_from(backend, {(64, 96, 3)}, timeout=3, curve=load_client_keys(keys / "relay.key", stranger_secret)) == set()
    finally:
        stop.set()
        for t in threads:
            t.join(15)
    assert not any(t.is_alive() for t in threads)
    term = threading.Thread(target=ctx.term, daemon=True)  # returns only once the relay closed every socket it opened
    term.start()
    term.join(10)
    assert not term.is_alive(), "the relay left a socket open"
    with socket.socket() as s:  # the relay let go of its port
        s.bind(("127.0.0.1", int(backend.rsplit(":", 1)[1])))


@pytest.mark.parametrize(("args", "words"), [
    (["--frontend", "foo", "--backend", "tcp://127.0.0.1:1"], "--frontend: expected tcp://HOST:PORT"),
    (["--frontend", "tcp://127.0.0.1:99999", "--backend", "tcp://127.0.0.1:1"], "--frontend: port must be 1–65535"),
    (["--frontend", "tcp://127.0.0.1:5555", "--backend", "bar"], "--backend: expected tcp://HOST:PORT"),
])
def test_relay_endpoints_are_checked_like_view_and_ctl(args: list[str], words: str, capsys: pytest.CaptureFixture[str]) -> None:
    from streamer import cli

    assert cli.main(["relay", *args]) == cli.EXIT_CONFIG
    assert words in capsys.readouterr().err


def test_relay_backend_port_in_use_is_named_once(capsys: pytest.CaptureFixture[str]) -> None:
    from streamer import cli

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        port = busy.getsockname()[1]
        assert cli.main(["relay", "--frontend", "tcp://127.0.0.1:5555", "--backend", f"tcp://127.0.0.1:{port}"]) == cli.EXIT_CONFIG
    finally:
        busy.close()
    err = capsys.readouterr().err
    assert "--backend: 127.0.0.1:" in err and "backend: --backend" not in err and err.count("backend:") == 1, err
