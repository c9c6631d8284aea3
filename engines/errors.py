"""Typed errors of the inference backends."""


class EngineError(RuntimeError):
    """Base class: an engine could not be built, opened or run."""


class BackendUnavailable(EngineError):
    """The backend's runtime (onnxruntime, tensorrt, pycuda, a GPU) is not installed or present."""


class ModelError(EngineError):
    """The model file or its sidecar is missing, unreadable or inconsistent."""


class InputError(EngineError, ValueError):
    """An input does not match what the engine expects; the message gives expected vs actual."""


class EngineClosed(EngineError):
    """``infer`` was called on an engine that is not open."""
