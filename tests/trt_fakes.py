"""Strict test doubles of the TensorRT and pycuda Python APIs, for CPU tests.

Same names and signatures as the real modules (tests check the TensorRT names against
tensorrt-stubs), every call recorded in order in ``calls``, and anything else fails: an unknown
module attribute raises AttributeError, classes use ``__slots__`` so setting an attribute the
real class lacks raises too. The "GPU" is a dict of numpy byte arrays; the fake engine computes
``output = 255 - frame``, ``attention = 128`` and ``check = check_value``.
"""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any

import numpy as np

_DTYPE_NAMES = {1: "FLOAT", 2: "UINT8", 10: "HALF"}  # ONNX elem types → TensorRT DataType names


class StrictModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"fake module {self.__name__!r} has no attribute {name!r} (not part of the API the fake models)")


def _enum(name: str, members: dict[str, int]) -> type:
    cls = type(name, (), {"__slots__": ("name", "value")})

    def init(self: Any, n: str, v: int) -> None:
        self.name, self.value = n, v

    cls.__init__ = init  # type: ignore[misc]
    cls.__int__ = lambda self: self.value  # type: ignore[attr-defined]
    cls.__index__ = lambda self: self.value  # type: ignore[attr-defined]
    cls.__repr__ = lambda self: f"<{name}.{self.name}: {self.value}>"  # type: ignore[assignment]
    cls.__str__ = lambda self: f"{name}.{self.name}"  # type: ignore[assignment]
    for k, v in members.items():
        setattr(cls, k, cls(k, v))
    return cls


