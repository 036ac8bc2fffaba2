"""A fake ``tensorrt`` module with exactly the names lib-deepfake calls (see typings/tensorrt.pyi).

The builder side records every call. The runtime side executes for real on CPU memory: the fake execution
context reads the uint8 input bytes at the bound address and writes float32 ``mean(pixels) / 255`` per sample to
the bound output address (ctypes), so binding, shapes, batch splitting and padding are checked end to end.
"""

from __future__ import annotations

import ctypes
import types
from enum import IntEnum
from typing import Any

import numpy as np


class DataType(IntEnum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    BF16 = 7


class TensorIOMode(IntEnum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


def expected_output(faces: np.ndarray) -> np.ndarray:
    return faces.reshape(faces.shape[0], -1).astype(np.float64).mean(axis=1).astype(np.float32) / 255.0


class FakeContext:
    def __init__(self, engine: FakeCudaEngine) -> None:
        self.engine = engine
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}
        self.executed: list[tuple[int, ...]] = []

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        lo, hi = self.engine.profile[0], self.engine.profile[2]
        if not lo <= shape[0] <= hi:
            return False
        self.shapes[name] = tuple(shape)
        return True

    def set_tensor_address(self, name: str, address: int) -> bool:
        self.addresses[name] = int(address)
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self.shapes.get(name, ())

    def execute_async_v3(self, stream_handle: int) -> bool:
        shape = self.shapes[self.engine.input_name]
        nbytes = int(np.prod(shape))
        raw = ctypes.string_at(self.addresses[self.engine.input_name], nbytes)
        faces = np.frombuffer(raw, dtype=np.uint8).reshape(shape)
        out = expected_output(faces)
        ctypes.memmove(self.addresses[self.engine.output_name], out.ctypes.data, out.nbytes)
        self.executed.append(shape)
        return True


class FakeCudaEngine:
    def __init__(self, size: int = 8, profile: tuple[int, int, int] = (1, 2, 3), in_dtype: str = "UINT8",
                 out_dtype: str = "FLOAT", n_outputs: int = 1) -> None:  # fmt: skip
        self.size = size
        self.profile = profile
        self.input_name = "faces"
        self.output_name = "prob_fake"
        self.dtypes = {"faces": DataType[in_dtype], "prob_fake": DataType[out_dtype], "extra": DataType.FLOAT}
        self.names = ["faces", "prob_fake"] + (["extra"] if n_outputs > 1 else [])
        self.contexts: list[FakeContext] = []

    @property
    def num_io_tensors(self) -> int:
        return len(self.names)

    def get_tensor_name(self, index: int) -> str:
        return self.names[index]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return TensorIOMode.INPUT if name == "faces" else TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name: str) -> DataType:
        return self.dtypes[name]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return (-1, self.size, self.size, 3) if name == "faces" else (-1,)

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[tuple[int, ...]]:
        return [(b, self.size, self.size, 3) for b in self.profile]

    def create_execution_context(self) -> FakeContext:
        ctx = FakeContext(self)
        self.contexts.append(ctx)
        return ctx


def make_fake_trt(version: str = "10.13.0.35", *, parse_ok: bool = True, build_ok: bool = True,
                  engine: FakeCudaEngine | None = None) -> Any:  # fmt: skip
    """A module object named ``tensorrt``; ``module.calls`` records builder calls."""
    major = int(version.split(".")[0])
    trt: Any = types.ModuleType("tensorrt")
    trt.__version__ = version
    calls: list[tuple[Any, ...]] = []
    trt.calls = calls
    trt.DataType = DataType
    trt.TensorIOMode = TensorIOMode

    class Logger:
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

        def __init__(self, severity: int = 2) -> None:
            self.severity = severity

    trt.Logger = Logger
    flags: dict[str, int] = {"STRONGLY_TYPED": 1}
    if major == 10:
        flags["EXPLICIT_BATCH"] = 0
    trt.NetworkDefinitionCreationFlag = IntEnum("NetworkDefinitionCreationFlag", flags)
    trt.MemoryPoolType = IntEnum("MemoryPoolType", {"WORKSPACE": 0})
    builder_flags = {"DEBUG": 0, "GPU_FALLBACK": 1, "REFIT": 2, "TF32": 4}
    if major == 10:
        builder_flags.update(FP16=5, BF16=6, INT8=7)
    trt.BuilderFlag = IntEnum("BuilderFlag", builder_flags)

    class Tensor:
        name = "faces"

    class Network:
        num_inputs = 1
        num_outputs = 1

        def get_input(self, index: int) -> Tensor:
            return Tensor()

    class ParserError:
        def desc(self) -> str:
            return "Unsupported ONNX data type: UINT8 (fake)"

    class OnnxParser:
        def __init__(self, network: Network, logger: Logger) -> None:
            self.num_errors = 0

        def parse_from_file(self, path: str) -> bool:
            calls.append(("parse_from_file", path))
            self.num_errors = 0 if parse_ok else 1
            return parse_ok

        def get_error(self, index: int) -> ParserError:
            return ParserError()

    class Profile:
        def set_shape(self, name: str, lo: tuple, opt: tuple, hi: tuple) -> None:
            calls.append(("set_shape", name, tuple(lo), tuple(opt), tuple(hi)))

    class TimingCache:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def serialize(self) -> bytes:
            return self.data + b"+timings"

    class Config:
        def __init__(self) -> None:
            self._cache: TimingCache | None = None
            self._level = 3

        @property
        def builder_optimization_level(self) -> int:
            return self._level

        @builder_optimization_level.setter
        def builder_optimization_level(self, value: int) -> None:
            calls.append(("builder_optimization_level", value))
            self._level = value

        def set_memory_pool_limit(self, pool: Any, size: int) -> None:
            calls.append(("set_memory_pool_limit", pool.name, size))

        def set_flag(self, flag: Any) -> None:
            calls.append(("set_flag", flag.name))

        def add_optimization_profile(self, profile: Profile) -> int:
            calls.append(("add_optimization_profile",))
            return 0

        def create_timing_cache(self, data: bytes) -> TimingCache:
            calls.append(("create_timing_cache", bytes(data)))
            return TimingCache(bytes(data))

        def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> bool:
            self._cache = cache
            calls.append(("set_timing_cache", ignore_mismatch))
            return True

        def get_timing_cache(self) -> TimingCache:
            assert self._cache is not None
            return self._cache

    class Builder:
        def __init__(self, logger: Logger) -> None:
            pass

        def create_network(self, flags: int = 0) -> Network:
            calls.append(("create_network", flags))
            return Network()

        def create_builder_config(self) -> Config:
            return Config()

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network: Network, config: Config) -> bytes | None:
            calls.append(("build_serialized_network",))
            return b"FAKE-PLAN" if build_ok else None

    class Runtime:
        def __init__(self, logger: Logger) -> None:
            pass

        def deserialize_cuda_engine(self, data: bytes) -> FakeCudaEngine | None:
            calls.append(("deserialize_cuda_engine", len(data)))
            return engine

    trt.OnnxParser = OnnxParser
    trt.Builder = Builder
    trt.Runtime = Runtime
    return trt
