"""``stylecast stylize IN OUT``: an image or a video file through an engine, offline."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from engines import BaseEngine
from streamer.sources import normalise_frame
from streamer.stabilise import DEFAULT_HISTORY, StabiliseConfig, Stabiliser

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class OfflineError(RuntimeError):
    """Input unreadable or output unwritable."""


def stylize_file(engine: BaseEngine, src: Path, dst: Path, weights: list[float], strength: float, attention_out: Path | None = None,
                 stabilise: float = DEFAULT_HISTORY) -> int:
    """Stylise ``src`` (image or video) into ``dst``; returns the number of frames written.

    Video frames go through the daemon's stabiliser at history weight ``stabilise`` (0 = off;
    ``StabiliseError`` when out of range). Videos are written with OpenCV's mp4v (``.mp4``) or
    MJPG (``.avi``) codec: this OpenCV build cannot encode H.264.
    """
    w = np.asarray(weights, np.float32)
    stabiliser = Stabiliser(StabiliseConfig(history=stabilise))
    if src.suffix.lower() in IMAGE_SUFFIXES:
        img = cv2.imread(str(src), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise OfflineError(f"cannot read image {src}")
        res = engine.infer(normalise_frame(img), w, strength)
        if not cv2.imwrite(str(dst), res.output):
            raise OfflineError(f"cannot write {dst}")
        if attention_out is not None:
            cv2.imwrite(str(attention_out), res.attention)
        return 1
    cap = cv2.VideoCapture(str(src))
    if not cap.isOpened():
        raise OfflineError(f"cannot open video {src}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    writer: cv2.VideoWriter | None = None
    n = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frame = normalise_frame(frame)
            res = engine.infer(frame, w, strength)
            out = stabiliser(frame, res.output, res.attention)[0]
            if writer is None:
                fourcc = cv2.VideoWriter.fourcc(*("MJPG" if dst.suffix.lower() == ".avi" else "mp4v"))
                writer = cv2.VideoWriter(str(dst), fourcc, fps, (out.shape[1], out.shape[0]))
                if not writer.isOpened():
                    raise OfflineError(f"cannot write video {dst} (use .mp4 or .avi)")
            writer.write(out)
            n += 1
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    if n == 0:
        raise OfflineError(f"no frames could be read from {src}")
    return n
