"""Output files of the offline commands (``stylize``, ``contact-sheet``, ``export``): checked
before any work, and written whole or not at all.

- ``check_output`` refuses a file type the writer cannot produce and an output that is one of
  the command's inputs (``stylize clip.avi clip.avi`` read and overwrote the clip at once).
- ``atomic_output`` hands the writer a temporary name beside the output and renames it over the
  output only when the writer finished, so an interrupted run leaves the old file as it was.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt

VIDEO_SUFFIXES = frozenset({".mp4", ".avi"})  # H.264 through PyAV (the video extra) or mp4v; MJPG (streamer/video_out.py)


class OutputError(ValueError):
    """An output path the command cannot or must not write (a usage error: the CLI exits 2)."""


class WriteError(RuntimeError):
    """An output that passed ``check_output`` could not be written (disk full, no permission)."""


def check_output(path: Path, suffixes: Iterable[str], what: str, inputs: Iterable[Path] = ()) -> None:
    """Raise OutputError unless ``path`` ends in one of ``suffixes`` (lower case, with the dot)
    and is none of ``inputs``; ``what`` names the argument in the message."""
    allowed = sorted(suffixes)
    if path.suffix.lower() not in allowed:
        raise OutputError(f"{what}: {path} must end in one of {', '.join(allowed)}")
    target = path.resolve()
    for p in inputs:
        if p.resolve() == target:
            raise OutputError(f"{what}: {path} is also an input; writing it would destroy that input")


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` with the same suffix (writers pick the format by it),
    renamed onto ``path`` when the block ends normally and removed when it raises (also on
    KeyboardInterrupt). The caller owns writing and closing the file inside the block."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_image(path: Path, img: npt.NDArray[np.uint8]) -> None:
    """Write ``img`` ([H,W,3] BGR or [H,W] uint8) to ``path`` whole (``atomic_output``), in the
    format its suffix names; WriteError if OpenCV cannot."""
    import cv2

    with atomic_output(path) as tmp:
        try:
            ok = cv2.imwrite(str(tmp), img)
        except cv2.error as e:
            raise WriteError(f"cannot write {path}: {e}") from e
        if not ok:
            raise WriteError(f"cannot write {path}")