def make_tensorrt(calls: list[str], version: str = "10.13.0.35", strongly_typed_flag: bool = True, progress_monitor: bool = True,
                  parse_errors: list[tuple[int, str, str, str]] | None = None, build_fails: bool = False, check_value: float = 0.0) -> StrictModule:
    """A fake ``tensorrt``. parse_errors: (node, op, name, desc) the parser reports; check_value:
    what the engine writes to ``check`` (NaN to exercise the guard)."""
    trt = StrictModule("tensorrt")
    trt.__version__ = version  # type: ignore[attr-defined]
    state = {"check_value": check_value}
    trt._state = state  # type: ignore[attr-defined]

    class ILogger:
        Severity = _enum("Severity", {"INTERNAL_ERROR": 0, "ERROR": 1, "WARNING": 2, "INFO": 3, "VERBOSE": 4})

        def __init__(self) -> None:
            calls.append("ILogger.__init__")

    flags = {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1} if strongly_typed_flag else {"EXPLICIT_BATCH": 0}
    trt.ILogger = ILogger  # type: ignore[attr-defined]
    trt.NetworkDefinitionCreationFlag = _enum("NetworkDefinitionCreationFlag", flags)  # type: ignore[attr-defined]
    trt.MemoryPoolType = _enum("MemoryPoolType", {"WORKSPACE": 0})  # type: ignore[attr-defined]
    trt.TensorIOMode = _enum("TensorIOMode", {"NONE": 0, "INPUT": 1, "OUTPUT": 2})  # type: ignore[attr-defined]
    DataType = _enum("DataType", {"FLOAT": 0, "HALF": 1, "UINT8": 5})
    trt.DataType = DataType  # type: ignore[attr-defined]
    if progress_monitor:
        class IProgressMonitor:
            def __init__(self) -> None:
                calls.append("IProgressMonitor.__init__")

        trt.IProgressMonitor = IProgressMonitor  # type: ignore[attr-defined]

    class Dims:
        __slots__ = ("_d",)

        def __init__(self, shape: list[int]) -> None:
            self._d = list(shape)

        def __len__(self) -> int:
            return len(self._d)

        def __getitem__(self, i: int) -> int:
            return self._d[i]

    class INetworkDefinition:
        __slots__ = ("flags", "io")

        def __init__(self, flags: int) -> None:
            self.flags, self.io = flags, {}

    class ParserError:
        __slots__ = ("_e",)

        def __init__(self, e: tuple[int, str, str, str]) -> None:
            self._e = e

        def node(self) -> int:
            return self._e[0]

        def node_operator(self) -> str:
            return self._e[1]

        def node_name(self) -> str:
            return self._e[2]

        def code(self) -> str:
            return "ErrorCode.UNSUPPORTED_NODE"

        def desc(self) -> str:
            return self._e[3]

    class OnnxParser:
        __slots__ = ("_net", "num_errors")

        def __init__(self, network: INetworkDefinition, logger: ILogger) -> None:
            calls.append("OnnxParser.__init__")
            self._net, self.num_errors = network, 0

        def parse_from_file(self, model: str) -> bool:
            calls.append("OnnxParser.parse_from_file")
            if parse_errors:
                self.num_errors = len(parse_errors)
                return False
            import onnx

            m = onnx.load(model, load_external_data=False)
            for vi, mode in [(i, "input") for i in m.graph.input] + [(o, "output") for o in m.graph.output]:
                dims = [d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim]
                self._net.io[vi.name] = [mode, _DTYPE_NAMES[vi.type.tensor_type.elem_type], dims]
            return True

        def get_error(self, index: int) -> ParserError:
            calls.append("OnnxParser.get_error")
            assert parse_errors is not None
            return ParserError(parse_errors[index])

    class ITimingCache:
        __slots__ = ("data",)

        def __init__(self, data: bytes) -> None:
            self.data = data

        def serialize(self) -> bytes:
            calls.append("ITimingCache.serialize")
            return self.data + b"+timed"

    class IOptimizationProfile:
        __slots__ = ("shapes",)

        def __init__(self) -> None:
            self.shapes: dict[str, list[list[int]]] = {}

        def set_shape(self, input: str, min: Dims, opt: Dims, max: Dims) -> None:
            calls.append("IOptimizationProfile.set_shape")
            self.shapes[input] = [[d[i] for i in range(len(d))] for d in (min, opt, max)]

    class IBuilderConfig:
        __slots__ = ("progress_monitor", "_cache", "profiles")

        def __init__(self) -> None:
            self._cache: ITimingCache | None = None
            self.profiles: list[IOptimizationProfile] = []

        def set_memory_pool_limit(self, pool: Any, pool_size: int) -> None:
            calls.append("IBuilderConfig.set_memory_pool_limit")

        def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
            calls.append("IBuilderConfig.add_optimization_profile")
            self.profiles.append(profile)
            return 0

        def create_timing_cache(self, serialized_timing_cache: bytes) -> ITimingCache:
            calls.append(f"IBuilderConfig.create_timing_cache({bytes(serialized_timing_cache)!r})")
            return ITimingCache(bytes(serialized_timing_cache))

        def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
            calls.append("IBuilderConfig.set_timing_cache")
            if state.get("timing_cache_mismatch") and cache.data and not ignore_mismatch:
                return False  # another GPU's or TensorRT's cache: TensorRT refuses it
            self._cache = cache
            return True

        def get_timing_cache(self) -> ITimingCache:
            calls.append("IBuilderConfig.get_timing_cache")
            assert self._cache is not None
            return self._cache

        def __setattr__(self, name: str, value: Any) -> None:
            if name == "progress_monitor":
                calls.append("IBuilderConfig.progress_monitor=")
            object.__setattr__(self, name, value)

    class Builder:
        __slots__ = ()

        def __init__(self, logger: ILogger) -> None:
            calls.append("Builder.__init__")

        def create_network(self, flags: int = 0) -> INetworkDefinition:
            calls.append(f"Builder.create_network({flags})")
            return INetworkDefinition(flags)

        def create_builder_config(self) -> IBuilderConfig:
            calls.append("Builder.create_builder_config")
            return IBuilderConfig()

        def create_optimization_profile(self) -> IOptimizationProfile:
            calls.append("Builder.create_optimization_profile")
            return IOptimizationProfile()

        def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig) -> bytes | None:
            calls.append("Builder.build_serialized_network")
            if build_fails:
                return None
            return b"FAKEPLAN" + json.dumps({"io": network.io, "profile": config.profiles[0].shapes}).encode()

    class ICudaEngine:
        __slots__ = ("io", "profile", "num_io_tensors")

        def __init__(self, desc: dict[str, Any]) -> None:
            self.io, self.profile = desc["io"], desc["profile"]
            self.num_io_tensors = len(self.io)

        def get_tensor_name(self, index: int) -> str:
            return list(self.io)[index]

        def get_tensor_mode(self, name: str) -> Any:
            return trt.TensorIOMode.INPUT if self.io[name][0] == "input" else trt.TensorIOMode.OUTPUT  # type: ignore[attr-defined]

        def get_tensor_dtype(self, name: str) -> Any:
            return getattr(DataType, self.io[name][1])

        def get_tensor_shape(self, name: str) -> Dims:
            return Dims(self.io[name][2])

        def create_execution_context(self) -> IExecutionContext:
            calls.append("ICudaEngine.create_execution_context")
            return IExecutionContext(self)

    class IExecutionContext:
        __slots__ = ("_engine", "_addr", "_shape")

        def __init__(self, engine: ICudaEngine) -> None:
            self._engine, self._addr, self._shape = engine, {}, None

        def set_tensor_address(self, name: str, memory: int) -> bool:
            calls.append(f"IExecutionContext.set_tensor_address({name})")
            self._addr[name] = memory
            return True

        def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
            calls.append(f"IExecutionContext.set_input_shape({name}, {list(shape)})")
            lo, _, hi = self._engine.profile[name]
            if not all(a <= s <= b for a, s, b in zip(lo, shape, hi, strict=True)):
                return False
            self._shape = tuple(shape)
            return True

        def execute_async_v3(self, stream_handle: int) -> bool:
            calls.append("IExecutionContext.execute_async_v3")
            addr, shape, check = dict(self._addr), self._shape, state["check_value"]
            FakeGpu.enqueue(stream_handle, lambda: FakeGpu.run(addr, shape, check))  # recorded if the stream is capturing
            return True

    class Runtime:
        __slots__ = ()

        def __init__(self, logger: ILogger) -> None:
            calls.append("Runtime.__init__")

        def deserialize_cuda_engine(self, serialized_engine: bytes) -> ICudaEngine | None:
            calls.append("Runtime.deserialize_cuda_engine")
            data = bytes(serialized_engine)
            if not data.startswith(b"FAKEPLAN"):
                return None
            return ICudaEngine(json.loads(data[8:]))

    for cls in (Dims, ParserError, OnnxParser, ITimingCache, IOptimizationProfile, IBuilderConfig, Builder, ICudaEngine, IExecutionContext, Runtime, INetworkDefinition):
        setattr(trt, cls.__name__, cls)
    return trt


