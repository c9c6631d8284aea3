"""The sidecar JSON of a TensorRT engine, and whether a cached engine still fits this machine.

Pure functions (no TensorRT, no GPU): the facts of the machine come in as ``GpuFacts``, so
staleness is tested on CPU with made-up GPUs.

A plan is only valid for the TensorRT version and GPU model (compute capability) it was built on,
for the exact ONNX it came from, and for the shapes of its optimisation profile. Loading one that
does not match is at best a ``deserialize_cuda_engine`` that returns None and at worst wrong
output, so every one of those facts is recorded and compared before the plan is used.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engines.cache import Precision
from engines.errors import EngineError

MANIFEST_FORMAT = "stylecast-trt-engine"
MANIFEST_VERSION = 1
SIZE_MULTIPLE = 8


class ProfileError(EngineError, ValueError):
    """An optimisation profile string or shape is invalid; the message says which and why."""


@dataclass(frozen=True)
class Profile:
    """Frame sizes one engine accepts: ``(height, width)`` in px for min, opt and max.

    All six numbers are multiples of 8: the ONNX needs H, W multiples of 8, and the engine pads a
    frame up to the next multiple before running it (so a 320×180 frame runs as 320×184).
    """

    min: tuple[int, int]
    opt: tuple[int, int]
    max: tuple[int, int]

    def contains(self, h: int, w: int) -> bool:
        return self.min[0] <= h <= self.max[0] and self.min[1] <= w <= self.max[1]

    def frame_shapes(self) -> tuple[tuple[int, int, int, int], ...]:
        """``[1, H, W, 3]`` for min, opt, max (the ``frame`` input's profile)."""
        return tuple((1, h, w, 3) for h, w in (self.min, self.opt, self.max))

    def describe(self) -> str:
        return ":".join(f"{w}x{h}" for h, w in (self.min, self.opt, self.max))

    def to_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


def round_up(n: int, multiple: int = SIZE_MULTIPLE) -> int:
    return -(-n // multiple) * multiple


_SIZE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")


def parse_size(text: str) -> tuple[int, int]:
    """``"1280x720"`` (width × height, as on the command line) → ``(720, 1280)`` (H, W)."""
    m = _SIZE.match(text)
    if not m:
        raise ProfileError(f"expected WIDTHxHEIGHT, e.g. 1280x720, got {text!r}")
    return int(m.group(2)), int(m.group(1))


def make_profile(min_wh: str, opt_wh: str, max_wh: str) -> Profile:
    """Profile from three ``WxH`` sizes, each rounded up to multiples of 8; min ≤ opt ≤ max."""
    sizes = [parse_size(s) for s in (min_wh, opt_wh, max_wh)]
    lo, opt, hi = ((round_up(h), round_up(w)) for h, w in sizes)
    if min(lo) < 16:
        raise ProfileError(f"min frame size must be at least 16x16, got {min_wh}")
    if not (lo[0] <= opt[0] <= hi[0] and lo[1] <= opt[1] <= hi[1]):
        raise ProfileError(f"expected min <= opt <= max in both width and height, got {min_wh}, {opt_wh}, {max_wh}")
    return Profile(lo, opt, hi)


def parse_profile(text: str) -> Profile:
    """``"MIN:OPT:MAX"`` with each ``WxH``, e.g. ``"320x180:1280x720:1920x1080"``."""
    parts = text.split(":")
    if len(parts) != 3:
        raise ProfileError(f"expected MIN:OPT:MAX sizes like 320x180:1280x720:1920x1080, got {text!r}")
    return make_profile(*parts)


DEFAULT_PROFILE_TEXT = "320x180:1280x720:1920x1080"
DEFAULT_PROFILE = parse_profile(DEFAULT_PROFILE_TEXT)


@dataclass(frozen=True)
class GpuFacts:
    """What a plan depends on besides the ONNX: the GPU model and the TensorRT build."""

    name: str
    compute_capability: tuple[int, int]
    trt_version: str


IoSpec = dict[str, list[Any]]
"""tensor name → ``[mode ("input"|"output"), dtype name, shape with -1 for dynamic axes]``."""


def expected_io(num_styles: int, with_check: bool) -> IoSpec:
    """The I/O contract of the exported graph (training/export.py), as TensorRT reports it."""
    io: IoSpec = {
        "frame": ["input", "uint8", [1, -1, -1, 3]],
        "style": ["input", "float32", [1, num_styles]],
        "strength": ["input", "float32", [1]],
        "output": ["output", "uint8", [1, -1, -1, 3]],
        "attention": ["output", "uint8", [1, -1, -1, 1]],
    }
    if with_check:
        io["check"] = ["output", "float32", [1]]
    return io


def make_manifest(onnx_sha256: str, facts: GpuFacts, precision: Precision, profile: Profile, styles: tuple[str, ...], io: IoSpec) -> dict[str, Any]:
    """What a valid plan for these inputs must record (build facts like time are added on write)."""
    return {
        "format": MANIFEST_FORMAT, "format_version": MANIFEST_VERSION,
        "onnx_sha256": onnx_sha256, "trt_version": facts.trt_version,
        "gpu_name": facts.name, "compute_capability": list(facts.compute_capability),
        "precision": precision, "profile": profile.to_dict(), "io": io, "styles": list(styles),
    }


def io_matches(actual: Any, expected: IoSpec) -> bool:
    """Same tensors, modes, dtypes and ranks; a dimension matches if equal or either is -1
    (TensorRT may or may not resolve an output's batch axis to 1 when the ONNX leaves it symbolic)."""
    if not isinstance(actual, dict) or set(actual) != set(expected):
        return False
    for name, (mode, dtype, shape) in expected.items():
        a = actual[name]
        if not isinstance(a, list | tuple) or len(a) != 3 or a[0] != mode or a[1] != dtype or len(a[2]) != len(shape):
            return False
        if any(x != y and -1 not in (x, y) for x, y in zip(a[2], shape, strict=True)):
            return False
    return True


COMPARED = ("format", "format_version", "onnx_sha256", "trt_version", "gpu_name", "compute_capability", "precision", "profile", "io", "styles")


def compare_manifest(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Every way ``actual`` (read from disk) differs from ``expected``; empty means usable."""
    reasons = []
    for key in COMPARED:
        if key == "io" and io_matches(actual.get(key), expected[key]):
            continue
        if key == "io" or _norm(actual.get(key)) != _norm(expected.get(key)):
            reasons.append(f"{key}: engine has {actual.get(key)!r}, need {expected.get(key)!r}")
    return reasons


def _norm(v: Any) -> Any:
    """JSON round-trips turn tuples into lists; compare them alike."""
    if isinstance(v, tuple | list):
        return [_norm(x) for x in v]
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    return v


def read_manifest(path: Path) -> tuple[dict[str, Any] | None, str]:
    """``(manifest, "")``, or ``(None, reason)`` when missing or unreadable (never raises)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, f"no manifest at {path}"
    except (OSError, ValueError, RecursionError) as e:  # ValueError: bad JSON or bytes that are not UTF-8
        return None, f"manifest {path} is unreadable: {e}"
    if not isinstance(data, dict):
        return None, f"manifest {path} is not a JSON object"
    return data, ""


def manifest_json(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
