"""Frame sources: the built-in demo, a video file (looped), a webcam, an RTSP URL.

A source is a context manager, opened and read on the capture thread. ``read()`` returns a
frame [H, W, 3] uint8 BGR (a new array the caller owns) or raises SourceError; the capture stage
owns reconnecting. Frames are resized to the processing size by the capture stage, not here.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Literal, Self, cast
from urllib.parse import urlsplit

import cv2
import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

U8 = npt.NDArray[np.uint8]
LOW_LATENCY_FFMPEG_OPTIONS = "rtsp_transport;tcp|fflags;nobuffer|flags;low_delay"
FFMPEG_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"


@contextmanager
def ffmpeg_capture_options(options: str) -> Iterator[None]:
    """``OPENCV_FFMPEG_CAPTURE_OPTIONS`` = ``options`` inside the block (unless the user set it),
    as it was after. Captures opened inside read it; the rest of the process never sees it."""
    if FFMPEG_OPTIONS_ENV in os.environ:
        yield
        return
    os.environ[FFMPEG_OPTIONS_ENV] = options
    try:
        yield
    finally:
        os.environ.pop(FFMPEG_OPTIONS_ENV, None)
SourceKind = Literal["demo", "file", "webcam", "rtsp"]


class SourceError(RuntimeError):
    """The source could not be opened or stopped delivering frames."""


class FrameError(SourceError):
    """A frame came back with the wrong shape, dtype or channel count."""


@dataclass(frozen=True)
class SourceSpec:
    kind: SourceKind
    target: str  # file path, device path/index, URL; "" for demo


MAX_WEBCAM_INDEX = 4095

BAD_FRAME_RETRIES = 8
"""A video file's read that fails is followed by up to this many more before it counts as the
end of the file: OpenCV reports a frame it cannot decode (a corrupt JPEG in an MJPG file) just as
it reports the end, and the frames after it decode fine."""


def read_past_bad_frames(cap: cv2.VideoCapture, retries: int = BAD_FRAME_RETRIES) -> tuple[U8 | None, int]:
    """The next frame of a video file [H, W, C] (as OpenCV returns it; owned by the caller) and
    how many reads failed before it; (None, n) at the end of the file, after n failed reads."""
    for failed in range(retries + 1):
        ok, frame = cap.read()
        if ok and frame is not None:
            return cast(U8, frame), failed
    return None, retries + 1


def webcam_index(target: str) -> int:
    """``"2"`` or ``"/dev/video2"`` → 2."""
    return int(target[len("/dev/video"):]) if target.startswith("/dev/video") else int(target)


_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?|[0-9A-Fa-f:.]+")
"""A host name, IPv4 or (bracket-stripped) IPv6 address: what a network camera's URL can name."""


def check_url(url: str) -> None:
    """SourceError unless ``url`` has a host and, if any, a port 1–65535 (``rtsp://%%%:abc/x``
    was retried for ever). The message leaves out any user and password."""
    parts = urlsplit(url)
    shown = f"{parts.scheme}://{parts.hostname or '?'}{parts.path}"
    try:
        port = parts.port
    except ValueError as e:
        raise SourceError(f"{shown}: the port is not a number in 0–65535 ({e})") from e
    if not parts.hostname or not _HOST.fullmatch(parts.hostname):
        raise SourceError(f"{url.split('://')[0]}:// URL without a valid host name: {shown}")
    if port == 0:
        raise SourceError(f"{shown}: port 0 is not a port a camera serves on")


def parse_source(text: str) -> SourceSpec:
    """``demo`` | ``rtsp://…`` | ``0`` or ``/dev/videoN`` | a video file path."""
    t = text.strip()
    if t == "demo":
        return SourceSpec("demo", "")
    if re.match(r"^(rtsp|rtsps|rtmp|http|https)://", t):
        check_url(t)
        return SourceSpec("rtsp", t)
    if re.fullmatch(r"\d+", t) or re.fullmatch(r"/dev/video\d+", t):
        if webcam_index(t) > MAX_WEBCAM_INDEX:  # OpenCV raised a bare cv2.error for an index beyond a C int
            raise SourceError(f"webcam index {webcam_index(t)} is out of range (0–{MAX_WEBCAM_INDEX})")
        return SourceSpec("webcam", t)
    if not t:
        raise SourceError("empty source; expected demo, a file path, a webcam index or an rtsp:// URL")
    return SourceSpec("file", t)


