"""The stabiliser: motion estimate, agreement, history blending, and what must never happen
(trails behind moving objects, history across a cut, resampling a still camera's picture)."""

from __future__ import annotations

from importlib import resources

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from streamer.stabilise import (
    MAX_HISTORY,
    StabiliseConfig,
    StabiliseError,
    Stabiliser,
    estimate_motion,
    is_still,
    small_grey,
    to_full_resolution,
)

U8 = npt.NDArray[np.uint8]
W, H = 640, 360


@pytest.fixture(scope="module")
def photo() -> U8:
    """The bundled demo picture, 1.5× the frame size, so moved views stay inside it."""
    data = (resources.files("streamer") / "assets" / "demo.jpg").read_bytes()
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return cv2.resize(img, (int(W * 1.5), int(H * 1.5)), interpolation=cv2.INTER_AREA)


def view(photo: U8, m: np.ndarray) -> U8:
    """The frame [H,W,3] a camera with 2×3 transform ``m`` (photo → frame) sees."""
    return cv2.warpAffine(photo, m.astype(np.float32), (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def camera(t: float, dx: float = 0.0, dy: float = 0.0, angle: float = 0.0, zoom: float = 0.0) -> np.ndarray:
    """3×3 photo → frame transform at time t: the photo's centre at the frame's, moving."""
    s, a = 1.0 + zoom * t, angle * t
    c, si = np.cos(a) * s, np.sin(a) * s
    cx, cy = W * 0.75 + dx * t, H * 0.75 + dy * t
    return np.array([[c, -si, W / 2 - (c * cx - si * cy)], [si, c, H / 2 - (si * cx + c * cy)], [0, 0, 1]])


def noisy(img: U8, rng: np.random.Generator, sigma: float = 8.0) -> U8:
    """A stand-in for a flickering stylisation: the frame plus fresh noise."""
    return np.clip(img.astype(np.float32) + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


def corner_error(m: np.ndarray, ref: np.ndarray) -> float:
    """Largest distance, px, between where two 2×3 transforms put the frame's corners."""
    c = np.array([[0, 0, 1], [W, 0, 1], [0, H, 1], [W, H, 1]], np.float64)
    return float(np.abs(c @ np.asarray(m, np.float64).T - c @ ref.T).max())


def test_config_bounds() -> None:
    assert StabiliseConfig().enabled and not StabiliseConfig(history=0).enabled
    for bad in ({"history": MAX_HISTORY + 0.01}, {"history": -0.1}, {"motion_width": 10}, {"tolerance": 0}, {"cut": 0}):
        with pytest.raises(StabiliseError):
            StabiliseConfig(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("motion", [{"dx": 3.3, "dy": -1.7}, {"dx": -0.6, "dy": 0.4, "angle": 0.004, "zoom": 0.005}])
def test_motion_estimate_matches_the_camera(photo: U8, motion: dict[str, float]) -> None:
    a, b = camera(0, **motion), camera(1, **motion)
    truth = (b @ np.linalg.inv(a))[:2]  # frame 0 pixels → frame 1 pixels
    ga, s = small_grey(view(photo, a[:2]), 320)
    gb, _ = small_grey(view(photo, b[:2]), 320)
    m = estimate_motion(ga, gb)
    assert m is not None and s == 2.0
    assert corner_error(to_full_resolution(m, s), truth) < 0.25


def test_no_motion_on_a_flat_picture() -> None:
    flat = np.full((180, 320), 128, np.uint8)
    assert estimate_motion(flat, flat) is None


def test_still_camera_noise_is_averaged_without_resampling(photo: U8) -> None:
    rng = np.random.default_rng(0)
    frame = view(photo, camera(0)[:2])
    assert is_still(np.array([[1, 0, 0.001], [0, 1, 0]], np.float32), W, H) and not is_still(np.array([[1, 0, 0.1], [0, 1, 0]], np.float32), W, H)
    st = Stabiliser()
    plain, steady = [], []
    for _ in range(8):
        out = noisy(frame, rng)
        plain.append(out)
        steady.append(st(frame, out, out[:, :, 0].copy())[0])
    change = lambda seq: np.mean([np.abs(seq[i + 1].astype(np.float32) - seq[i]).mean() for i in range(2, len(seq) - 1)])  # noqa: E731
    assert change(steady) < 0.6 * change(plain)
    # the clean picture is not softened: the mean of the stabilised frames is as sharp as the photo's
    lap = lambda img: float(np.abs(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.CV_32F)).mean())  # noqa: E731
    assert lap(steady[-1]) > 0.5 * lap(plain[-1])


def test_panning_camera_flicker_falls(photo: U8) -> None:
    rng = np.random.default_rng(1)
    path = [camera(t, dx=1.7, dy=0.9, angle=0.002) for t in range(10)]
    frames = [view(photo, m[:2]) for m in path]
    outs = [noisy(f, rng) for f in frames]
    st = Stabiliser()
    steady = [st(f, o, o[:, :, 0].copy())[0] for f, o in zip(frames, outs, strict=True)]

    def warp_error(seq: list[U8]) -> float:
        errs = []
        for t in range(3, len(seq) - 1):
            d = (path[t + 1] @ np.linalg.inv(path[t]))[:2].astype(np.float32)
            moved = cv2.warpAffine(seq[t].astype(np.float32), d, (W, H))
            errs.append(np.abs(seq[t + 1].astype(np.float32) - moved)[20:-20, 20:-20].mean())
        return float(np.mean(errs))

    assert warp_error(steady) < 0.7 * warp_error(outs)
    assert st.last_weight > 0.4


def test_moving_object_leaves_no_trail(photo: U8) -> None:
    """A textured square crossing a still scene, and a stylisation that is the frame itself: the
    stabilised output must be the frame, where the square is and where it just was."""
    bg = view(photo, camera(0)[:2])
    patch = cv2.resize(photo[:60, :60], (60, 60))[::-1, ::-1].copy()
    st = Stabiliser(StabiliseConfig(history=0.9))
    for t in range(6):
        x = 100 + 15 * t
        frame = bg.copy()
        frame[150:210, x:x + 60] = 255 - patch
        out, _ = st(frame, frame, frame[:, :, 0].copy())
        if t > 0:
            region = np.s_[140:220, x - 25:x + 70]  # the square now and the strip it left
            assert np.abs(out[region].astype(np.float32) - frame[region]).mean() < 2.0, t


def test_cut_drops_the_history(photo: U8) -> None:
    st = Stabiliser()
    a = view(photo, camera(0)[:2])
    st(a, a, a[:, :, 0].copy())
    b = cv2.flip(view(photo, camera(0, dx=200)[:2]), -1)
    ob = noisy(b, np.random.default_rng(2))
    out, att = st(b, ob, ob[:, :, 0].copy())
    assert np.array_equal(out, ob) and np.array_equal(att, ob[:, :, 0]) and st.last_weight == 0.0


def test_size_change_and_bad_shapes(photo: U8) -> None:
    st = Stabiliser()
    a = view(photo, camera(0)[:2])
    st(a, a, a[:, :, 0].copy())
    small = cv2.resize(a, (320, 180))
    out, _ = st(small, small, small[:, :, 0].copy())
    assert np.array_equal(out, small) and out is not small
    with pytest.raises(StabiliseError, match="one size"):
        st(a, small, a[:, :, 0])
    with pytest.raises(StabiliseError, match="one size"):
        st(a, a, small[:, :, 0])


def test_live_setting_off_returns_the_frames_and_forgets(photo: U8) -> None:
    st = Stabiliser()
    rng = np.random.default_rng(3)
    a = view(photo, camera(0)[:2])
    o1 = noisy(a, rng)
    st.set_history(0.6)
    st(a, o1, o1[:, :, 0].copy())
    o2 = noisy(a, rng)
    att = o2[:, :, 0].copy()
    st.set_history(0.0)
    off = st(a, o2, att)
    assert off[0] is o2 and off[1] is att
    o3 = noisy(a, rng)
    st.set_history(0.8)
    again, _ = st(a, o3, o3[:, :, 0].copy())
    assert np.array_equal(again, o3) and st.cfg.history == 0.8  # first frame after "on": nothing to blend
    o4 = noisy(a, rng)
    st.set_history(0.8)
    blended, _ = st(a, o4, o4[:, :, 0].copy())
    assert not np.array_equal(blended, o4) and st.last_weight > 0.7


def test_lights_on_is_a_cut(photo: U8) -> None:
    """Same view, 60 grey levels brighter: the motion is found, but the frames disagree everywhere."""
    st = Stabiliser()
    a = view(photo, camera(0)[:2])
    st(a, a, a[:, :, 0].copy())
    b = cv2.convertScaleAbs(a, alpha=1.0, beta=60)
    ga, gb = small_grey(a, 320)[0], small_grey(b, 320)[0]
    assert estimate_motion(ga, gb) is not None  # so it is the cut that drops the history
    ob = noisy(b, np.random.default_rng(4))
    out, _ = st(b, ob, ob[:, :, 0].copy())
    assert np.array_equal(out, ob) and st.last_weight == 0.0


def test_sensor_noise_does_not_resample_a_still_picture(photo: U8) -> None:
    """A still camera with sensor noise and a stylisation that ignores the noise: the output is
    that stylisation exactly, frame after frame (no sub-pixel resampling of the history)."""
    rng = np.random.default_rng(5)
    clean = view(photo, camera(0)[:2])
    st = Stabiliser()
    for _ in range(5):
        raw = noisy(clean, rng, sigma=2.0)
        out, _ = st(raw, clean, clean[:, :, 0].copy())
        assert np.array_equal(out, clean)
