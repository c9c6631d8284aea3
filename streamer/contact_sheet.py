"""A contact sheet of a model: rows = photos, columns = input then each style, through the same
engine the daemon uses (so it shows what users get, not what PyTorch computes)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from engines import BaseEngine
from engines.model import IMAGE_SUFFIXES
from streamer.outputs import OutputError, check_output, write_image

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


Renderer = Callable[[U8, str], U8]
"""(BGR frame [H,W,3] uint8, style name) → a rendering of it in that style (the reference row)."""


def _label(img: U8, text: str) -> U8:
    """``img`` with ``text`` on a white strip across its top-left (a new array)."""
    out = img.copy()
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
    cv2.rectangle(out, (0, 0), (tw + 8, th + 8), (255, 255, 255), -1)
    cv2.putText(out, text, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def painting_row(styles: tuple[str, ...], paintings: dict[str, U8], cell: tuple[int, int], attention: bool) -> U8:
    """One row of thumbnails [h, cols·w, 3]: each style's painting above its column (letterboxed
    on white, whole), blank above the input and attention columns."""
    w, h = cell
    blank = np.full((h, w, 3), 255, np.uint8)
    cells = [_label(blank, "painting ->")]
    for name in styles:
        img, thumb = paintings.get(name), blank.copy()
        if img is not None:
            s = min(w / img.shape[1], h / img.shape[0])
            small = cv2.resize(img, (max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))), interpolation=cv2.INTER_AREA)
            y, x = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
            thumb[y : y + small.shape[0], x : x + small.shape[1]] = small
        cells += [thumb, blank] if attention else [thumb]
    return np.hstack(cells)


def contact_sheet(engine: BaseEngine, photos: list[Path], out: Path, cell: tuple[int, int] = (320, 184), attention: bool = False,
                  paintings: dict[str, U8] | None = None, reference: Renderer | None = None) -> U8:
    """Write and return the sheet [rows·h + header, cols·w, 3] uint8 BGR. With ``attention``, each
    style column is followed by its attention map; with ``paintings`` (style name → BGR image) a
    row of their thumbnails heads the columns; with ``reference``, a last row renders the first
    photo in each style with it (labelled "reference")."""
    check_output(out, IMAGE_SUFFIXES, "--out", photos)
    if min(cell) < 16:
        raise OutputError(f"cell size: each side at least 16 px, got {cell[0]}x{cell[1]}")
    styles = engine.model.styles
    header = np.full((28, cell[0] * (1 + len(styles) * (2 if attention else 1)), 3), 255, np.uint8)
    titles = ["input"] + [t for s in styles for t in ((s, f"{s} attention") if attention else (s,))]
    for i, t in enumerate(titles):
        cv2.putText(header, t[:38], (i * cell[0] + 6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.48, (0, 0, 0), 1, cv2.LINE_AA)
    rows = [header]
    if paintings:
        rows.append(painting_row(styles, paintings, cell, attention))
    first: U8 | None = None
    for p in photos:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise ContactSheetError(f"cannot read image {p}")
        frame = _cell(cast(U8, img), *cell)
        first = frame if first is None else first
        cells = [frame]
        for i in range(len(styles)):
            w = np.zeros(len(styles), np.float32)
            w[i] = 1.0
            res = engine.infer(frame, w, 1.0)
            cells.append(res.output.copy())
            if attention:
                cells.append(cast(U8, cv2.applyColorMap(res.attention, cv2.COLORMAP_TURBO)))
        rows.append(np.hstack(cells))
    if reference is not None and first is not None:
        blank = np.full_like(first, 255)
        cells = [_label(first, "reference row:")]
        for name in styles:
            cells.append(_label(reference(first, name), "reference (Gatys)"))
            if attention:
                cells.append(blank)
        rows.append(np.hstack(cells))
    sheet = np.vstack(rows)
    write_image(out, sheet)
    return sheet
