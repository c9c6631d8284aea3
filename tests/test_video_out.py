"""Video files: H.264 .mp4 when PyAV is installed (browsers refuse mp4v), mp4v with a note
without it, MJPG .avi (issue 33, point 2)."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer import video_out
from streamer.video_out import VideoOut


def _frames(n: int, size: tuple[int, int]) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8) for _ in range(n)]


def _probe(path: Path) -> tuple[int, float, str]:
    cap = cv2.VideoCapture(str(path))
    try:
        fourcc = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode("ascii", "replace").lower()
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), cap.get(cv2.CAP_PROP_FPS), fourcc
    finally:
        cap.release()


@pytest.mark.skipif(not video_out.h264_available(), reason="PyAV with libx264 is not installed (the 'video' extra)")
@pytest.mark.parametrize("size", [(96, 64), (97, 65)])
def test_mp4_is_h264_when_pyav_is_installed(tmp_path: Path, size: tuple[int, int]) -> None:
    path = tmp_path / "v.mp4"
    with VideoOut(path, 12.0, size) as w:
        assert w.codec == "H.264"
        for f in _frames(24, size):
            w.write(f)
    n, fps, fourcc = _probe(path)
    assert n == 24 and fps == pytest.approx(12.0) and fourcc in ("h264", "avc1")


def test_without_pyav_mp4_is_mp4v_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(video_out, "h264_available", lambda: False)
    caplog.set_level(logging.WARNING, "streamer.video_out")
    with VideoOut(tmp_path / "v.mp4", 10.0, (64, 48)) as w:
        assert w.codec == "mp4v"
        for f in _frames(5, (64, 48)):
            w.write(f)
    assert "stylecast[video]" in caplog.text and _probe(tmp_path / "v.mp4")[0] == 5
    with VideoOut(tmp_path / "v.avi", 10.0, (64, 48)) as w:
        assert w.codec == "MJPG"
        w.write(_frames(1, (64, 48))[0])
    with pytest.raises(video_out.VideoOutError):
        VideoOut(tmp_path / "missing" / "v.avi", 10.0, (64, 48))
