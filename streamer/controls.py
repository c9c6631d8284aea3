"""Live controls: the immutable state the pipeline reads each frame, and the strict, pure parser
of control requests (JSON over the REP socket, docs/WIRE.md).

Every request gets exactly one reply: ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

from streamer.render import OUTPUT_MODES, Grading, OutputMode
from streamer.stabilise import MAX_HISTORY

MAX_REQUEST_BYTES = 4096
MAX_DEPTH = 4


class ControlError(ValueError):
    """A control request that is malformed or names something that does not exist."""


@dataclass(frozen=True)
class ControlState:
    """What a frame is rendered with. ``style`` maps every style name to a weight (sum 1)."""

    style: dict[str, float]
    strength: float = 1.0
    grading: Grading = field(default_factory=Grading)
    overlay_opacity: float = 0.5
    overlay_enabled: bool = True
    mode: OutputMode = "stylised"
    stabilise: float = 0.0  # history weight of streamer.stabilise (0 = off)

    def weights(self, names: tuple[str, ...]) -> list[float]:
        return [self.style.get(n, 0.0) for n in names]

    def to_json(self) -> dict[str, Any]:
        g = self.grading
        return {
            "style": self.style, "strength": self.strength, "overlay_opacity": self.overlay_opacity, "overlay_enabled": self.overlay_enabled, "mode": self.mode, "stabilise": self.stabilise,
            "grading": {"brightness": g.brightness, "contrast": g.contrast, "saturation": g.saturation},
        }


def initial_state(styles: tuple[str, ...], style: str | None, strength: float, overlay_opacity: float, stabilise: float = 0.0) -> ControlState:
    name = style or styles[0]
    return ControlState(style=resolve_style(name, styles), strength=strength, overlay_opacity=overlay_opacity, stabilise=stabilise)


def resolve_style(spec: object, styles: tuple[str, ...]) -> dict[str, float]:
    """A style name, or ``{name: weight}`` mix (non-negative, positive sum) → normalised weights."""
    if isinstance(spec, str):
        if spec not in styles:
            raise ControlError(f"unknown style {spec!r}; available: {list(styles)}")
        return {n: (1.0 if n == spec else 0.0) for n in styles}
    if isinstance(spec, dict) and spec:
        unknown = [k for k in spec if k not in styles]
        if unknown:
            raise ControlError(f"unknown style(s) {unknown}; available: {list(styles)}")
        vals = {k: _number(v, f"weights.{k}", 0.0, 1e6) for k, v in spec.items()}
        total = sum(vals.values())
        if total <= 0:
            raise ControlError("style weights must have a positive sum")
        return {n: vals.get(n, 0.0) / total for n in styles}
    raise ControlError("'style' must be a style name or a non-empty {name: weight} object")


def _number(v: object, name: str, lo: float, hi: float) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ControlError(f"'{name}' must be a number, got {type(v).__name__}")
    try:
        f = float(v)
    except OverflowError:
        f = math.inf
    if not math.isfinite(f) or not lo <= f <= hi:
        raise ControlError(f"'{name}' must be in [{lo}, {hi}], got {v!r}")
    return f


def _depth(obj: object, limit: int) -> int:
    if limit < 0:
        return 1 << 30
    if isinstance(obj, dict):
        return 1 + max((_depth(v, limit - 1) for v in obj.values()), default=0)
    if isinstance(obj, list):
        return 1 + max((_depth(v, limit - 1) for v in obj), default=0)
    return 0


def _reject_constant(name: str) -> float:
    raise ControlError(f"non-finite number {name} is not allowed")


def parse_request(raw: bytes) -> dict[str, Any]:
    """Bytes → request object, or ControlError: size cap, UTF-8, JSON, no NaN/Inf, bounded depth."""
    if len(raw) > MAX_REQUEST_BYTES:
        raise ControlError(f"request is {len(raw)} bytes; the limit is {MAX_REQUEST_BYTES}")
    try:
        text = raw.decode("utf-8")
        req = json.loads(text, parse_constant=_reject_constant)
    except ControlError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ControlError(f"request is not valid UTF-8 JSON: {str(e)[:120]}") from e
    if not isinstance(req, dict):
        raise ControlError("request must be a JSON object with a 'cmd' field")
    if _depth(req, MAX_DEPTH) > MAX_DEPTH:
        raise ControlError(f"request nests deeper than {MAX_DEPTH} levels")
    cmd = req.get("cmd")
    if not isinstance(cmd, str):
        raise ControlError("request needs a string 'cmd'")
    return req


_ALLOWED = {
    "status": set(),
    "set_style": {"style"},
    "set_strength": {"value"},
    "set_grading": {"brightness", "contrast", "saturation"},
    "set_overlay": {"opacity", "enabled"},
    "set_mode": {"mode"},
    "set_stabilise": {"value"},
    "snapshot": {"name"},
}


def apply_request(state: ControlState, req: dict[str, Any], styles: tuple[str, ...]) -> ControlState:
    """The state after ``req`` (pure). ``status`` returns ``state`` unchanged."""
    cmd = req["cmd"]
    if cmd not in _ALLOWED:
        raise ControlError(f"unknown cmd {cmd!r}; expected one of {sorted(_ALLOWED)}")
    extra = set(req) - {"cmd", "id"} - _ALLOWED[cmd]
    if extra:
        raise ControlError(f"{cmd}: unexpected field(s) {sorted(extra)}; allowed: {sorted(_ALLOWED[cmd])}")
    if cmd == "set_style":
        if "style" not in req:
            raise ControlError("set_style needs 'style' (a name or {name: weight})")
        return replace(state, style=resolve_style(req["style"], styles))
    if cmd == "set_strength":
        return replace(state, strength=_number(req.get("value"), "value", 0.0, 1.0))
    if cmd == "set_grading":
        g = state.grading
        return replace(state, grading=Grading(
            brightness=_number(req.get("brightness", g.brightness), "brightness", -1.0, 1.0),
            contrast=_number(req.get("contrast", g.contrast), "contrast", 0.0, 3.0),
            saturation=_number(req.get("saturation", g.saturation), "saturation", 0.0, 3.0),
        ))
    if cmd == "set_overlay":
        enabled = req.get("enabled", state.overlay_enabled)
        if not isinstance(enabled, bool):
            raise ControlError(f"'enabled' must be true or false, got {enabled!r}")
        return replace(state, overlay_enabled=enabled, overlay_opacity=_number(req.get("opacity", state.overlay_opacity), "opacity", 0.0, 1.0))
    if cmd == "set_mode":
        mode = req.get("mode")
        if mode not in OUTPUT_MODES:
            raise ControlError(f"'mode' must be one of {list(OUTPUT_MODES)}, got {mode!r}")
        return replace(state, mode=mode)
    if cmd == "set_stabilise":
        return replace(state, stabilise=_number(req.get("value"), "value", 0.0, MAX_HISTORY))
    if cmd == "snapshot":
        snapshot_name(req)  # validated here; written by the pipeline, which owns the frames
    return state


_SNAPSHOT_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}\.(png|jpg)")
"""Matched whole (``fullmatch``): with ``match`` and ``$``, ``"x.png\n"`` passed and made a file
whose name ends in a newline."""


def snapshot_name(req: dict[str, Any]) -> str | None:
    """The requested file name (no directories: snapshots only go to the configured folder)."""
    name = req.get("name")
    if name is None:
        return None
    if not isinstance(name, str) or not _SNAPSHOT_NAME.fullmatch(name):
        raise ControlError("'name' must be a plain file name ending in .png or .jpg (letters, digits, _ . -)")
    return name


def reply_error(message: str) -> bytes:
    return json.dumps({"ok": False, "error": message}).encode()


def reply_ok(state: ControlState, status: dict[str, Any], extra: dict[str, Any] | None = None) -> bytes:
    return json.dumps({"ok": True, "state": state.to_json(), "status": status, **(extra or {})}, allow_nan=False).encode()
