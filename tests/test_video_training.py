"""``stylecast train --video``: frame pairs, their flow, the flow warp, and a run that uses them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.conftest import make_images  # noqa: E402
from training.data import DataError  # noqa: E402
from training.video import VideoPairs, flow_warp, read_pairs  # noqa: E402

W, H, DX, DY = 240, 180, 2.0, 1.0  # px per frame, at the clip's size


def textured(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 256, (H + 60, W + 60, 3), dtype=np.uint8), (0, 0), 2.5)
    for _ in range(25):
        cv2.circle(img, tuple(int(v) for v in rng.integers(0, W + 60, 2)), int(rng.integers(4, 20)), rng.integers(0, 255, 3).tolist(), -1)
    return img


def write_pan(path: Path, n: int = 6) -> Path:
    """A clip of a camera panning over a textured picture: the scene moves by (−DX, −DY) px per
    frame in the image (the camera by +DX, +DY). Lossless (PNG-in-AVI would need a codec), so
    MJPG at top quality."""
    big = textured()
    w = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 25.0, (W, H))
    w.set(cv2.VIDEOWRITER_PROP_QUALITY, 100)
    assert w.isOpened()
    for t in range(n):
        m = np.float32([[1, 0, -DX * t - 10], [0, 1, -DY * t - 10]])
        w.write(cv2.warpAffine(big, m, (W, H), flags=cv2.INTER_LINEAR))
    w.release()
    return path


@pytest.fixture(scope="module")
def pan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pan(tmp_path_factory.mktemp("video") / "pan.avi")


def test_flow_is_the_camera_motion(pan: Path) -> None:
    pairs = read_pairs(pan, 144, 10)
    assert len(pairs) == 5  # 6 frames, every consecutive pair
    s = 144 / H  # frames are scaled to the short side
    for p in pairs:
        assert p.frames.shape == (2, 144, 192, 3) and p.frames.dtype == np.uint8
        assert p.mask.mean() > 0.8
        # frame t+1 at p is frame t at p + flow: the scene moved by (−DX, −DY), so flow = (+DX, +DY)
        fx, fy = (float(np.median(p.flow[i][p.mask])) for i in (0, 1))
        assert fx == pytest.approx(DX * s, abs=0.2) and fy == pytest.approx(DY * s, abs=0.2)


def test_flow_warp_moves_frame_t_onto_frame_t1(pan: Path) -> None:
    vp = VideoPairs([pan], crop=96, seed=0)
    b = vp.batch(8)  # both mirrored and unmirrored crops (seeded)
    assert b.x0.shape == (8, 3, 96, 96) and b.flow.shape == (8, 2, 96, 96) and b.valid.shape == (8, 1, 96, 96)
    moved, inside = flow_warp(b.x0, b.flow)
    backwards, _ = flow_warp(b.x0, -b.flow)
    m = inside * b.valid

    def mean_abs(a: torch.Tensor) -> torch.Tensor:
        return (a.abs() * m).sum(dim=(1, 2, 3)) / (3 * m.sum(dim=(1, 2, 3)))

    err, still, wrong = mean_abs(moved - b.x1), mean_abs(b.x0 - b.x1), mean_abs(backwards - b.x1)
    # what is left is the clip's JPEG coding and the bilinear resampling
    assert bool((err < 0.5 * still).all() and (err < 0.4 * wrong).all() and (err < 0.015).all()), (err, still, wrong)


def test_unreadable_and_too_short_clips(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot open"):
        read_pairs(tmp_path / "none.mp4", 144, 4)
    one = write_pan(tmp_path / "one.avi", n=1)
    with pytest.raises(DataError, match="at least 2"):
        read_pairs(one, 144, 4)


def test_train_with_a_video(pan: Path, tmp_path: Path) -> None:
    content = make_images(tmp_path / "content", 3, (48, 64), 0)
    style = make_images(tmp_path / "style", 1, (64, 64), 1)
    args = [sys.executable, "-m", "streamer", "train", "--content", str(content), "--style", str(style), "--out", str(tmp_path / "runs"),
            "--steps", "3", "--batch", "2", "--crop", "32", "--tier", "fast", "--backbone", "fake", "--device", "cpu",
            "--w-temporal", "5", "--sample-every", "3", "--ckpt-every", "3"]
    out = subprocess.run([*args, "--video", str(pan), "--video-share", "1"], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    run = next((tmp_path / "runs").iterdir())
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert stats and all(s["video"] == 1.0 and s["temporal"] > 0 for s in stats)
    assert json.loads((run / "config.json").read_text())["videos"] == [str(pan)]
    bad = subprocess.run([*args, "--video", str(tmp_path / "missing.mp4")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "no such file" in bad.stderr
    bad = subprocess.run([*args, "--video", str(pan), "--video-share", "2"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "video_share" in bad.stderr


def test_what_appears_from_nowhere_is_masked(tmp_path: Path) -> None:
    """A checkered square that pops into frame t+1: no flow explains it, so it is masked."""
    big = textured(3)
    a = big[:H, :W].copy()
    b = big[1 : H + 1, 2 : W + 2].copy()
    yy, xx = np.mgrid[0:60, 0:60]
    b[60:120, 80:140] = (((yy // 6 + xx // 6) % 2) * 255).astype(np.uint8)[:, :, None]
    w = cv2.VideoWriter(str(tmp_path / "pop.avi"), cv2.VideoWriter.fourcc(*"MJPG"), 25.0, (W, H))
    w.set(cv2.VIDEOWRITER_PROP_QUALITY, 100)
    for f in (a, b):
        w.write(f)
    w.release()
    (p,) = read_pairs(tmp_path / "pop.avi", H, 4)
    assert p.mask[70:110, 90:130].mean() < 0.5 and p.mask[:50].mean() > 0.8


def test_a_long_clip_gives_pairs_from_all_of_it(tmp_path: Path) -> None:
    """More frames than pairs wanted: the pairs still span the clip, each is two consecutive frames."""
    clip = write_pan(tmp_path / "long.avi", n=40)
    pairs = read_pairs(clip, 144, 4)
    assert 3 <= len(pairs) <= 4
    first, last = pairs[0].frames[0].astype(float), pairs[-1].frames[0].astype(float)
    assert np.abs(first - last).mean() > 10  # far apart in the clip
    s = 144 / H
    for p in pairs:  # consecutive: one frame's motion apart
        assert float(np.median(p.flow[0][p.mask])) == pytest.approx(DX * s, abs=0.2)
