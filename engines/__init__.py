"""Inference backends behind one protocol. Importing this imports no runtime (onnxruntime,
tensorrt, pycuda): a backend's module is imported when it is chosen."""

from engines.base import BaseEngine, Engine, InferResult, check_frame, pad_to_multiple
from engines.errors import BackendUnavailable, EngineClosed, EngineError, InputError, ModelError
from engines.model import ModelInfo, load_model_info
from engines.registry import available_backends, backend_class, create_engine

__all__ = [
    "BackendUnavailable", "BaseEngine", "Engine", "EngineClosed", "EngineError", "InferResult", "InputError",
    "ModelError", "ModelInfo", "available_backends", "backend_class", "check_frame", "create_engine",
    "load_model_info", "pad_to_multiple",
]