def normalise_frame(frame: object) -> U8:
    """Camera frames → [H,W,3] uint8 BGR: grayscale and BGRA converted; anything else rejected."""
    if not isinstance(frame, np.ndarray) or frame.size == 0:
        raise FrameError(f"expected a non-empty image array, got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise FrameError(f"expected uint8 pixels, got {frame.dtype}")
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        return cast(U8, cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cast(U8, cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR))
    if frame.ndim == 3 and frame.shape[2] == 3:
        return frame
    raise FrameError(f"expected [H,W], [H,W,3] or [H,W,4], got {list(frame.shape)}")


class DemoSource:
    """A slow pan-and-zoom over a bundled photo, paced at ``fps``, with a moving disc so that
    motion is obvious. Needs no files beyond the package."""

    def __init__(self, size: tuple[int, int], fps: float) -> None:
        self.size, self.period = size, 1.0 / fps
        self._photo: U8 | None = None
        self._t0 = 0.0
        self._next = 0.0

    def __enter__(self) -> Self:
        data = resources.files("streamer").joinpath("assets/demo.jpg").read_bytes()
        photo = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if photo is None:
            raise SourceError("bundled demo photo is unreadable")
        self._photo = cast(U8, photo)
        self._t0 = self._next = time.monotonic()
        return self

    def pace(self) -> None:
        """Sleep until the next frame is due (a camera's frame interval)."""
        self._next = _pace(self._next, self.period)

    def read(self) -> U8:
        assert self._photo is not None, "DemoSource used outside 'with'"
        return self._render(time.monotonic() - self._t0)

    def _render(self, t: float) -> U8:
        assert self._photo is not None
        w, h = self.size
        ph, pw = self._photo.shape[:2]
        zoom = 1.15 + 0.1 * math.sin(t * 0.4)
        scale = max(w / pw, h / ph) * zoom
        cx = pw / 2 + (pw * scale - w) / (2 * scale) * 0.8 * math.sin(t * 0.25)
        cy = ph / 2 + (ph * scale - h) / (2 * scale) * 0.8 * math.cos(t * 0.3)
        m = np.array([[scale, 0, w / 2 - scale * cx], [0, scale, h / 2 - scale * cy]], dtype=np.float64)
        # The view never leaves the photo (zoom ≥ 1.05 × cover, pan ≤ 0.8 of the margin), so the
        # border mode only picks OpenCV's code path: replicate's is ~10× faster than reflect's.
        frame = cv2.warpAffine(self._photo, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        x = int(w / 2 + w * 0.35 * math.cos(t * 1.1))
        y = int(h / 2 + h * 0.3 * math.sin(t * 1.7))
        cv2.circle(frame, (x, y), max(6, h // 12), (40, 200, 255), -1, cv2.LINE_AA)
        return cast(U8, frame)

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self._photo = None


class CvSource:
    """An OpenCV ``VideoCapture`` on a file (looped, paced at its own fps), webcam or stream.

    Network streams get open/read timeouts so a stalled server cannot block ``read()`` for ~90 s.
    """

    def __init__(self, spec: SourceSpec, timeout_s: float = 5.0) -> None:
        self.spec, self.timeout_s = spec, timeout_s
        self._cap: cv2.VideoCapture | None = None
        self._period = 0.0
        self._next = 0.0
        self._since_loop = 0  # frames read since the file was (re)started: a loop at 1 means a one-frame file
        self._last: U8 | None = None  # the frame read last (a reference, as OpenCV returned it)
        self._ahead: U8 | None = None  # a file's frame read past unreadable ones, handed out next
        self._still: U8 | None = None  # that frame: a still image or a one-frame clip, not decoded again

    def __enter__(self) -> Self:
        ms = int(self.timeout_s * 1000)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
        kind, target = self.spec.kind, self.spec.target
        try:
            cap = self._open(kind, target, params)
        except cv2.error as e:  # OpenCV's own argument errors: a source that cannot be opened
            raise SourceError(f"cannot open {kind} source {target!r}: {e}") from e
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open {kind} source {target!r}")
        self._cap, self._since_loop, self._still = cap, 0, None
        if kind == "file":
            fps = cap.get(cv2.CAP_PROP_FPS)
            self._period = 1.0 / fps if 1.0 <= fps <= 240.0 else 1.0 / 30.0
        self._next = time.monotonic()
        log.info("opened %s source %s", kind, target)
        return self

    @staticmethod
    def _open(kind: str, target: str, params: list[int]) -> cv2.VideoCapture:
        if kind == "webcam":
            cap = cv2.VideoCapture(webcam_index(target), cv2.CAP_V4L2)
        elif kind == "rtsp":
            # Low latency: TCP transport (no UDP loss/reorder stalls), no demuxer buffering. The
            # user's own OPENCV_FFMPEG_CAPTURE_OPTIONS wins. OpenCV reads it at open time, so it is
            # set for this open only: left set, it also reached every later file capture of the
            # process (which then lost its last frame).
            with ffmpeg_capture_options(LOW_LATENCY_FFMPEG_OPTIONS):
                cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        else:
            if not Path(target).is_file():
                raise SourceError(f"video file not found: {target}")
            cap = cv2.VideoCapture(target, cv2.CAP_FFMPEG, params)
        return cap

    def read(self) -> U8:
        cap = self._cap
        if cap is None:
            raise SourceError("source is not open")
        if self._still is not None:
            return self._still.copy()  # a copy: the caller owns each frame it is given
        if self.spec.kind == "file":
            return self._read_file(cap)
        ok, frame = cap.read()
        if not ok or frame is None:
            raise SourceError(f"{self.spec.kind} source {self.spec.target!r} returned no frame")
        self._since_loop += 1
        self._last = cast(U8, frame)
        return normalise_frame(frame)

    def _read_file(self, cap: cv2.VideoCapture) -> U8:
        """The next frame of a file, looping at its end. Unreadable frames inside it are skipped
        with one FrameError (the pipeline counts it in ``invalid_frames``), the frame after them
        is handed out on the next call; a file of one frame is decoded once."""
        if self._ahead is not None:
            frame, self._ahead = self._ahead, None
        else:
            got, failed = read_past_bad_frames(cap)
            if got is not None and failed:
                self._ahead = got
                raise FrameError(f"file source {self.spec.target!r}: {failed} unreadable frame(s) skipped")
            if got is None:  # the end
                if self._since_loop == 1 and self._last is not None:  # the file holds one frame (a still image does not even seek back)
                    self._still = normalise_frame(self._last)
                    return self._still.copy()
                cap.set(cv2.CAP_PROP_POS_FRAMES, 0)  # loop
                self._since_loop = 0
                got, _ = read_past_bad_frames(cap)
                if got is None:
                    raise SourceError(f"file source {self.spec.target!r} returned no frame")
            frame = got
        self._since_loop += 1
        self._last = frame
        return normalise_frame(frame)

    def pace(self) -> None:
        """Files play at their own frame rate; live sources are paced by the device itself."""
        if self._period:
            self._next = _pace(self._next, self._period)

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


Source = DemoSource | CvSource


def _pace(due: float, period: float) -> float:
    """Sleep until ``due`` (monotonic s); return the next due time, never more than one period behind."""
    delay = due - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    return max(due + period, time.monotonic() - period)


def open_source(spec: SourceSpec, size: tuple[int, int], fps: float, timeout_s: float = 5.0) -> Source:
    """An unopened source for ``spec``; use it as ``with open_source(...) as src:``."""
    if spec.kind == "demo":
        return DemoSource(size, fps)
    return CvSource(spec, timeout_s)
