"""CUDA through pycuda: the one module that imports it.

``CudaDevice`` is a context manager for one inference thread: it retains the device's primary
context and pushes it on the calling thread (never pycuda's autoinit module, which would create a context
at import on whatever thread imported it), owns one stream and every page-locked host / device
buffer it handed out, and on ``close()`` frees them all, then pops the context. Open, use and
close it on the same thread.

pycuda ships no type stubs, so it is typed ``Any`` here and only here; nothing else touches it.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from engines.errors import BackendUnavailable, EngineError

log = logging.getLogger(__name__)


def import_cuda() -> Any:
    """``pycuda.driver`` (initialised), or BackendUnavailable saying what is missing."""
    try:
        cuda = importlib.import_module("pycuda.driver")
    except ImportError as e:
        raise BackendUnavailable(f"pycuda is not installed ({e}); pip install 'stylecast[gpu]'") from e
    try:
        cuda.init()
        count = int(cuda.Device.count())
    except Exception as e:  # pycuda raises its own LogicError/RuntimeError when there is no driver
        raise BackendUnavailable(f"no usable CUDA driver: {e}") from e
    if count < 1:
        raise BackendUnavailable("no CUDA device found")
    return cuda


@dataclass
class Buffer:
    """A page-locked host array and a device allocation of the same byte size.

    ``host`` is ``[capacity]`` of ``dtype``; ``view(shape)`` is the first ``prod(shape)``
    elements in that shape. Both are owned by the ``CudaDevice`` and freed by its ``close()``:
    a view must not be used after that.
    """

    host: npt.NDArray[Any]
    device: Any  # pycuda.driver.DeviceAllocation

    @property
    def ptr(self) -> int:
        return int(self.device)

    def view(self, shape: tuple[int, ...]) -> npt.NDArray[Any]:
        n = int(np.prod(shape))
        if n > self.host.size:
            raise EngineError(f"buffer of {self.host.size} elements cannot hold shape {list(shape)}")
        return self.host[:n].reshape(shape)


class CudaDevice:
    """The primary context of device ``index`` on this thread, one stream, and buffers."""

    def __init__(self, index: int = 0) -> None:
        self.index = index
        self._cuda: Any = None
        self._ctx: Any = None
        self._stream: Any = None
        self._buffers: list[Buffer] = []
        self._graph: Any = None

    # -- lifecycle -------------------------------------------------------------------------
    def open(self) -> Self:
        if self._ctx is not None:
            return self
        cuda = import_cuda()
        try:
            ctx = cuda.Device(self.index).retain_primary_context()
        except Exception as e:
            raise BackendUnavailable(f"cannot use CUDA device {self.index}: {e}") from e
        ctx.push()
        self._cuda, self._ctx = cuda, ctx
        try:
            self._stream = cuda.Stream()
        except Exception as e:
            self.close()
            raise EngineError(f"cannot create a CUDA stream: {e}") from e
        return self

    def close(self) -> None:
        """Idempotent: drop the graph, free every buffer and the stream, then pop the context."""
        if self._ctx is None:
            return
        try:
            if self._stream is not None:
                self._stream.synchronize()
            self._graph = None
            for buf in self._buffers:
                buf.device.free()
                buf.host.base.free()  # type: ignore[union-attr]  # the pagelocked HostAllocation behind the array
            self._buffers.clear()
            self._stream = None
        finally:
            ctx, self._ctx = self._ctx, None
            ctx.pop()  # dropping the last reference releases pycuda's retain of the primary context

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- facts -----------------------------------------------------------------------------
    def name(self) -> str:
        return str(self._cuda.Device(self.index).name())

    def compute_capability(self) -> tuple[int, int]:
        major, minor = self._cuda.Device(self.index).compute_capability()
        return int(major), int(minor)

    @property
    def stream_handle(self) -> int:
        return int(self._stream.handle)

    # -- memory and copies -----------------------------------------------------------------
    def alloc(self, capacity: int, dtype: npt.DTypeLike) -> Buffer:
        """``capacity`` elements of ``dtype``, page-locked on the host and on the device."""
        host = self._cuda.pagelocked_empty(capacity, dtype)
        try:
            dev = self._cuda.mem_alloc(max(host.nbytes, 1))
        except Exception as e:
            host.base.free()  # the pagelocked HostAllocation behind the array
            raise EngineError(f"cannot allocate {host.nbytes} bytes on the GPU: {e}") from e
        buf = Buffer(host, dev)
        self._buffers.append(buf)
        return buf

    def to_device(self, buf: Buffer, nbytes: int) -> None:
        self._cuda.memcpy_htod_async(buf.ptr, buf.host[: nbytes // buf.host.itemsize], self._stream)

    def to_host(self, buf: Buffer, nbytes: int) -> None:
        self._cuda.memcpy_dtoh_async(buf.host[: nbytes // buf.host.itemsize], buf.ptr, self._stream)

    def synchronize(self) -> None:
        self._stream.synchronize()

    # -- CUDA graphs -----------------------------------------------------------------------
    def capture(self, enqueue: Callable[[], None]) -> bool:
        """Record ``enqueue``'s work on the stream as a CUDA graph to replay with ``launch()``.
        Returns False (and logs why) where capture is not possible; then call ``enqueue`` directly."""
        self._graph = None
        try:
            self._stream.begin_capture()
        except Exception as e:  # pycuda without graph support, or a driver that refuses
            log.warning("CUDA graph capture unavailable (%s); running without graphs", e)
            return False
        try:
            try:
                enqueue()
            finally:
                graph = self._stream.end_capture()  # always: a stream left capturing fails every later call
        except Exception as e:  # an op that cannot be captured (execute_async_v3 → False, a copy refused)
            log.warning("CUDA graph capture failed (%s); running without graphs", e)
            return False
        try:
            self._graph = graph.instantiate()
        except Exception as e:
            log.warning("CUDA graph instantiation failed (%s); running without graphs", e)
            return False
        return True

    def launch(self) -> None:
        self._graph.launch(self._stream)
