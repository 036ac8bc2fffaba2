"""A fake ``tensorrt`` module, held to the real API wherever the real one can serve.

- Enums and the logger are NVIDIA's own, from the lean bindings (``tensorrt_lean_bindings``; TensorRT 11), when
  installed: ``DataType``, ``TensorIOMode``, ``BuilderFlag``, ``MemoryPoolType``, ``Logger``. A TensorRT 10 fake
  keeps a hand-written ``BuilderFlag`` with the ``FP16`` member 11 removed.
- Runtime objects (``Runtime``, ``ICudaEngine``, ``IExecutionContext``) are fakes that execute on CPU memory (the
  context reads the uint8 input bytes at the bound address and writes float32 ``mean(pixels) / 255`` per sample
  to the bound output address with ctypes), wrapped so that every attribute and call must exist, with a
  compatible signature, on the real lean classes (:mod:`tests.engines._trt_reference`).
- Builder objects exist only in the full bindings: their fakes are wrapped to fit the documented API
  (``typings/tensorrt.pyi``) and record every call in ``module.calls``.
"""

from __future__ import annotations

import ctypes
import types
from enum import IntEnum
from typing import Any

import numpy as np
from tests.engines._trt_reference import LEAN, StubChecked, checked


class _DataType(IntEnum):  # only without the lean bindings (same members and values as TensorRT 11.4)
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    FP8 = 6
    BF16 = 7
    INT64 = 8


class _TensorIOMode(IntEnum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


DataType: Any = LEAN.DataType if LEAN is not None else _DataType
TensorIOMode: Any = LEAN.TensorIOMode if LEAN is not None else _TensorIOMode

# TensorRT 10.x BuilderFlag (values of 10.x; FP16/BF16/INT8 were removed in 11).
_BUILDER_FLAGS_10 = {"FP16": 0, "INT8": 1, "DEBUG": 2, "GPU_FALLBACK": 3, "REFIT": 4, "DISABLE_TIMING_CACHE": 5,
                     "TF32": 6, "BF16": 17, "VERSION_COMPATIBLE": 12, "EXCLUDE_LEAN_RUNTIME": 13}  # fmt: skip


def _dims(shape: tuple[int, ...]) -> Any:
    return LEAN.Dims(list(shape)) if LEAN is not None else tuple(shape)


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

    def set_tensor_address(self, name: str, memory: int) -> bool:
        self.addresses[name] = int(memory)
        return True

    def get_tensor_shape(self, name: str) -> Any:
        return _dims(self.shapes.get(name, ()))

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
    """The raw fake; :meth:`api` is what the code under test gets (checked against the real ``ICudaEngine``)."""

    def __init__(self, size: int = 8, profile: tuple[int, int, int] = (1, 2, 3), in_dtype: str = "UINT8",
                 out_dtype: str = "FLOAT", n_outputs: int = 1) -> None:  # fmt: skip
        self.size = size
        self.profile = profile
        self.input_name = "faces"
        self.output_name = "prob_fake"
        self.dtypes = {"faces": DataType.__members__[in_dtype], "prob_fake": DataType.__members__[out_dtype],
                       "extra": DataType.FLOAT}  # fmt: skip
        self.names = ["faces", "prob_fake"] + (["extra"] if n_outputs > 1 else [])
        self.contexts: list[FakeContext] = []

    def api(self) -> Any:
        return checked(self, "ICudaEngine")

    @property
    def num_io_tensors(self) -> int:
        return len(self.names)

    def get_tensor_name(self, index: int) -> str:
        return self.names[index]

    def get_tensor_mode(self, name: str) -> Any:
        return TensorIOMode.INPUT if name == "faces" else TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name: str) -> Any:
        return self.dtypes[name]

    def get_tensor_shape(self, name: str) -> Any:
        return _dims((-1, self.size, self.size, 3) if name == "faces" else (-1,))

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[Any]:
        return [_dims((b, self.size, self.size, 3)) for b in self.profile]

    def create_execution_context(self) -> Any:
        ctx = FakeContext(self)
        self.contexts.append(ctx)
        return checked(ctx, "IExecutionContext")


def _builder_flag_enum(major: int) -> Any:
    if major >= 11 and LEAN is not None:
        return LEAN.BuilderFlag
    flags = dict(_BUILDER_FLAGS_10)
    if major >= 11:
        for name in ("FP16", "INT8", "BF16"):
            flags.pop(name)
    return IntEnum("BuilderFlag", flags)


