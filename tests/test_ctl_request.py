"""``stylecast ctl``: each action's request, and bad values refused before anything is sent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from streamer.cli import ctl_request
from streamer.controls import ControlError


@pytest.mark.parametrize(("action", "value", "request_"), [
    ("status", "", {"cmd": "status"}),
    ("style", "hokusai", {"cmd": "set_style", "style": "hokusai"}),
    ("style", "a=0.25, b=0.75", {"cmd": "set_style", "style": {"a": 0.25, "b": 0.75}}),
    ("strength", "0.4", {"cmd": "set_strength", "value": 0.4}),
    ("overlay", "off", {"cmd": "set_overlay", "enabled": False}),
    ("overlay", "on", {"cmd": "set_overlay", "enabled": True}),
    ("overlay", "0.3", {"cmd": "set_overlay", "enabled": True, "opacity": 0.3}),
    ("mode", "attention", {"cmd": "set_mode", "mode": "attention"}),
    ("stabilise", "off", {"cmd": "set_stabilise", "value": 0.0}),
    ("stabilise", "0.7", {"cmd": "set_stabilise", "value": 0.7}),
    ("grading", "brightness=0.1,contrast=1.2", {"cmd": "set_grading", "brightness": 0.1, "contrast": 1.2}),
    ("snapshot", "", {"cmd": "snapshot"}),
    ("snapshot", "a.jpg", {"cmd": "snapshot", "name": "a.jpg"}),
])
def test_each_action_builds_its_request(action: str, value: str, request_: dict[str, object]) -> None:
    assert ctl_request(action, value) == request_


@pytest.mark.parametrize(("action", "value", "named"), [
    ("strength", "abc", "strength"),
    ("strength", "", "strength"),
    ("stabilise", "lots", "stabilise"),
    ("overlay", "half", "overlay"),
    ("grading", "brightness=x", "brightness"),
    ("grading", "warm", "grading"),
    ("style", "a=1,b=much", "b"),
    ("style", "", "style"),
    ("volume", "3", "volume"),
])
def test_a_bad_value_is_a_control_error_that_names_it(action: str, value: str, named: str) -> None:
    with pytest.raises(ControlError, match=named):
        ctl_request(action, value)


def test_the_cli_refuses_a_bad_value_with_exit_2_before_connecting() -> None:
    # Nothing listens on this endpoint: a request that were sent would time out (exit 1), after 30 s.
    out = subprocess.run([sys.executable, "-m", "streamer", "ctl", "--endpoint", "tcp://127.0.0.1:9", "--timeout", "30",
                          "stabilise", "abc"], capture_output=True, text=True, timeout=20)
    assert out.returncode == 2, out.stderr
    assert "stabilise" in out.stderr and "'abc'" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(("args", "named"), [
    (["ctl", "--timeout", "-1", "status"], "--timeout"),  # a negative poll timeout waited forever
    (["ctl", "--timeout", "0", "status"], "--timeout"),
    (["ctl", "--timeout", "nan", "status"], "--timeout"),
    (["view", "--timeout", "-1"], "--timeout"),
    (["view", "--http", "127.0.0.1:99999"], "--http"),  # was an OverflowError traceback
    (["view", "--http", "127.0.0.1:http"], "--http"),
    (["ctl", "--endpoint", "garbage", "status"], "--endpoint"),  # a bare ZMQError traceback
    (["view", "--endpoint", "garbage", "--out", "x.mp4"], "--endpoint"),
    (["view", "--http", "127.0.0.1:8098", "--endpoint", "tcp://127.0.0.1"], "--endpoint"),  # served an MJPEG stream that never came
    (["view", "--http", "127.0.0.1:8098", "--control", "garbage"], "--control"),
])
def test_bad_timeouts_and_http_addresses_exit_2_before_connecting(args: list[str], named: str) -> None:
    out = subprocess.run([sys.executable, "-m", "streamer", *args], capture_output=True, text=True, timeout=20)
    assert out.returncode == 2, out.stderr
    assert named in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("args", [["--seconds", "-1"], ["--seconds", "0"], ["--warmup", "-1"], ["--iters", "0", "--compare-baseline"], ["--sizes", "foo"]])
def test_bench_refuses_bad_durations_with_exit_2(args: list[str]) -> None:
    """--seconds -1 killed the stopper thread and hung the bench; --iters 0 was an IndexError."""
    out = subprocess.run([sys.executable, "-m", "streamer", "bench", *args], capture_output=True, text=True, timeout=20)
    assert out.returncode == 2 and args[0] in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_view_http_on_a_port_in_use_exits_2() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "streamer", "view", "--http", f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=20)
    assert out.returncode == 2 and "--http" in out.stderr and "in use" in out.stderr, out.stderr


def test_ctl_prints_one_line_refusals_as_one_error_line_and_no_daemon_says_so(tiny_model: Path) -> None:
    """It printed the whole ~50-line reply for every set command, a refusal as 3-line JSON, and a
    bare TimeoutError with no daemon."""
    from dataclasses import replace

    from streamer.bench import free_tcp_port
    from streamer.config import ServeConfig
    from streamer.daemon import build_pipeline
    from tests.service_tools import running

    cfg = replace(ServeConfig(model=str(tiny_model), width=96, height=64, fps=20),
                  publish=f"tcp://127.0.0.1:{free_tcp_port()}", control=f"tcp://127.0.0.1:{free_tcp_port()}")

    def ctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "streamer", "ctl", "--endpoint", cfg.control, *args], capture_output=True, text=True, timeout=60)

    with running(build_pipeline(cfg)):
        out = ctl("stabilise", "0.3")
        assert out.returncode == 0 and out.stdout.count("\n") == 1 and "stabilise 0.3" in out.stdout, out.stdout  # the state after
        out = ctl("style", "nosuch")
        assert out.returncode == 1 and out.stderr.startswith("stylecast: error: the daemon refused the request") and out.stderr.count("\n") == 1
        out = ctl("--json", "strength", "0.5")
        assert out.returncode == 0 and json.loads(out.stdout)["state"]["strength"] == 0.5
    out = ctl("--timeout", "1", "status")
    assert out.returncode == 1 and "no reply from" in out.stderr and "is `stylecast serve` running" in out.stderr and "Traceback" not in out.stderr
