"""``stylecast view``: subscribe and show a window, or write frames to a video file."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from streamer.client import Subscriber
from streamer.security import ClientKeys
from streamer.video_out import VideoOut, VideoOutError

U8 = npt.NDArray[np.uint8]

log = logging.getLogger(__name__)


class ViewError(RuntimeError):
    """No window available, output unwritable, or the stream did not arrive."""


def fit(img: U8, size: tuple[int, int]) -> U8:
    """``img`` [H,W,3] uint8 scaled to fit ``size`` (W, H) with its aspect kept, centred on black:
    a new array of that size."""
    w, h = size
    s = min(w / img.shape[1], h / img.shape[0])
    nw, nh = max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))
    out = np.zeros((h, w, 3), np.uint8)
    x, y = (w - nw) // 2, (h - nh) // 2
    out[y : y + nh, x : x + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    return out


FPS_PROBE = 10
"""Frames ``view --out`` reads before it opens the file, to measure the stream's rate."""


def stream_fps(t_capture: list[float], default: float = 25.0) -> float:
    """Frames per second of frames captured at ``t_capture`` (Unix s, in order), clamped to
    1–240; ``default`` with fewer than two distinct times. The file plays back at this rate, so
    a 10 fps daemon's recording does not play 2.5× fast at a fixed 25."""
    if len(t_capture) < 2 or t_capture[-1] <= t_capture[0]:
        return default
    return float(min(240.0, max(1.0, (len(t_capture) - 1) / (t_capture[-1] - t_capture[0]))))


class Timeline:
    """Frames placed on a constant-rate timeline by their capture time, so a recording plays
    at the speed it was captured: frame ``i`` of the file shows the stream at ``t0 + i / fps``.

    ``place(t)`` → how many slots to fill before this frame (with the frame before it: the
    stream's frames that never arrived), or -1 when its slot is already written (a frame that
    came too late, dropped). Counts both for the summary."""

    def __init__(self, fps: float, t0: float) -> None:
        self.fps, self.t0 = fps, t0
        self.written = self.repeated = self.dropped = 0

    def place(self, t_capture: float) -> int:
        slot = round((t_capture - self.t0) * self.fps)
        if slot < self.written:
            self.dropped += 1
            return -1
        fill = slot - self.written
        self.repeated += fill
        self.written = slot + 1
        return fill

    def summary(self, received: int) -> str:
        return (f"{self.written} frames, {self.written / self.fps:.1f} s of the stream at {self.fps:.1f} fps, from {received} received "
                f"({self.repeated} repeated where the stream's frames did not arrive, {self.dropped} dropped as they came too late)")


def view(endpoint: str, topic: str, out: Path | None, frames: int, timeout: float, curve: ClientKeys | None = None) -> int:
    """Show (or write to ``out``) frames of ``topic``; stop after ``frames`` (0 = until closed /
    interrupted). Returns the number of frames shown or written. The file keeps its first frame's
    size: later frames of another size (``ctl mode side_by_side``) are fitted into it (``fit``),
    and its frame rate is the stream's, from the capture times of its first ``FPS_PROBE``
    frames (``stream_fps``). Raises ViewError if no frame arrives within ``timeout`` seconds.
    ``curve``: this client's keys for a daemon with CURVE on."""
    writer: VideoOut | None = None
    timeline: Timeline | None = None
    n, size, refitted = 0, (0, 0), False
    last: U8 | None = None  # the frame written last: what fills the slots of frames that did not arrive
    pending: list[tuple[U8, float]] = []  # frames held until the rate is known (copies: ``msg.image`` is the receive buffer)

    def write(img: U8, t_capture: float) -> None:
        nonlocal refitted, last
        assert writer is not None and timeline is not None
        if (img.shape[1], img.shape[0]) != size:
            if not refitted:
                log.warning("frames changed size from %dx%d to %dx%d (e.g. 'ctl mode side_by_side'); "
                            "fitting them into the file's %dx%d", *size, img.shape[1], img.shape[0], *size)
                refitted = True
            img = fit(img, size)
        fill = timeline.place(t_capture)
        if fill < 0:
            return
        for _ in range(fill):
            writer.write(last if last is not None else img)
        writer.write(img)  # a frame of another size would be dropped by VideoWriter without a word
        last = img.copy()

    def open_writer() -> None:
        nonlocal writer, timeline, size
        assert out is not None and pending
        first = pending[0][0]
        fps = stream_fps([t for _, t in pending])
        try:
            w = VideoOut(out, fps, (first.shape[1], first.shape[0]))
        except VideoOutError as e:
            raise ViewError(str(e)) from e
        writer, timeline, size = w, Timeline(fps, pending[0][1]), (first.shape[1], first.shape[0])
        log.info("writing %s (%s) at %.1f fps (the stream's rate; frames placed by their capture time)", out, w.codec, fps)
        for img, t in pending:
            write(img, t)
        pending.clear()

    with Subscriber(endpoint, topics=[topic + "\x00"], conflate=True, curve=curve) as sub:
        try:
            while frames == 0 or n < frames:
                msg = sub.recv(timeout)
                if msg is None:
                    raise ViewError(f"no {topic} frame from {endpoint} within {timeout} s — is 'stylecast serve' running?")
                if msg.image is None:
                    continue
                img = msg.image
                if out is not None:
                    t_capture = msg.frame.t_capture if msg.frame is not None else time.time()
                    if writer is None:
                        pending.append((img.copy(), t_capture))
                        if len(pending) >= FPS_PROBE:
                            open_writer()
                    else:
                        write(img, t_capture)
                else:
                    try:
                        cv2.imshow(f"stylecast {topic}", img)
                        if cv2.waitKey(1) & 0xFF in (27, ord("q")):
                            break
                    except cv2.error as e:
                        raise ViewError("this OpenCV build has no window support (opencv-python-headless); "
                                        "use --out FILE.mp4, or pip install opencv-python") from e
                n += 1
            if pending:  # fewer frames than the probe: written now, at the rate they give
                open_writer()
        finally:
            if writer is None and pending:  # interrupted (Ctrl-C, SIGTERM) before the probe filled: keep what came
                try:
                    open_writer()
                except ViewError as e:
                    log.error("%s", e)
            if writer is not None and timeline is not None:
                writer.close()
                log.info("wrote %s: %s", out, timeline.summary(n))
            elif out is None:
                try:
                    cv2.destroyAllWindows()
                except cv2.error:
                    pass
    return n
