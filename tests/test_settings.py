"""Config from TOML with CLI overrides: every bad key or value is an error naming the field, exit
code 2, before anything starts; SIGHUP reloads what can change live and names what cannot."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from streamer import cli
from streamer.bench import free_tcp_port
from streamer.client import request
from streamer.config import ConfigError, ServeConfig
from streamer.security import create_keypair
from streamer.settings import RELOADABLE, check_values, reload_diff, resolve
from tests.service_tools import NotifyListener, start_daemon


def _listening_port() -> tuple[socket.socket, int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s, s.getsockname()[1]


def _bad_key_dir(tmp: Path) -> str:
    d = tmp / "clients"
    d.mkdir()
    (d / "laptop.key").write_text("not a certificate\n")
    return str(d)


def _server_key(tmp: Path) -> str:
    return str(create_keypair(tmp / "keys", "server")[1])


def _truncated_secret(tmp: Path) -> str:
    """A server .key_secret whose secret key is cut short: libzmq refused it with a bare EINVAL
    when the socket option was set, after the daemon had started."""
    p = Path(_server_key(tmp))
    p.write_text(re.sub(r'secret-key = "[^"]+"', 'secret-key = "x"', p.read_text()))
    return str(p)


# (id, TOML body given tmp dir and a busy port, field the message starts with, words in the message)
CASES: list[tuple[str, Callable[[Path, int], str], str, str]] = [
    ("unknown key", lambda t, p: "stregth = 0.5", "stregth", "unknown key in .*did you mean 'strength'"),
    ("unknown table", lambda t, p: "[camera]\nsource = 'demo'", "camera", "unknown table"),
    ("wrong type", lambda t, p: 'width = "640"', "width", "expected an integer .* got str '640'"),
    ("bool for int", lambda t, p: "height = true", "height", "expected an integer .* got bool"),
    ("float for int", lambda t, p: "jpeg_quality = 85.5", "jpeg_quality", "expected an integer"),
    ("bad choice", lambda t, p: 'backend = "cuda"', "backend", r"expected one of \['auto', 'onnxruntime', 'tensorrt', 'null'\]"),
    ("size out of range", lambda t, p: "width = 10", "width", "expected an integer 64–4096 px, got 10"),
    ("strength out of range", lambda t, p: "strength = 3.0", "strength", "expected 0–1"),
    ("missing model", lambda t, p: 'model = "/nonexistent/model.onnx"', "model", "file not found: /nonexistent/model.onnx"),
    ("key dir missing", lambda t, p: f'curve_server_key = "{_server_key(t)}"\ncurve_clients_dir = "{t}/nope"', "curve_clients_dir", "not a directory"),
    ("key dir unreadable key", lambda t, p: f'curve_server_key = "{_server_key(t)}"\ncurve_clients_dir = "{_bad_key_dir(t)}"', "curve_clients_dir", "cannot read certificate"),
    ("public key as secret", lambda t, p: f'curve_server_key = "{_server_key(t)[:-len("_secret")]}"\ncurve_clients_dir = "{t}"', "curve_server_key", "holds no secret key"),
    ("truncated secret key", lambda t, p: f'curve_server_key = "{_truncated_secret(t)}"\ncurve_clients_dir = "{t}/keys"', "curve_server_key", "malformed secret key"),
    ("non-loopback control", lambda t, p: 'control = "tcp://0.0.0.0:5556"', "control", "only served beyond loopback with CURVE"),
    ("port in use", lambda t, p: f'publish = "tcp://127.0.0.1:{p}"', "publish", r"127\.0\.0\.1:\d+ is already in use"),
    ("metrics port in use", lambda t, p: f'metrics = "127.0.0.1:{p}"', "metrics", "already in use"),
    ("ports repeated", lambda t, p: (lambda f: f'publish = "tcp://127.0.0.1:{f}"\nmetrics = "127.0.0.1:{f}"')(free_tcp_port()), "metrics", r"port \d+ is also used by publish"),
    ("bad metrics", lambda t, p: 'metrics = "9108"', "metrics", "expected HOST:PORT"),
    ("not TOML", lambda t, p: "width = = 3", "config", "is not valid TOML"),
]


def test_a_config_that_is_not_utf8_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "cam.toml"
    cfg.write_bytes(b"# cam\xe9ra du hall\nwidth = 128\n")
    assert cli.main(["serve", "--config", str(cfg), "--dry-run"]) == cli.EXIT_CONFIG
    assert f"config: {cfg} is not UTF-8 text" in capsys.readouterr().err


@pytest.mark.parametrize("case, body, field, words", CASES, ids=[c[0] for c in CASES])
def test_bad_config_names_the_field_and_starts_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str,
                                                      body: Callable[[Path, int], str], field: str, words: str) -> None:
    busy, port = _listening_port()
    control_port = free_tcp_port()
    cfg = tmp_path / "cam.toml"
    text = body(tmp_path, port)
    # free ports for whatever the case leaves at its default, so a daemon already running on this
    # machine (on 5555/5556) cannot change which error comes first
    free = ("" if text.startswith("control") else f'control = "tcp://127.0.0.1:{control_port}"\n') + \
        ("" if "publish =" in text else f'publish = "tcp://127.0.0.1:{free_tcp_port()}"\n')
    cfg.write_text(free + text + "\n")
    threads_before = {t.name for t in threading.enumerate()}
    try:
        code = cli.main(["serve", "--config", str(cfg), "--source", "demo"])
    finally:
        busy.close()
    err = capsys.readouterr().err
    assert code == cli.EXIT_CONFIG, err
    assert len(err.strip().splitlines()) == 1, f"one clear line, got: {err}"
    msg = err.strip().removeprefix("stylecast: error: ")
    assert msg.startswith(f"{field}:"), msg
    assert re.search(words, msg), msg
    # nothing half-started: no pipeline thread, the control port still free
    assert not [t.name for t in threading.enumerate() if t.name.startswith("stylecast-") and t.name not in threads_before]
    with socket.socket() as s:
        s.bind(("127.0.0.1", control_port))


@pytest.mark.slow
def test_a_real_process_exits_2_before_starting(tmp_path: Path) -> None:
    busy, port = _listening_port()
    cfg = tmp_path / "cam.toml"
    cfg.write_text(f'publish = "tcp://127.0.0.1:{port}"\n')
    try:
        t0 = time.monotonic()
        out = subprocess.run([sys.executable, "-m", "streamer", "serve", "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    finally:
        busy.close()
    assert out.returncode == 2, out.stderr
    assert f"publish: 127.0.0.1:{port} is already in use" in out.stderr
    assert "serving" not in out.stderr and "backend" not in out.stderr, "failed before the engine or any thread started"
    assert time.monotonic() - t0 < 30


def test_cli_flags_override_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "cam.toml"
    cfg.write_text('width = 320\nheight = 184\nstrength = 0.5\nsource = "rtsp://cam.local/stream"\npublish_overlay = false\n')
    assert cli.main(["serve", "--config", str(cfg), "--width", "640", "--dry-run"]) == 0
    resolved = json.loads(capsys.readouterr().out)
    # a flag wins even when it repeats the built-in default; the file fills in the rest
    assert resolved["width"] == 640 and resolved["height"] == 184 and resolved["strength"] == 0.5
    assert resolved["source"] == "rtsp://cam.local/stream" and resolved["publish_overlay"] is False
    assert cli.main(["serve", "--dry-run", "--strength", "0.25"]) == 0
    assert json.loads(capsys.readouterr().out)["strength"] == 0.25


def test_check_values_and_reload_diff() -> None:
    assert check_values({"fps": 25, "width": 320}, "x") == {"fps": 25.0, "width": 320}  # ints are fine for floats
    old = ServeConfig()
    new = ServeConfig(strength=0.3, style="cartoon", width=320)
    live, restart = reload_diff(old, new)
    assert live == {"strength": 0.3, "style": "cartoon"} and restart == ["width"]
    assert set(RELOADABLE) == {"style", "strength", "overlay_opacity", "publish_overlay", "stabilise"}
    assert resolve(None, {}) == ServeConfig()


@pytest.mark.slow
def test_sighup_reloads_live_settings_and_names_the_rest(tmp_path: Path) -> None:
    ctl = f"tcp://127.0.0.1:{free_tcp_port()}"
    cfg = tmp_path / "cam.toml"
    base = f'source = "demo"\nwidth = 128\nheight = 72\nfps = 15\npublish = "tcp://127.0.0.1:{free_tcp_port()}"\ncontrol = "{ctl}"\n'
    cfg.write_text(base + "strength = 1.0\n")
    listener = NotifyListener(tmp_path / "notify.sock")
    d = start_daemon(tmp_path, "--config", str(cfg), env={"NOTIFY_SOCKET": listener.path}, ports=False)
    try:
        listener.wait_for("READY", 60)
        assert request(ctl, {"cmd": "status"}, timeout=10)["state"]["strength"] == 1.0
        cfg.write_text(base.replace("width = 128", "width = 256") + "strength = 0.4\noverlay_opacity = 0.8\nstabilise = 0.3\n")
        d.proc.send_signal(signal.SIGHUP)
        t_reloading = listener.wait_for("RELOADING", 10)
        deadline = time.monotonic() + 10
        while request(ctl, {"cmd": "status"}, timeout=10)["state"]["strength"] != 0.4:
            assert time.monotonic() < deadline, "strength was not reloaded"
            time.sleep(0.1)
        state = request(ctl, {"cmd": "status"}, timeout=10)["state"]
        assert state["overlay_opacity"] == 0.8 and state["stabilise"] == 0.3
        assert any(t > t_reloading and "READY" in m for t, m in listener.messages), "READY=1 after the reload"
        cfg.write_text(base + "strength = 7.0\n")  # a bad file: rejected, the daemon keeps its settings
        d.proc.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        assert request(ctl, {"cmd": "status"}, timeout=10)["state"]["strength"] == 0.4
        cfg.write_bytes(base.encode() + b"# cam\xe9ra\n")  # Latin-1, not UTF-8: rejected, and the next reload still works
        d.proc.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        cfg.write_text(base + "strength = 0.3\n")
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while request(ctl, {"cmd": "status"}, timeout=10)["state"]["strength"] != 0.3:
            assert time.monotonic() < deadline, "a reload after a non-UTF-8 file was ignored"
            time.sleep(0.1)
        assert d.proc.poll() is None
        assert d.stop() == 0
    finally:
        listener.close()
        if d.proc.poll() is None:
            d.proc.kill()
    out = d.output()
    print(out)
    assert "reload: width changed; these need a restart" in out
    assert "reload: new config rejected, keeping the running one: strength: expected 0–1, got 7.0" in out
    assert "is not UTF-8 text" in out


@pytest.mark.parametrize("endpoint", ["tcp://256.1.1.1:5555", "tcp://nosuchif0:5555", "ipc:///nonexistent-stylecast/dir/x.sock"])
def test_addresses_only_zeromq_can_judge_are_config_errors_and_dry_run_finds_them(endpoint: str, tmp_path: Path) -> None:
    """They passed validation and dry-run, then exited 1 once the pipeline bound them."""
    from streamer.settings import check_bindable

    with pytest.raises(ConfigError, match="publish: cannot listen on"):
        check_bindable("publish", endpoint)
    for extra in (["--dry-run"], ["--max-frames", "2"]):
        out = subprocess.run([sys.executable, "-m", "streamer", "serve", "--publish", endpoint, *extra], capture_output=True, text=True, timeout=120)
        assert out.returncode == 2 and "publish: cannot listen on" in out.stderr and "Traceback" not in out.stderr, out.stderr[-500:]
    ipc = f"ipc://{tmp_path}/ok.sock"
    check_bindable("publish", ipc)  # a folder that exists: fine, and nothing left bound
    check_bindable("publish", ipc)
