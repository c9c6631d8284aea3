from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from streamer.config import ConfigError, ServeConfig, is_loopback, validate


@pytest.fixture()
def cfg(tiny_model: Path) -> ServeConfig:
    return ServeConfig(model=str(tiny_model))


@pytest.mark.parametrize(
    "change, field",
    [
        ({"width": 10}, "width"), ({"height": 5000}, "height"), ({"width": True}, "width"), ({"fps": 0}, "fps"),
        ({"strength": 1.5}, "strength"), ({"overlay_opacity": -1}, "overlay_opacity"), ({"encoding": "png"}, "encoding"),
        ({"jpeg_quality": 0}, "jpeg_quality"), ({"backend": "cuda"}, "backend"), ({"publish": "http://x"}, "publish"),
        ({"publish": "tcp://127.0.0.1:70000"}, "publish"), ({"control": "tcp://0.0.0.0:5556"}, "control"),
        ({"control": "tcp://127.0.0.1:5555"}, "control"), ({"model": "/nonexistent.onnx"}, "model"), ({"max_frames": -1}, "max_frames"),
        ({"stabilise": 1.0}, "stabilise"), ({"stabilise": -0.1}, "stabilise"), ({"source": ""}, "source"), ({"source": "  "}, "source"),
    ],
)
def test_bad_values_name_the_field(cfg: ServeConfig, change: dict, field: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError, match=f"^{field}:"):
        validate(replace(cfg, **change))


def test_defaults_validate(cfg: ServeConfig) -> None:
    assert validate(cfg) is cfg


def test_loopback() -> None:
    assert is_loopback("tcp://127.0.0.1:1") and is_loopback("tcp://localhost:1") and is_loopback("tcp://[::1]:1") and is_loopback("ipc:///tmp/x")
    assert not is_loopback("tcp://0.0.0.0:1") and not is_loopback("tcp://10.0.0.1:1") and not is_loopback("tcp://eth0:1")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streamer", *args], capture_output=True, text=True, timeout=60)


def test_dry_run_prints_resolved_config(tiny_model: Path) -> None:
    out = _cli("serve", "--model", str(tiny_model), "--width", "320", "--height", "184", "--dry-run")
    assert out.returncode == 0, out.stderr
    resolved = json.loads(out.stdout)
    assert resolved["width"] == 320 and resolved["model"] == str(tiny_model)


def test_dry_run_refuses_what_serve_would_refuse(tiny_model: Path, tmp_path: Path) -> None:
    """systemd/example.toml tells users to check a config with --dry-run: a style the model does
    not have, or a model without its sidecar, must fail there (exit 2), not at the real start."""
    out = _cli("serve", "--model", str(tiny_model), "--style", "nope", "--dry-run")
    assert out.returncode == 2 and "style: 'nope' is not in the model" in out.stderr, out.stderr
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(tiny_model.read_bytes())
    out = _cli("serve", "--model", str(bare), "--dry-run")
    assert out.returncode == 2 and "sidecar" in out.stderr, out.stderr


def test_bad_config_exits_2_with_field(tiny_model: Path) -> None:
    out = _cli("serve", "--model", str(tiny_model), "--strength", "3")
    assert out.returncode == 2 and "strength:" in out.stderr
    out = _cli("serve", "--model", "/nope.onnx")
    assert out.returncode == 2 and "model: file not found" in out.stderr


@pytest.mark.parametrize("source, words", [
    ("rtsp://%%%:abc/x", "port is not a number"),
    ("rtsp://:554/stream", "without a valid host"),
    ("rtsp://cam.lan:0/x", "port 0"),
    ("rtsp://user:secret@bad host:554/x", "without a valid host"),
    ("/nonexistent/clip.mp4", "no such video file"),
])
def test_sources_that_can_never_open_are_config_errors(source: str, words: str) -> None:
    """They passed validation and were retried for ever (under systemd READY never came)."""
    with pytest.raises(ConfigError, match=words) as e:
        validate(ServeConfig(source=source))
    assert "secret" not in str(e.value)


def test_sources_that_may_come_back_still_validate(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    for source in ("rtsp://user:pw@10.0.0.9:554/stream1", "rtsp://[fe80::1]:8554/x", "http://cam.lan/mjpg", "7", "/dev/video3", str(clip)):
        validate(ServeConfig(source=source))  # a camera that is away is retried, as before


def test_an_unknown_log_level_is_a_usage_error() -> None:
    out = subprocess.run([sys.executable, "-m", "streamer", "--log-level", "LOUD", "serve", "--dry-run"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "invalid choice: 'loud'" in out.stderr
    out = subprocess.run([sys.executable, "-m", "streamer", "--help"], capture_output=True, text=True, timeout=60)
    assert "default: info" in out.stdout


def test_the_start_banner_prints_commands_that_run_as_shown(tmp_path: Path) -> None:
    """After ``make run`` the venv is not activated: the banner said ``stylecast view …``, which
    is not on PATH. Each printed command must run as printed, from the same folder."""
    import os
    import shlex

    repo = Path(__file__).resolve().parents[1]
    exe = repo / ".venv" / "bin" / "stylecast"
    if not exe.is_file():
        pytest.skip("no .venv/bin/stylecast (make's venv) here")
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PATH"] = "/usr/bin:/bin"  # as a fresh shell after make run: the venv not on PATH
    from streamer.bench import free_tcp_port

    out = subprocess.run([str(exe.relative_to(repo)), "serve", "--max-frames", "3", "--width", "96", "--height", "64",
                          "--publish", f"tcp://127.0.0.1:{free_tcp_port()}", "--control", f"tcp://127.0.0.1:{free_tcp_port()}"],
                         cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-500:]
    commands = [ln.strip().split("   (")[0] for ln in out.stderr.splitlines() if ln.startswith("  .venv/bin/stylecast ")]
    assert len(commands) == 3, out.stderr
    for cmd in commands:
        argv = shlex.split(cmd)
        help_out = subprocess.run([*argv[:2], "--help"], cwd=repo, env=env, capture_output=True, text=True, timeout=60)
        assert help_out.returncode == 0, (cmd, help_out.stderr)


def test_serve_help_gives_every_flag_a_default_and_choices() -> None:
    out = subprocess.run([sys.executable, "-m", "streamer", "serve", "--help"], capture_output=True, text=True, timeout=60)
    text = " ".join(out.stdout.split())
    for flag, shown in (("--width", "(default: 640)"), ("--height", "(default: 360)"), ("--strength", "(default: 1.0)"),
                        ("--overlay-opacity", "(default: 0.5)"), ("--backend {auto,onnxruntime,tensorrt,null}", "(default: auto)"),
                        ("--encoding {raw,jpeg}", "(default: raw)"), ("--stabilise", "(default: 0.6)")):
        assert flag in text and shown in text.split(flag, 2)[-1][:300], (flag, shown)
    assert "(default: None)" not in text
    bad = subprocess.run([sys.executable, "-m", "streamer", "serve", "--backend", "gpu", "--dry-run"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "invalid choice: 'gpu'" in bad.stderr
