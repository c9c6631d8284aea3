"""CURVE on the stream and control sockets: an allowed key gets frames and replies; an unknown key,
a client without CURVE and an oversize message are turned away — seen in socket monitor events
(the client's handshake result, and the daemon's own count of the EVENT_HANDSHAKE_FAILED_AUTH /
_PROTOCOL events on its server sockets), not inferred from timeouts."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from streamer.bench import free_tcp_port
from streamer.client import Subscriber, request
from streamer.config import ConfigError, ServeConfig, validate
from streamer.daemon import serve
from streamer.security import ClientKeys, create_keypair, load_client_keys

OUTCOMES = {zmq.EVENT_HANDSHAKE_SUCCEEDED: "succeeded", zmq.EVENT_HANDSHAKE_FAILED_AUTH: "failed_auth",
            zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "failed_protocol", zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "failed", zmq.EVENT_DISCONNECTED: "disconnected"}


@dataclass
class Keys:
    server_public: Path
    server_secret: Path
    clients_dir: Path
    allowed: ClientKeys
    unknown: ClientKeys


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    root = tmp_path_factory.mktemp("keys")
    spub, ssec = create_keypair(root / "server", "server")
    clients = root / "clients"
    clients.mkdir()
    apub, asec = create_keypair(root / "alice", "alice")
    shutil.copy(apub, clients / apub.name)  # alice is on the allow-list
    _, msec = create_keypair(root / "mallory", "mallory")  # mallory is not
    return Keys(spub, ssec, clients, load_client_keys(spub, asec), load_client_keys(spub, msec))


@pytest.fixture(scope="module")
def daemon(keys: Keys) -> Iterator[ServeConfig]:
    cfg = ServeConfig(source="demo", width=96, height=64, fps=20, publish=f"tcp://127.0.0.1:{free_tcp_port()}",
                      control=f"tcp://127.0.0.1:{free_tcp_port()}", curve_server_key=str(keys.server_secret), curve_clients_dir=str(keys.clients_dir))
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            serve(cfg, stop)
        except BaseException as e:  # reported by the test that needs the daemon
            errors.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    yield cfg
    stop.set()
    t.join(15)
    assert not t.is_alive() and not errors, errors


def outcomes(sock: zmq.Socket[Any], mon: zmq.Socket[Any], n: int = 1, timeout_s: float = 10.0) -> list[str]:
    """The first ``n`` handshake outcomes / disconnects the monitor reports (others skipped)."""
    seen: list[str] = []
    while len(seen) < n and mon.poll(int(timeout_s * 1000)):
        ev = recv_monitor_message(mon)["event"]
        if ev in OUTCOMES:
            seen.append(OUTCOMES[ev])
    return seen


def sub_socket(ctx: zmq.Context[Any], endpoint: str, curve: ClientKeys | None, topic: bytes = b"") -> tuple[zmq.Socket[Any], zmq.Socket[Any]]:
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.LINGER, 0)
    mon = s.get_monitor_socket()
    if curve is not None:
        curve.apply(s)
    s.setsockopt(zmq.SUBSCRIBE, topic)
    s.connect(endpoint)
    return s, mon


def close(*socks: zmq.Socket[Any]) -> None:
    for s in socks:
        if s.type != zmq.PAIR:
            s.disable_monitor()
    for s in socks:
        s.close(0)


def test_allowed_key_receives_frames_and_control_replies(daemon: ServeConfig, keys: Keys) -> None:
    with Subscriber(daemon.publish, topics=["frame.stylised\x00"], curve=keys.allowed) as sub:
        mon = sub.socket.get_monitor_socket()
        msg = sub.recv(60)
        assert msg is not None and msg.image is not None and msg.image.shape == (64, 96, 3)
        sub.socket.disable_monitor()
        mon.close(0)
    reply = request(daemon.control, {"cmd": "set_strength", "value": 0.5}, timeout=10, curve=keys.allowed)
    assert reply["ok"] is True and reply["state"]["strength"] == 0.5


@pytest.mark.parametrize("who", ["unknown_key", "no_curve"])
@pytest.mark.parametrize("endpoint", ["publish", "control"])
def test_rejected_clients_fail_the_handshake(daemon: ServeConfig, keys: Keys, who: str, endpoint: str) -> None:
    ctx = zmq.Context.instance()
    before = request(daemon.control, {"cmd": "status"}, timeout=60, curve=keys.allowed)["status"]["counters"]  # the daemon is up
    curve = keys.unknown if who == "unknown_key" else None
    if endpoint == "publish":
        s, mon = sub_socket(ctx, daemon.publish, curve)
    else:
        s = ctx.socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        mon = s.get_monitor_socket()
        if curve is not None:
            curve.apply(s)
        s.connect(daemon.control)
        try:  # queued while the connection's pipe exists; once the handshake is refused ZeroMQ drops
            s.send(b'{"cmd": "status"}', zmq.NOBLOCK)  # it, and a blocking send on a REQ with no pipe never returns (zeromq/libzmq#2329)
        except zmq.Again:
            pass
    try:
        got = outcomes(s, mon)
        # the client is told why (ZAP's 400) when its key is refused; a NULL client is just dropped
        assert got == ["failed_auth"] if who == "unknown_key" else got in (["failed_protocol"], ["failed"]), got  # a race decides which of the two
        assert not s.poll(500), "a rejected client must receive nothing"
    finally:
        close(s, mon)
    # the daemon's own monitor on that socket saw the refusal (EVENT_HANDSHAKE_FAILED_AUTH for a key not
    # on the allow-list; for a NULL client, _PROTOCOL or _NO_DETAIL depending on who hangs up first)
    wait_for_refusal(daemon, keys, before, ("auth_failures",) if who == "unknown_key" else ("protocol_failures", "handshake_failures"))


def wait_for_refusal(daemon: ServeConfig, keys: Keys, before: dict[str, int], kinds: tuple[str, ...]) -> None:
    deadline = time.monotonic() + 5
    while True:
        counters = request(daemon.control, {"cmd": "status"}, timeout=10, curve=keys.allowed)["status"]["counters"]
        if sum(counters.get(k, 0) for k in kinds) > sum(before.get(k, 0) for k in kinds):
            return
        assert time.monotonic() < deadline, f"the daemon did not count a refused handshake {kinds}: {counters}"
        time.sleep(0.1)


# A ZMTP 3.0 greeting asking for the NULL mechanism (no CURVE): signature, version 3.0, mechanism, as-server 0, filler.
NULL_GREETING = b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31


@pytest.mark.parametrize("endpoint", ["publish", "control"])
def test_null_mechanism_is_a_protocol_failure(daemon: ServeConfig, keys: Keys, endpoint: str) -> None:
    """Deterministic (the client side of ZMTP done by hand): the server offers CURVE, reads our NULL
    greeting, hangs up, and its monitor reports EVENT_HANDSHAKE_FAILED_PROTOCOL (mechanism mismatch)."""
    before = request(daemon.control, {"cmd": "status"}, timeout=60, curve=keys.allowed)["status"]["counters"]
    port = int(getattr(daemon, endpoint).rsplit(":", 1)[1])
    assert len(NULL_GREETING) == 64
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:  # every recv below: 10 s at most
        raw.sendall(NULL_GREETING[:11])  # signature + major version: the server then sends its full greeting
        greeting = b""
        while len(greeting) < 64 and (chunk := raw.recv(64 - len(greeting))):
            greeting += chunk
        assert greeting[:1] == b"\xff" and greeting[12:17] == b"CURVE", greeting  # it offers CURVE only
        raw.sendall(NULL_GREETING[11:])
        try:
            assert raw.recv(4096) == b"", "the server must hang up on a NULL client"
        except ConnectionResetError:
            pass
    wait_for_refusal(daemon, keys, before, ("protocol_failures",))


def test_oversize_messages_drop_the_peer(daemon: ServeConfig, keys: Keys) -> None:
    ctx = zmq.Context.instance()
    # control: a 100 kB request from an allowed key — handshake succeeds, then the server drops it
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    mon = s.get_monitor_socket()
    keys.allowed.apply(s)
    s.connect(daemon.control)
    s.send(b'{"cmd": "status", "pad": "' + b"x" * 100_000 + b'"}')
    try:
        assert outcomes(s, mon, 2) == ["succeeded", "disconnected"]
        assert not s.poll(500)
    finally:
        close(s, mon)
    # stream: a subscription bigger than any topic is refused the same way
    s, mon = sub_socket(ctx, daemon.publish, keys.allowed, topic=b"x" * 4096)
    try:
        assert outcomes(s, mon, 2) == ["succeeded", "disconnected"]
    finally:
        close(s, mon)
    assert request(daemon.control, {"cmd": "status"}, timeout=10, curve=keys.allowed)["ok"] is True  # still serving


def test_control_leaves_loopback_only_with_curve(keys: Keys) -> None:
    cfg = ServeConfig(control="tcp://0.0.0.0:5556")
    with pytest.raises(ConfigError, match="^control: .* only served beyond loopback with CURVE"):
        validate(cfg)
    assert validate(replace(cfg, curve_server_key=str(keys.server_secret), curve_clients_dir=str(keys.clients_dir))).curve
    with pytest.raises(ConfigError, match="^curve_clients_dir: CURVE needs both"):
        validate(replace(cfg, curve_server_key=str(keys.server_secret)))
    with pytest.raises(ConfigError, match="^curve_server_key: .* holds no secret key"):
        validate(replace(cfg, curve_server_key=str(keys.server_public), curve_clients_dir=str(keys.clients_dir)))


def test_keygen_and_ctl_with_keys_from_the_command_line(daemon: ServeConfig, keys: Keys, tmp_path: Path) -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "streamer", "keygen", str(tmp_path / "k"), "--name", "bob"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    secret = tmp_path / "k" / "bob.key_secret"
    assert (tmp_path / "k" / "bob.key").is_file() and secret.stat().st_mode & 0o777 == 0o600
    again = subprocess.run([sys.executable, "-m", "streamer", "keygen", str(tmp_path / "k"), "--name", "bob"], capture_output=True, text=True, timeout=60)
    assert again.returncode != 0 and "already exists" in again.stderr  # never overwrites a key
    alice = next(p for p in keys.clients_dir.parent.glob("alice/alice.key_secret"))
    ctl = [sys.executable, "-m", "streamer", "ctl", "--endpoint", daemon.control, "--timeout", "10", "--server-key", str(keys.server_public)]
    ok = subprocess.run([*ctl, "--client-key", str(alice), "status"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and ok.stdout.startswith("style ") and "stream:" in ok.stdout, ok.stderr
    refused = subprocess.run([*ctl[:-2], "--timeout", "1", "status"], capture_output=True, text=True, timeout=60)  # no keys: no reply
    assert refused.returncode == 1 and "no reply" in refused.stderr


def test_removing_a_key_and_reloading_ends_that_clients_open_sessions(keys: Keys, tmp_path: Path) -> None:
    """DEPLOY.md's "change the folder, reload" is a revocation: before, bob's open subscriber
    kept receiving frames and his REQ kept getting replies after his key file was removed and
    the daemon reloaded, since libzmq checks a key only at the handshake. Now every session is
    dropped on such a reload; alice reconnects by herself, bob's handshake fails."""
    from streamer.service import Reloader

    clients = tmp_path / "clients"
    shutil.copytree(keys.clients_dir, clients)
    bpub, bsec = create_keypair(tmp_path / "bob", "bob")
    shutil.copy(bpub, clients / bpub.name)
    bob = load_client_keys(keys.server_public, bsec)
    cfg = ServeConfig(source="demo", width=96, height=64, fps=20, publish=f"tcp://127.0.0.1:{free_tcp_port()}",
                      control=f"tcp://127.0.0.1:{free_tcp_port()}", curve_server_key=str(keys.server_secret), curve_clients_dir=str(clients))
    stop, reloader = threading.Event(), Reloader(load=lambda: cfg)
    t = threading.Thread(target=serve, args=(cfg, stop), kwargs={"reloader": reloader}, daemon=True)
    t.start()
    ctx = zmq.Context()
    try:
        a_sub, a_mon = sub_socket(ctx, cfg.publish, keys.allowed, b"frame.stylised\x00")
        b_sub, b_mon = sub_socket(ctx, cfg.publish, bob, b"frame.stylised\x00")
        for s in (a_sub, b_sub):
            assert s.poll(60_000), "no frame before the reload"
            s.recv()
        assert request(cfg.control, {"cmd": "status"}, timeout=10, curve=bob)["ok"]
        (clients / bpub.name).unlink()
        reloader.requested.set()
        assert "failed_auth" in outcomes(b_sub, b_mon, n=3, timeout_s=10)  # dropped, and refused on the way back
        time.sleep(0.5)
        for s in (a_sub, b_sub):  # what each still has queued from before the reload
            while s.poll(0):
                s.recv()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not a_sub.poll(100):
            pass
        assert a_sub.poll(0), "alice did not come back"
        assert not b_sub.poll(1500), "bob still receives frames"
        with pytest.raises(TimeoutError):
            request(cfg.control, {"cmd": "status"}, timeout=2, curve=bob)
        assert request(cfg.control, {"cmd": "status"}, timeout=10, curve=keys.allowed)["ok"]
    finally:
        stop.set()
        t.join(15)
        ctx.destroy(linger=0)


def test_view_and_the_http_viewer_talk_to_a_curve_daemon_with_keys(daemon: ServeConfig, keys: Keys, tmp_path: Path) -> None:
    """``view`` and ``view --http`` had no key options, so neither could watch a CURVE daemon."""
    import json
    import urllib.request

    from streamer.http_view import serve_http
    from streamer.view import view

    assert view(daemon.publish, "frame.stylised", tmp_path / "v.avi", 3, 30.0, curve=keys.allowed) == 3
    port, stop = free_tcp_port(), threading.Event()
    t = threading.Thread(target=serve_http, args=("127.0.0.1", port, daemon.publish, daemon.control, "frame.stylised", stop),
                         kwargs={"curve": keys.allowed}, daemon=True)
    t.start()
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"{base}/state", timeout=10) as r:
                    state = json.loads(r.read())
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert state.get("styles"), state
        req = urllib.request.Request(f"{base}/control", data=json.dumps({"cmd": "set_strength", "value": 0.7}).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert json.loads(r.read())["state"]["strength"] == 0.7
    finally:
        stop.set()
        t.join(10)
