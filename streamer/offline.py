"""``stylecast stylize IN OUT``: an image or a video file through an engine, offline."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from engines import BaseEngine
from engines.model import IMAGE_SUFFIXES
from streamer.outputs import VIDEO_SUFFIXES, OutputError, atomic_output, check_output, write_image
from streamer.sources import normalise_frame, read_past_bad_frames
from streamer.stabilise import DEFAULT_HISTORY, StabiliseConfig, Stabiliser
from streamer.video_out import VideoOut, VideoOutError

log = logging.getLogger(__name__)

class OfflineError(RuntimeError):
    """Input unreadable, or the video writer would not open (an unwritable image is streamer.outputs.WriteError)."""


def check_stylize_paths(src: Path, dst: Path, attention_out: Path | None = None) -> None:
    """OutputError (a usage error) unless ``dst`` (and ``attention_out``) can be written for
    ``src``: an image for an image, .mp4/.avi for a video, the attention map only for an image,
    and no output the same file as the input or as each other."""
    image = src.suffix.lower() in IMAGE_SUFFIXES
    check_output(dst, IMAGE_SUFFIXES if image else VIDEO_SUFFIXES, "output", [src])
    if attention_out is not None:
        if not image:
            raise OutputError(f"--attention: the attention map is written for an image input, not for the video {src}")
        check_output(attention_out, IMAGE_SUFFIXES, "--attention", [src, dst])


def stylize_file(engine: BaseEngine, src: Path, dst: Path, weights: list[float], strength: float, attention_out: Path | None = None,
                 stabilise: float = DEFAULT_HISTORY) -> int:
    """Stylise ``src`` (image or video) into ``dst``; returns the number of frames written.

    Video frames go through the daemon's stabiliser at history weight ``stabilise`` (0 = off;
    ``StabiliseError`` when out of range). Videos are written with OpenCV's mp4v (``.mp4``) or
    MJPG (``.avi``) codec: this OpenCV build cannot encode H.264. Paths are checked first
    (``check_stylize_paths``), and each output replaces ``dst`` only once it is complete, so an
    interrupted or failed run leaves an existing ``dst`` as it was.
    """
    check_stylize_paths(src, dst, attention_out)
    w = np.asarray(weights, np.float32)
    stabiliser = Stabiliser(StabiliseConfig(history=stabilise))
    if src.suffix.lower() in IMAGE_SUFFIXES:
        img = cv2.imread(str(src), cv2.IMREAD_COLOR)  # 8-bit BGR from any depth and channel count (a 16-bit PNG was refused)
        if img is None:
            raise OfflineError(f"cannot read image {src}")
        res = engine.infer(normalise_frame(img), w, strength)
        write_image(dst, res.output)
        if attention_out is not None:
            write_image(attention_out, res.attention)
        return 1
    cap = cv2.VideoCapture(str(src))
    if not cap.isOpened():
        raise OfflineError(f"cannot open video {src}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    n = skipped = 0
    with atomic_output(dst) as tmp:
        writer: VideoOut | None = None
        try:
            while True:
                got, failed = read_past_bad_frames(cap)
                if got is None:
                    break
                skipped += failed
                frame = normalise_frame(got)
                res = engine.infer(frame, w, strength)
                out = stabiliser(frame, res.output, res.attention)[0]
                if writer is None:
                    try:
                        writer = VideoOut(tmp, fps, (out.shape[1], out.shape[0]))
                    except VideoOutError as e:
                        raise OfflineError(f"cannot write video {dst}: {e}") from e
                writer.write(out)
                n += 1
        finally:
            cap.release()
            if writer is not None:
                writer.close()
        if n == 0:
            raise OfflineError(f"no frames could be read from {src}")
    if skipped:
        log.warning("%s: %d unreadable frame(s) skipped", src, skipped)
    return n