def make_fake_trt(version: str = "10.13.0.35", *, parse_ok: bool = True, build_ok: bool = True,
                  engine: FakeCudaEngine | None = None, lean: bool = False, refuse_cache: bool = False,
                  cache_unreadable: bool = False) -> Any:  # fmt: skip
    """A module object standing in for ``tensorrt`` (``lean=True``: for ``tensorrt_lean_bindings``, no builder).

    ``module.calls`` records builder and runtime calls; ``refuse_cache``: ``set_timing_cache`` refuses a non-empty
    cache (as for one from another GPU or version); ``cache_unreadable``: ``create_timing_cache`` returns None for
    non-empty data.
    """
    major = int(version.split(".")[0])
    trt: Any = types.ModuleType("tensorrt_lean_bindings" if lean else "tensorrt")
    trt.__version__ = version
    calls: list[tuple[Any, ...]] = []
    trt.calls = calls
    trt.DataType = DataType
    trt.TensorIOMode = TensorIOMode
    trt.BuilderFlag = _builder_flag_enum(major)

    if LEAN is not None:
        trt.Logger = LEAN.Logger
        trt.MemoryPoolType = LEAN.MemoryPoolType
    else:

        class Logger:
            INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

            def __init__(self, min_severity: int = 2) -> None:
                self.min_severity = min_severity

        trt.Logger = Logger
        trt.MemoryPoolType = IntEnum("MemoryPoolType", {"WORKSPACE": 0})

    class FakeRuntime:
        def __init__(self, logger: Any) -> None:
            self.logger = logger
            self.engine_host_code_allowed = False

        def deserialize_cuda_engine(self, serialized_engine: bytes) -> Any:
            calls.append(("deserialize_cuda_engine", len(serialized_engine), self.engine_host_code_allowed))
            return engine.api() if engine is not None else None

    def runtime(logger: Any) -> Any:
        if LEAN is not None:
            from tests.engines._trt_reference import REAL, check_call

            check_call(REAL["Runtime"], "__init__", (logger,), {})
        return checked(FakeRuntime(logger), "Runtime")

    trt.Runtime = runtime
    if lean:
        return trt

    # TensorRT 10 accepts EXPLICIT_BATCH (deprecated, ignored); 11 removed it. Not in the lean bindings.
    trt.NetworkDefinitionCreationFlag = IntEnum(
        "NetworkDefinitionCreationFlag", {"STRONGLY_TYPED": 1, **({"EXPLICIT_BATCH": 0} if major == 10 else {})}
    )

    class Tensor:
        name = "faces"

    class Network:
        num_inputs = 1
        num_outputs = 1

        def get_input(self, index: int) -> Any:
            return StubChecked(Tensor(), "ITensor")

    class ParserError:
        def desc(self) -> str:
            return "Unsupported ONNX data type: UINT8 (fake)"

    class OnnxParser:
        def __init__(self, network: Any, logger: Any) -> None:
            self.num_errors = 0

        def parse_from_file(self, model: str) -> bool:
            calls.append(("parse_from_file", model))
            self.num_errors = 0 if parse_ok else 1
            return parse_ok

        def get_error(self, index: int) -> Any:
            return StubChecked(ParserError(), "IParserError")

    class Profile:
        def set_shape(self, input: str, min: tuple, opt: tuple, max: tuple) -> None:  # noqa: A002 - TensorRT's names
            calls.append(("set_shape", input, tuple(min), tuple(opt), tuple(max)))

    class TimingCache:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def serialize(self) -> bytes:
            return self.data + b"+timings"

    class Config:
        def __init__(self) -> None:
            self._cache: Any = None
            self._level = 3

        @property
        def builder_optimization_level(self) -> int:
            return self._level

        @builder_optimization_level.setter
        def builder_optimization_level(self, value: int) -> None:
            calls.append(("builder_optimization_level", value))
            self._level = value

        def set_memory_pool_limit(self, pool: Any, pool_size: int) -> None:
            calls.append(("set_memory_pool_limit", pool.name, pool_size))

        def set_flag(self, flag: Any) -> None:
            calls.append(("set_flag", flag.name))

        def add_optimization_profile(self, profile: Any) -> int:
            calls.append(("add_optimization_profile",))
            return 0

        def create_timing_cache(self, serialized_timing_cache: bytes) -> Any:
            data = bytes(serialized_timing_cache)
            calls.append(("create_timing_cache", data))
            if cache_unreadable and data:
                return None
            return checked(TimingCache(data), "ITimingCache")

        def set_timing_cache(self, cache: Any, ignore_mismatch: bool) -> bool:
            calls.append(("set_timing_cache", ignore_mismatch))
            if refuse_cache and _unwrap_cache(cache).data:
                return False
            self._cache = cache
            return True

        def get_timing_cache(self) -> Any:
            return self._cache

    def _unwrap_cache(cache: Any) -> Any:
        return getattr(cache, "fake", cache)

    class Builder:
        def __init__(self, logger: Any) -> None:
            pass

        def create_network(self, flags: int = 0) -> Any:
            calls.append(("create_network", flags))
            return StubChecked(Network(), "INetworkDefinition")

        def create_builder_config(self) -> Any:
            return StubChecked(Config(), "IBuilderConfig")

        def create_optimization_profile(self) -> Any:
            return StubChecked(Profile(), "IOptimizationProfile")

        def build_serialized_network(self, network: Any, config: Any) -> bytes | None:
            calls.append(("build_serialized_network",))
            return b"FAKE-PLAN" if build_ok else None

    trt.OnnxParser = lambda network, logger: StubChecked(OnnxParser(network, logger), "OnnxParser")
    trt.Builder = lambda logger: StubChecked(Builder(logger), "Builder")
    trt.fakes = {"Builder": Builder, "IBuilderConfig": Config, "INetworkDefinition": Network,
                 "IOptimizationProfile": Profile, "OnnxParser": OnnxParser, "IParserError": ParserError,
                 "ITensor": Tensor, "Runtime": FakeRuntime, "ICudaEngine": FakeCudaEngine,
                 "IExecutionContext": FakeContext, "ITimingCache": TimingCache}  # fmt: skip
    return trt
