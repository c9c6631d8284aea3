"""Snapshots: the last published frame written to a PNG or JPEG on request (``ctl snapshot``).

The name is checked by ``controls.snapshot_name`` when the request is parsed; the
folder defaults to the user's state directory rather than wherever the daemon was started,
and the folder is capped in files and bytes: a control client cannot fill the disk.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from engines.cache import user_dir
from streamer.controls import ControlError

MAX_FILES = 500
"""Images the snapshot folder may hold before requests that add one are refused."""

MAX_BYTES = 1 << 30
"""Bytes of images the snapshot folder may hold (1 GiB) before requests that add one are refused."""

SUFFIXES = (".png", ".jpg")


def default_dir(env: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    """``$STATE_DIRECTORY/snapshots`` under systemd, else ``$XDG_STATE_HOME/stylecast/snapshots``
    (``~/.local/state/stylecast/snapshots``): never the folder the daemon was started from."""
    return user_dir("snapshots", "XDG_STATE_HOME", ".local/state", env, home)


def quota_refusal(folder: Path, adding: Path, max_files: int = MAX_FILES, max_bytes: int = MAX_BYTES) -> str | None:
    """Why writing ``adding`` into ``folder`` is refused (None: it is not): the folder's images
    are already at ``max_files`` or ``max_bytes``. Overwriting a file already there adds none."""
    if not folder.is_dir():
        return None
    images = [p for p in folder.iterdir() if p.suffix in SUFFIXES and p.is_file()]
    used = sum(p.stat().st_size for p in images)
    if adding in images:
        return None if used <= max_bytes else f"snapshot folder {folder} holds {used / 2**20:.1f} MiB (cap {max_bytes / 2**20:.1f} MiB): remove some"
    if len(images) >= max_files:
        return f"snapshot folder {folder} holds {len(images)} images (cap {max_files}): remove some"
    if used >= max_bytes:
        return f"snapshot folder {folder} holds {used / 2**20:.1f} MiB (cap {max_bytes / 2**20:.1f} MiB): remove some"
    return None


def write(folder: Path, name: str | None, seq: int, image: np.ndarray, max_files: int = MAX_FILES, max_bytes: int = MAX_BYTES) -> Path:
    """Write BGR ``image`` [H, W, 3] uint8 as ``folder/name`` (``name`` checked by
    ``controls.snapshot_name``; default ``stylecast_<seq>.png``); its resolved path. ControlError
    for a full folder or a failed write."""
    path = folder / (name or f"stylecast_{seq:08d}.png")
    refused = quota_refusal(folder, path, max_files, max_bytes)
    if refused:
        raise ControlError(refused)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        ok = cv2.imwrite(str(path), image)
    except (OSError, cv2.error) as e:
        raise ControlError(f"cannot write snapshot {path}: {e}") from e
    if not ok:
        raise ControlError(f"cannot write snapshot {path}")
    return path.resolve()
