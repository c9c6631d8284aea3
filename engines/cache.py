"""Where TensorRT engines live, and writing files so a crash never leaves half of one.

Pure path logic plus one atomic write; imports no runtime.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Precision = Literal["fp16", "fp32"]


def user_dir(sub: str, xdg_var: str, fallback: str, env: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    """A folder of stylecast's own: ``$STATE_DIRECTORY/SUB`` under systemd
    (``StateDirectory=stylecast`` gives ``/var/lib/stylecast``; the first entry when it lists
    several), else ``$XDG_VAR/stylecast/SUB``, else ``~/FALLBACK/stylecast/SUB``."""
    env = os.environ if env is None else env
    state = env.get("STATE_DIRECTORY", "").split(":")[0]
    if state:
        return Path(state) / sub
    xdg = env.get(xdg_var, "")
    base = Path(xdg) if xdg else (home or Path.home()) / fallback
    return base / "stylecast" / sub


def engine_cache_dir(env: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    """Where TensorRT plans live: ``user_dir`` ``engines`` under ``$XDG_CACHE_HOME`` (``~/.cache``)."""
    return user_dir("engines", "XDG_CACHE_HOME", ".cache", env, home)


def fp16_onnx_path(onnx_path: Path) -> Path:
    """``model.onnx`` → ``model.fp16.onnx``, written by ``stylecast export`` (training/fp16.py)."""
    return onnx_path.with_suffix(".fp16.onnx")


@dataclass(frozen=True)
class EnginePaths:
    """The files of one cached engine: ``<model>.<precision>.<profile>.<slot>.plan``, its manifest
    ``….plan.json``, and the builder's timing cache ``<model>.<precision>.timing`` beside them."""

    plan: Path
    manifest: Path
    timing_cache: Path


def engine_slot(onnx_path: Path, profile_text: str) -> str:
    """8 hex digits naming one engine slot: the model file's resolved path and the frame-size profile.

    A plan is only valid for one profile, and one cache folder serves every daemon on a box (one per
    camera, ``StateDirectory=stylecast``). With the profile and the model's folder in the name, two
    cameras at different sizes, or two models both called ``default.onnx``, each keep their own
    plan instead of rebuilding over each other's on every start. A new model at the same path
    fills the same slot, so the stale plan is replaced, not left behind."""
    key = f"{onnx_path.resolve()}\n{profile_text}".encode()
    return hashlib.sha256(key).hexdigest()[:8]


def engine_paths(cache_dir: Path, onnx_path: Path, precision: Precision, profile_text: str) -> EnginePaths:
    """``profile_text`` is ``Profile.describe()`` (``"320x180:1280x720:1920x1080"``)."""
    sizes = profile_text.replace(":", "_")
    plan = cache_dir / f"{onnx_path.stem}.{precision}.{sizes}.{engine_slot(onnx_path, profile_text)}.plan"
    return EnginePaths(plan, plan.with_suffix(".plan.json"), cache_dir / f"{onnx_path.stem}.{precision}.timing")


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file in ``path``'s folder, fsync, then ``os.replace``: readers
    see the old file or the new one, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
