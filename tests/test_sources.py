from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from streamer.sources import DemoSource, FrameError, SourceError, SourceSpec, normalise_frame, open_source, parse_source


@pytest.mark.parametrize(
    "text, kind",
    [("demo", "demo"), ("rtsp://127.0.0.1:8554/cam", "rtsp"), ("0", "webcam"), ("/dev/video2", "webcam"), ("clip.mp4", "file")],
)
def test_parse_source(text: str, kind: str) -> None:
    assert parse_source(text).kind == kind


def test_parse_source_empty() -> None:
    with pytest.raises(SourceError, match="empty source"):
        parse_source("  ")


def test_normalise_frame() -> None:
    assert normalise_frame(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)
    assert normalise_frame(np.zeros((4, 5, 4), np.uint8)).shape == (4, 5, 3)
    bgr = np.zeros((4, 5, 3), np.uint8)
    assert normalise_frame(bgr) is bgr
    for bad, match in ((np.zeros((0, 5, 3), np.uint8), "non-empty"), (np.zeros((4, 5, 3), np.float32), "uint8"), (np.zeros((4, 5, 2), np.uint8), r"\[4, 5, 2\]"), (None, "non-empty")):
        with pytest.raises(FrameError, match=match):
            normalise_frame(bad)


def test_demo_source_moves() -> None:
    with DemoSource((96, 64), fps=200) as src:
        a = src.read()
        src.pace()
        src.pace()
        b = src.read()
    assert a.shape == (64, 96, 3) and a.dtype == np.uint8
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 0.1


def write_clip(path: Path, n: int = 5, size: tuple[int, int] = (64, 48)) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 25.0, size)
    assert w.isOpened()
    for i in range(n):
        w.write(np.full((size[1], size[0], 3), i * 40, np.uint8))
    w.release()
    return path


def test_file_source_loops(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.avi", n=3)
    with open_source(SourceSpec("file", str(clip)), (64, 48), 30) as src:
        frames = [src.read() for _ in range(7)]  # more than the clip holds
    assert all(f.shape == (48, 64, 3) for f in frames)


def test_a_one_frame_clip_and_a_still_image_loop(tmp_path: Path) -> None:
    """They did not seek back: every second read was a SourceError, so the daemon reconnected
    each frame and published ~4 fps while reporting 'reconnecting'."""
    one = write_clip(tmp_path / "one.avi", n=1)
    still = tmp_path / "still.png"
    cv2.imwrite(str(still), np.full((48, 64, 3), 90, np.uint8))
    for path in (one, still):
        with open_source(parse_source(str(path)), (64, 48), 30) as src:
            frames = [src.read() for _ in range(5)]
        assert all(f.shape == (48, 64, 3) for f in frames), path


def test_a_webcam_index_out_of_range_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="out of range"):  # was a bare cv2.error from VideoCapture, after validate passed
        parse_source("/dev/video99999999999")
    assert parse_source("/dev/video2").kind == "webcam"


def test_missing_file_and_bad_url(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not found"), open_source(SourceSpec("file", str(tmp_path / "nope.mp4")), (64, 48), 30):
        pass
    with pytest.raises(SourceError, match="cannot open"), open_source(parse_source("rtsp://127.0.0.1:1/none"), (64, 48), 30, timeout_s=1.0):
        pass


def test_rtsp_latency_options_reach_only_the_rtsp_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """Left in the environment, they made later file captures of the process lose their last frame."""
    from streamer.sources import FFMPEG_OPTIONS_ENV, LOW_LATENCY_FFMPEG_OPTIONS, ffmpeg_capture_options

    monkeypatch.delenv(FFMPEG_OPTIONS_ENV, raising=False)
    with ffmpeg_capture_options(LOW_LATENCY_FFMPEG_OPTIONS):
        assert os.environ[FFMPEG_OPTIONS_ENV] == LOW_LATENCY_FFMPEG_OPTIONS
    assert FFMPEG_OPTIONS_ENV not in os.environ
    monkeypatch.setenv(FFMPEG_OPTIONS_ENV, "rtsp_transport;udp")  # the user's own wins, and stays
    with ffmpeg_capture_options(LOW_LATENCY_FFMPEG_OPTIONS):
        assert os.environ[FFMPEG_OPTIONS_ENV] == "rtsp_transport;udp"
    assert os.environ[FFMPEG_OPTIONS_ENV] == "rtsp_transport;udp"


def mjpg_with_bad_frames(path: Path, n: int, bad: set[int]) -> Path:
    """An MJPG AVI of ``n`` flat frames, frame i at grey level 5·i, with the JPEGs of ``bad``
    overwritten by zeros in place (OpenCV then fails those reads and decodes the rest)."""
    w = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 30, (64, 48))
    for i in range(n):
        w.write(np.full((48, 64, 3), 5 * i, np.uint8))
    w.release()
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 2) if data[i:i + 3] == b"\xff\xd8\xff"]  # JPEG SOI + a marker
    assert len(starts) == n
    for k in bad:
        end = data.index(b"\xff\xd9", starts[k]) + 2
        data[starts[k]:end] = bytes(end - starts[k])
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("bad", [{1}, {20}])
def test_an_unreadable_frame_inside_a_file_is_skipped_not_taken_for_its_end(tmp_path: Path, bad: set[int]) -> None:
    """It was taken for the end: a bad second frame made the file a one-frame still (the stream
    froze), a bad frame in the middle cut the loop there, and nothing was counted."""
    clip = mjpg_with_bad_frames(tmp_path / "bad.avi", 40, bad)
    got: list[int | str] = []
    with open_source(SourceSpec("file", str(clip)), (64, 48), 30) as src:
        for _ in range(50):
            try:
                got.append(round(float(src.read().mean()) / 5))
            except FrameError:
                got.append("skipped")  # one FrameError per unreadable frame: the pipeline counts it
    one_pass: list[int | str] = ["skipped" if i in bad else i for i in range(40)]
    assert got == (one_pass * 2)[:50]  # every other frame, in order, and then it loops


def test_stylize_skips_an_unreadable_frame_and_says_so(tmp_path: Path, tiny_model: Path, caplog: pytest.LogCaptureFixture) -> None:
    import engines
    from streamer.offline import stylize_file

    clip = mjpg_with_bad_frames(tmp_path / "bad.avi", 40, {20})
    caplog.set_level("WARNING", "streamer")
    with engines.create_engine("onnxruntime", tiny_model, threads=1) as eng:
        n = stylize_file(eng, clip, tmp_path / "out.avi", [1.0, 0.0], 1.0)
    assert n == 39 and any("1 unreadable frame(s) skipped" in r.message for r in caplog.records)
