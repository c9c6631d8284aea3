"""Video files written by ``view --out`` and ``stylize``: one writer, the best codec installed.

``.mp4`` is H.264 (libx264, yuv420p: what browsers and phones play) through PyAV when it is
installed (the ``video`` extra: ``pip install 'stylecast[video]'``); without it, OpenCV's MPEG-4
Part 2 (``mp4v``), which many players refuse, with a one-line note saying so. ``.avi`` is Motion
JPEG through OpenCV. Frames are BGR [H, W, 3] uint8 of the size the file was opened with.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import cv2
import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

U8 = npt.NDArray[np.uint8]


class VideoOutError(RuntimeError):
    """The file cannot be opened for writing, or a frame cannot be encoded."""


def h264_available() -> bool:
    """PyAV is installed and its FFmpeg has libx264."""
    try:
        import av
    except ImportError:
        return False
    return "libx264" in av.codecs_available


class VideoOut:
    """Open ``path`` for ``size`` (W, H) frames at ``fps``; ``write`` BGR frames; ``close``
    (idempotent) or use as a context manager. ``codec`` says what was chosen."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        self.path, self.fps, self.size = path, fps, size
        self._cv: cv2.VideoWriter | None = None
        self._av: Any = None
        self._stream: Any = None
        if path.suffix.lower() == ".mp4" and h264_available():
            self._open_av()
            self.codec = "H.264"
        else:
            if path.suffix.lower() == ".mp4":
                log.warning("writing %s as MPEG-4 Part 2 (mp4v), which browsers refuse: pip install 'stylecast[video]' for H.264", path)
            fourcc = cv2.VideoWriter.fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
            self._cv = cv2.VideoWriter(str(path), fourcc, fps, size)
            if not self._cv.isOpened():
                self._cv.release()
                raise VideoOutError(f"cannot write video {path} (use .mp4 or .avi)")
            self.codec = "MJPG" if path.suffix.lower() == ".avi" else "mp4v"

    def _open_av(self) -> None:
        from fractions import Fraction

        import av

        try:
            self._av = av.open(str(self.path), "w", format="mp4")
            rate = Fraction(self.fps).limit_denominator(1001)
            self._stream = self._av.add_stream("libx264", rate=rate)
            self._stream.width, self._stream.height = self.size[0] - self.size[0] % 2, self.size[1] - self.size[1] % 2  # yuv420p: even sides
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": "20", "preset": "veryfast"}
        except (OSError, ValueError, av.FFmpegError) as e:
            raise VideoOutError(f"cannot write video {self.path}: {e}") from e

    def write(self, img: U8) -> None:
        if self._cv is not None:
            self._cv.write(img)
            return
        import av

        w, h = self._stream.width, self._stream.height
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img[:h, :w]), format="bgr24")
        try:
            for packet in self._stream.encode(frame):
                self._av.mux(packet)
        except (OSError, ValueError, av.FFmpegError) as e:
            raise VideoOutError(f"cannot encode a frame into {self.path}: {e}") from e

    def close(self) -> None:
        if self._cv is not None:
            self._cv.release()
            self._cv = None
        if self._av is not None:
            try:
                for packet in self._stream.encode():
                    self._av.mux(packet)
            finally:
                self._av.close()
                self._av = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