class FakeGpu:
    """Device memory: address → uint8 array. Shared by the fake pycuda and the fake engine."""

    mem: dict[int, np.ndarray] = {}
    next_addr = 0x1000
    capturing: dict[int, list[Any]] = {}  # stream handle → ops recorded into a CUDA graph

    @classmethod
    def enqueue(cls, stream_handle: int, op: Any) -> None:
        if stream_handle in cls.capturing:
            cls.capturing[stream_handle].append(op)
        else:
            op()

    @classmethod
    def run(cls, addr: dict[str, int], shape: tuple[int, ...] | None, check_value: float) -> None:
        assert shape is not None, "execute before set_input_shape"
        n = int(np.prod(shape))
        frame = cls.mem[addr["frame"]][:n]
        cls.mem[addr["output"]][:n] = 255 - frame
        cls.mem[addr["attention"]][: n // 3] = 128
        if "check" in addr:
            cls.mem[addr["check"]][:4] = np.frombuffer(np.float32(check_value).tobytes(), np.uint8)


class HostArray(np.ndarray):
    """Stands in for pycuda's HostAllocation: the ``.base`` of a pagelocked array, with ``free()``."""

    def free(self) -> None:
        _CALLS[-1].append("HostAllocation.free")


_CALLS: list[list[str]] = []


def make_pycuda(calls: list[str], devices: int = 1, name: str = "Fake GPU", cc: tuple[int, int] = (8, 9), graphs: bool = True) -> tuple[StrictModule, StrictModule]:
    """Fake ``pycuda`` and ``pycuda.driver``."""
    _CALLS.append(calls)
    drv = StrictModule("pycuda.driver")
    live: dict[str, int] = {"contexts": 0, "allocs": 0, "host": 0}
    drv._live = live  # type: ignore[attr-defined]

    def init() -> None:
        calls.append("init")

    class Context:
        __slots__ = ()

        def push(self) -> None:
            calls.append("Context.push")
            live["contexts"] += 1

        def pop(self) -> None:
            calls.append("Context.pop")
            live["contexts"] -= 1

    class Device:
        __slots__ = ("i",)

        def __init__(self, i: int) -> None:
            self.i = i

        @staticmethod
        def count() -> int:
            return devices

        def name(self) -> str:
            return name

        def compute_capability(self) -> tuple[int, int]:
            return cc

        def retain_primary_context(self) -> Context:
            calls.append("Device.retain_primary_context")
            return Context()

    class DeviceAllocation:
        __slots__ = ("addr",)

        def __init__(self, nbytes: int) -> None:
            self.addr = FakeGpu.next_addr
            FakeGpu.next_addr += 0x100000
            FakeGpu.mem[self.addr] = np.zeros(nbytes, np.uint8)
            live["allocs"] += 1

        def __int__(self) -> int:
            return self.addr

        def free(self) -> None:
            calls.append("DeviceAllocation.free")
            del FakeGpu.mem[self.addr]
            live["allocs"] -= 1

    class GraphExec:
        __slots__ = ("ops",)

        def __init__(self, ops: list[Any]) -> None:
            self.ops = ops

        def launch(self, stream_py: Any = None) -> None:
            calls.append("GraphExec.launch")
            for op in self.ops:
                op()

    class Graph:
        __slots__ = ("ops",)

        def __init__(self, ops: list[Any]) -> None:
            self.ops = ops

        def instantiate(self) -> GraphExec:
            calls.append("Graph.instantiate")
            return GraphExec(self.ops)

    class Stream:
        __slots__ = ("handle",)

        def __init__(self) -> None:
            calls.append("Stream.__init__")
            self.handle = 0xABC

        def synchronize(self) -> None:
            calls.append("Stream.synchronize")

        def begin_capture(self) -> None:
            if not graphs:
                raise RuntimeError("capture not supported")
            calls.append("Stream.begin_capture")
            FakeGpu.capturing[self.handle] = []

        def end_capture(self) -> Graph:
            calls.append("Stream.end_capture")
            return Graph(FakeGpu.capturing.pop(self.handle))

    def _maybe_capture(stream: Stream, op: Any) -> None:
        FakeGpu.enqueue(stream.handle, op)

    def pagelocked_empty(shape: int, dtype: Any) -> np.ndarray:
        live["host"] += 1
        raw = np.zeros(shape, dtype).view(HostArray)
        return raw[:]

    def mem_alloc(nbytes: int) -> DeviceAllocation:
        return DeviceAllocation(nbytes)

    def memcpy_htod_async(dest: int, src: np.ndarray, stream: Stream) -> None:
        calls.append("memcpy_htod_async")

        def op() -> None:  # reads the host buffer when it runs, as the DMA would
            data = np.frombuffer(np.ascontiguousarray(src).tobytes(), np.uint8)
            FakeGpu.mem[int(dest)][: data.size] = data

        _maybe_capture(stream, op)

    def memcpy_dtoh_async(dest: np.ndarray, src: int, stream: Stream) -> None:
        calls.append("memcpy_dtoh_async")

        def op() -> None:
            flat = dest.reshape(-1).view(np.uint8)
            flat[:] = FakeGpu.mem[int(src)][: flat.size]

        _maybe_capture(stream, op)

    for f in (init, pagelocked_empty, mem_alloc, memcpy_htod_async, memcpy_dtoh_async):
        setattr(drv, f.__name__, f)
    for cls in (Context, Device, DeviceAllocation, Stream, Graph, GraphExec):
        setattr(drv, cls.__name__, cls)
    pkg = StrictModule("pycuda")
    pkg.driver = drv  # type: ignore[attr-defined]
    pkg.__path__ = []  # type: ignore[attr-defined]
    return pkg, drv


def install(monkeypatch: Any, trt: StrictModule | None = None, pycuda: tuple[StrictModule, StrictModule] | None = None) -> None:
    """Put the fakes in ``sys.modules`` for this test only."""
    import sys

    if trt is not None:
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
    if pycuda is not None:
        monkeypatch.setitem(sys.modules, "pycuda", pycuda[0])
        monkeypatch.setitem(sys.modules, "pycuda.driver", pycuda[1])


def stub_names(stub_dir: Path) -> dict[str, set[str]]:
    """class name → its attribute/method names, read from tensorrt-stubs' tensorrt.pyi text (the file
    does not parse as Python 3.11: it names parameters ``in``)."""
    import re

    text = (stub_dir / "tensorrt.pyi").read_text()
    out: dict[str, set[str]] = {}
    current = ""
    for line in text.splitlines():
        m = re.match(r"^class (\w+)", line)
        if m:
            current = m.group(1)
            out[current] = set()
            continue
        m = re.match(r"^    (?:def (\w+)|class (\w+)|(\w+)\s*:)", line)
        if m and current:
            out[current].add(m.group(1) or m.group(2) or m.group(3))
        m = re.match(r"^\s+:ivar (\w+):", line)
        if m and current:
            out[current].add(m.group(1))
    return out
