"""A contact sheet of a model: rows = photos, columns = input then each style, through the same
engine the daemon uses (so it shows what users get, not what PyTorch computes)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from engines import BaseEngine
from streamer.outputs import IMAGE_SUFFIXES, OutputError, check_output, write_image

U8 = npt.NDArray[np.uint8]


class ContactSheetError(RuntimeError):
    """A photo could not be read (an unwritable sheet is streamer.outputs.WriteError)."""


def _cell(img: U8, width: int, height: int) -> U8:
    """Centre-crop to the cell's aspect ratio, then resize to width×height."""
    h, w = img.shape[:2]
    target = width / height
    if w / h > target:
        nw = int(h * target)
        img = img[:, (w - nw) // 2 : (w - nw) // 2 + nw]
    else:
        nh = int(w / target)
        img = img[(h - nh) // 2 : (h - nh) // 2 + nh]
    return np.ascontiguousarray(cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA))


def contact_sheet(engine: BaseEngine, photos: list[Path], out: Path, cell: tuple[int, int] = (320, 184), attention: bool = False) -> U8:
    """Write and return the sheet [rows·h + header, cols·w, 3] uint8 BGR. With ``attention``, each
    style column is followed by its attention map."""
    check_output(out, IMAGE_SUFFIXES, "--out", photos)
    if min(cell) < 16:
        raise OutputError(f"cell size: each side at least 16 px, got {cell[0]}x{cell[1]}")
    styles = engine.model.styles
    header = np.full((28, cell[0] * (1 + len(styles) * (2 if attention else 1)), 3), 255, np.uint8)
    titles = ["input"] + [t for s in styles for t in ((s, f"{s} attention") if attention else (s,))]
    for i, t in enumerate(titles):
        cv2.putText(header, t[:38], (i * cell[0] + 6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.48, (0, 0, 0), 1, cv2.LINE_AA)
    rows = [header]
    for p in photos:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise ContactSheetError(f"cannot read image {p}")
        frame = _cell(cast(U8, img), *cell)
        cells = [frame]
        for i in range(len(styles)):
            w = np.zeros(len(styles), np.float32)
            w[i] = 1.0
            res = engine.infer(frame, w, 1.0)
            cells.append(res.output.copy())
            if attention:
                cells.append(cast(U8, cv2.applyColorMap(res.attention, cv2.COLORMAP_TURBO)))
        rows.append(np.hstack(cells))
    sheet = np.vstack(rows)
    write_image(out, sheet)
    return sheet
