"""Backends by name, imported only when chosen (uvicorn's lazy registry).

Adding a backend touches its own module and one line here.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from engines.base import BaseEngine
from engines.errors import BackendUnavailable, EngineError
from engines.model import load_model_info

BACKENDS: dict[str, str] = {
    "onnxruntime": "engines.ort:OrtEngine",
    "tensorrt": "engines.tensorrt:TensorRTEngine",
    "null": "engines.null:NullEngine",  # pass-through: measures the host side alone
}


def available_backends() -> list[str]:
    return sorted(BACKENDS)


def backend_class(name: str) -> type[BaseEngine]:
    try:
        target = BACKENDS[name]
    except KeyError as e:
        raise EngineError(f"unknown backend {name!r}; expected one of {available_backends()}") from e
    module_name, cls_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise BackendUnavailable(f"backend {name!r} cannot be imported: {e}") from e
    cls: type[BaseEngine] = getattr(module, cls_name)
    return cls


def create_engine(name: str, onnx_path: Path, **options: Any) -> BaseEngine:
    """An unopened engine of backend ``name`` for the model at ``onnx_path`` (sidecar beside it)."""
    return backend_class(name)(load_model_info(onnx_path), **options)
