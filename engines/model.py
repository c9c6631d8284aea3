"""The exported model's sidecar metadata (``<model>.json`` beside ``<model>.onnx``).

Pure reading and validation; imports no runtime.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engines.errors import ModelError

MODEL_FORMAT = "stylecast-model"
SUPPORTED_FORMAT_VERSIONS = (1,)
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
"""Image files OpenCV reads and writes here: one list for every command (``streamer.outputs``)."""


@dataclass(frozen=True)
class ModelInfo:
    """What an engine needs to know about a model, from its sidecar JSON."""

    onnx_path: Path
    styles: tuple[str, ...]
    size_multiple: int
    onnx_sha256: str
    raw: dict[str, Any]

    @property
    def num_styles(self) -> int:
        return len(self.styles)

    def style_images(self) -> dict[str, list[Path]]:
        """``training_paintings`` of this model's sidecar."""
        return training_paintings(self.raw)


def training_paintings(sidecar: dict[str, Any]) -> dict[str, list[Path]]:
    """Style name → the paintings it was trained on, from the training config ``sidecar`` records:
    those still on this machine (a style trained on a folder lists its images)."""
    out: dict[str, list[Path]] = {}
    config = sidecar.get("training_config")
    for s in config.get("styles", []) if isinstance(config, dict) else []:
        p = Path(str(s))
        if p.is_file():
            out[p.stem] = [p]
        elif p.is_dir():
            out[p.name] = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    return out


def sidecar_path(onnx_path: Path) -> Path:
    return onnx_path.with_suffix(".json")


def load_model_info(onnx_path: Path) -> ModelInfo:
    """Read and validate the sidecar of ``onnx_path``; raises ModelError naming the problem."""
    if not onnx_path.is_file():
        raise ModelError(f"model file not found: {onnx_path}")
    side = sidecar_path(onnx_path)
    try:
        raw = json.loads(side.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ModelError(f"model sidecar not found: {side} (written by 'stylecast export')") from e
    except (OSError, ValueError, RecursionError) as e:  # ValueError: bad JSON or bytes that are not UTF-8
        raise ModelError(f"model sidecar {side} is unreadable: {e}") from e
    if not isinstance(raw, dict) or raw.get("format") != MODEL_FORMAT:
        raise ModelError(f"{side}: 'format' must be {MODEL_FORMAT!r}")
    if raw.get("format_version") not in SUPPORTED_FORMAT_VERSIONS:
        raise ModelError(f"{side}: format_version {raw.get('format_version')!r} not in {SUPPORTED_FORMAT_VERSIONS}")
    styles = raw.get("styles")
    if not isinstance(styles, list) or not styles or not all(isinstance(s, str) and s for s in styles):
        raise ModelError(f"{side}: 'styles' must be a non-empty list of names, got {styles!r}")
    multiple = raw.get("size_multiple", 1)
    if not isinstance(multiple, int) or multiple < 1:
        raise ModelError(f"{side}: 'size_multiple' must be a positive integer, got {multiple!r}")
    return ModelInfo(onnx_path, tuple(styles), multiple, str(raw.get("onnx_sha256", "")), raw)
