import json

import pytest

from streamer import controls
from streamer.controls import ControlError

STYLES = ("wave", "comp", "cafe")


def state() -> controls.ControlState:
    return controls.initial_state(STYLES, None, 1.0, 0.5)


def apply(req: dict) -> controls.ControlState:  # type: ignore[type-arg]
    return controls.apply_request(state(), controls.parse_request(json.dumps(req).encode()), STYLES)


def test_initial_state_is_first_style() -> None:
    assert state().style == {"wave": 1.0, "comp": 0.0, "cafe": 0.0}


def test_set_style_by_name_and_mix() -> None:
    assert apply({"cmd": "set_style", "style": "cafe"}).weights(STYLES) == [0.0, 0.0, 1.0]
    assert apply({"cmd": "set_style", "style": {"wave": 1, "comp": 3}}).weights(STYLES) == [0.25, 0.75, 0.0]


def test_set_strength_grading_overlay() -> None:
    assert apply({"cmd": "set_strength", "value": 0.25}).strength == 0.25
    assert apply({"cmd": "set_grading", "saturation": 1.5}).grading.saturation == 1.5
    assert apply({"cmd": "set_overlay", "opacity": 0.1}).overlay_opacity == 0.1
    off = apply({"cmd": "set_overlay", "enabled": False})
    assert off.overlay_enabled is False and off.overlay_opacity == 0.5
    with pytest.raises(ControlError, match="'enabled' must be true or false"):
        apply({"cmd": "set_overlay", "enabled": 1})
    assert apply({"cmd": "status", "id": 3}) == state()


def test_set_stabilise() -> None:
    assert state().stabilise == 0.0 and controls.initial_state(STYLES, None, 1.0, 0.5, 0.6).stabilise == 0.6
    assert apply({"cmd": "set_stabilise", "value": 0.8}).stabilise == 0.8
    assert apply({"cmd": "set_stabilise", "value": 0}).stabilise == 0.0
    assert apply({"cmd": "set_stabilise", "value": 0.8}).to_json()["stabilise"] == 0.8
    for bad in (0.99, -0.1, "0.5", True):
        with pytest.raises(ControlError, match="'value' must"):
            apply({"cmd": "set_stabilise", "value": bad})


@pytest.mark.parametrize(
    "raw, match",
    [
        (b"\xff\xfe", "UTF-8 JSON"),
        (b"not json", "UTF-8 JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"cmd": 5}', "string 'cmd'"),
        (b'{"cmd": "set_strength", "value": NaN}', "non-finite"),
        (b'{"cmd": "set_strength", "value": Infinity}', "non-finite"),
        (b'{"cmd": "status", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}", "limit|UTF-8 JSON|deeper"),
        (b'{"cmd": "status", "x": [[[[[1]]]]]}', "deeper"),
        (b'{"cmd": "x"}' + b" " * 5000, "limit"),
    ],
)
def test_parse_rejects(raw: bytes, match: str) -> None:
    with pytest.raises(ControlError, match=match):
        req = controls.parse_request(raw)
        controls.apply_request(state(), req, STYLES)


@pytest.mark.parametrize(
    "req, match",
    [
        ({"cmd": "launch"}, "unknown cmd"),
        ({"cmd": "set_style"}, "needs 'style'"),
        ({"cmd": "set_style", "style": "nope"}, "unknown style"),
        ({"cmd": "set_style", "style": {"nope": 1}}, "unknown style"),
        ({"cmd": "set_style", "style": {"wave": 0}}, "positive sum"),
        ({"cmd": "set_style", "style": {"wave": -1}}, "must be in"),
        ({"cmd": "set_style", "style": 3}, "must be a style name"),
        ({"cmd": "set_strength", "value": 2}, "must be in"),
        ({"cmd": "set_strength", "value": True}, "must be a number"),
        ({"cmd": "set_strength", "value": 1e308 * 10}, "non-finite|must be in"),
        ({"cmd": "set_strength", "value": 10**400}, "must be in"),
        ({"cmd": "set_strength", "value": 0.5, "extra": 1}, "unexpected field"),
        ({"cmd": "set_grading", "contrast": "high"}, "must be a number"),
    ],
)
def test_apply_rejects(req: dict, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ControlError, match=match):
        apply(req)


def test_replies_are_json() -> None:
    ok = json.loads(controls.reply_ok(state(), {"fps": 1.0}))
    assert ok["ok"] is True and ok["state"]["style"]["wave"] == 1.0
    err = json.loads(controls.reply_error("bad"))
    assert err == {"ok": False, "error": "bad"}


def test_mode_and_snapshot_requests() -> None:
    assert apply({"cmd": "set_mode", "mode": "side_by_side"}).mode == "side_by_side"
    with pytest.raises(ControlError, match="'mode' must be one of"):
        apply({"cmd": "set_mode", "mode": "fancy"})
    assert controls.snapshot_name({"cmd": "snapshot", "name": "a_1.png"}) == "a_1.png"
    assert controls.snapshot_name({"cmd": "snapshot"}) is None
    for bad in ("../etc/passwd.png", "/tmp/x.png", ".hidden.png", "x.exe", 5, "a" * 80 + ".png"):
        with pytest.raises(ControlError, match="plain file name"):
            apply({"cmd": "snapshot", "name": bad})
