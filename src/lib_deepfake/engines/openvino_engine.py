"""The OpenVINO engine (CPU): the contract ONNX in FP32 or BF16, and INT8 models, with compiled models cached on disk.

Precisions:

- ``fp32``: ``INFERENCE_PRECISION_HINT=f32`` is set explicitly, because OpenVINO's CPU plugin silently computes in
  bf16 by default on CPUs that have bf16 instructions;
- ``bf16``: the FP32 ONNX computed in bf16 (no calibration); only where the CPU has AVX512_BF16 or AMX-BF16 *and*
  OpenVINO lists BF16 among the device's optimization capabilities - refused elsewhere, never emulated;
- ``int8``: a calibrated INT8 artifact (``lib-export quantize``: QDQ ONNX), whose quantized ops OpenVINO runs in
  int8; the rest stays f32.

Compiling the 4xResNet-34 graph takes seconds, so the compiled model is exported to ``CACHE_DIR/<key>.blob`` and
imported on the next start. The key hashes the artifact's bytes, the precision, the compile settings, the CPU (name
and kernel-relevant flags) and the OpenVINO version, so a changed file, machine or runtime never reuses a blob.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from lib_deepfake._optional import require
from lib_deepfake.engines.base import Availability, Engine, EngineInfo
from lib_deepfake.engines.cpu_caps import CpuCaps, cpu_caps
from lib_deepfake.engines.ort_engine import contract_from_session, default_threads
from lib_deepfake.errors import ArtifactMismatchError, ContractError, LibDeepfakeError
from lib_deepfake.manifest import Manifest

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "int8")
HINTS = {"latency": "LATENCY", "throughput": "THROUGHPUT"}
_OV_PRECISION = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}  # int8: what the non-quantized ops compute in
_ONNX_TYPES = {"u8": "tensor(uint8)", "f32": "tensor(float)"}


def default_cache_dir() -> Path:
    """``openvino/`` under the library's cache root (:func:`lib_deepfake.cache.cache_root`)."""
    from lib_deepfake.cache import cache_root

    return cache_root() / "openvino"


def resolve_precision(requested: str | None, artifact_precision: str, caps: CpuCaps, capabilities: list[str]) -> str:
    """The precision to run, or a clear refusal.

    Args:
        requested: ``fp32``, ``bf16``, ``int8`` or None (the artifact's own precision).
        artifact_precision: the manifest's precision (``fp32``, ``int8``, ``unknown``).
        caps: the CPU's flags.
        capabilities: OpenVINO's ``OPTIMIZATION_CAPABILITIES`` of the CPU device.

    Raises:
        LibDeepfakeError: unknown precision, bf16 without hardware support, int8 without an INT8 artifact, or an
            INT8 artifact asked to run in another precision.
    """
    if requested is not None and requested not in PRECISIONS:
        raise LibDeepfakeError(f"openvino engine: precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    if artifact_precision == "int8":
        if requested not in (None, "int8"):
            raise LibDeepfakeError(f"openvino engine: the artifact is an INT8 model; {requested} runs the FP32 ONNX")
        return "int8"
    if artifact_precision not in ("fp32", "unknown"):
        raise LibDeepfakeError(f"openvino engine: {artifact_precision} artifacts are not supported; give the FP32 "
                               "ONNX (lib-export to-onnx) or an INT8 one (lib-export quantize)")  # fmt: skip
    precision = requested or "fp32"
    if precision == "int8":
        raise LibDeepfakeError("openvino engine: int8 needs a calibrated INT8 artifact: lib-export quantize "
                               "MODEL.onnx -o MODEL.int8.onnx --calibration CROPS")  # fmt: skip
    if precision == "bf16":
        if not caps.bf16:
            raise LibDeepfakeError(f"openvino engine: bf16 needs a CPU with AVX512_BF16 or AMX-BF16 instructions; "
                                   f"{caps.name} has neither (use fp32, or int8 with a calibrated model)")  # fmt: skip
        if "BF16" not in capabilities:
            raise LibDeepfakeError(f"openvino engine: this OpenVINO build does not offer BF16 on {caps.name} "
                                   f"(device capabilities: {', '.join(capabilities)})")  # fmt: skip
    return precision


def bf16_availability() -> Availability:
    """Whether bf16 can run here: the CPU flags and OpenVINO's device capabilities (imports openvino)."""
    caps = cpu_caps()
    if not caps.bf16:
        return Availability(False, f"{caps.name} has no AVX512_BF16/AMX-BF16 instructions")
    ov = require("openvino", purpose="the OpenVINO engine", extra="openvino")
    capabilities = list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    if "BF16" not in capabilities:
        return Availability(False, f"OpenVINO lists no BF16 capability on {caps.name}")
    return Availability(True, ", ".join(caps.precision_flags("bf16")))


def file_digest(paths: list[Path]) -> str:
    """sha256 over the bytes of ``paths`` (an IR is its .xml and .bin)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def cache_key(model_sha256: str, precision: str, config: dict[str, Any], cpu_signature: str, ov_version: str) -> str:
    """The name of a compiled-model blob: everything that changes the compiled code is in it."""
    text = json.dumps({"model": model_sha256, "precision": precision, "config": config, "cpu": cpu_signature,
                       "openvino": ov_version}, sort_keys=True, default=str)  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _port_args(ports: Any) -> list[SimpleNamespace]:
    """OpenVINO ports -> objects shaped like ONNX Runtime's NodeArg (name, type, shape) for the contract check."""
    args = []
    for port in ports:
        shape = [d.get_length() if d.is_static else None for d in port.get_partial_shape()]
        kind = _ONNX_TYPES.get(port.get_element_type().get_type_name(), str(port.get_element_type()))
        names = port.get_names()
        args.append(SimpleNamespace(name=port.get_any_name() if names else "", type=kind, shape=shape))
    return args


class OpenVinoEngine(Engine):
    """Runs a contract ONNX (or an OpenVINO IR ``.xml`` with a manifest) with OpenVINO on the CPU.

    Args:
        artifact: the FP32 contract ONNX (``lib-export to-onnx``) for fp32/bf16, an INT8 one for int8.
        device: ``"cpu"`` only.
        precision: ``fp32``, ``bf16`` or ``int8``; default: the artifact's.
        hint: ``latency`` (one inference request using every thread: best for a synchronous batch, the way
            lib-infer and lib-bench call engines) or ``throughput`` (OpenVINO's streams; each call splits its batch
            over the optimal number of parallel requests, which pays off on many-core CPUs with large batches).
        threads: ``INFERENCE_NUM_THREADS`` (default: the cores this process may use).
        pin_threads: ``ENABLE_CPU_PINNING``: None keeps OpenVINO's default (pinned on Linux); False when other
            processes need the cores, e.g. lib-infer's decode workers (a pinned thread waits for its core).
        cache: keep compiled models on disk (see the module docstring).
        cache_dir: where (default :func:`default_cache_dir`).
        validate_inputs, manifest: see :class:`Engine`.
    """

    name = "openvino"
    artifact_suffixes = (".xml",)
    requires = ("openvino",)
    extra = "openvino"

    def __init__(
        self,
        artifact: Path | str,
        *,
        device: str | torch.device = "cpu",
        precision: str | None = None,
        hint: str = "latency",
        threads: int | None = None,
        pin_threads: bool | None = None,
        cache: bool = True,
        cache_dir: Path | str | None = None,
        validate_inputs: bool = True,
        manifest: Manifest | None = None,
    ) -> None:
        super().__init__(artifact, device=device, validate_inputs=validate_inputs, manifest=manifest)
        if self.device.type != "cpu":
            raise LibDeepfakeError(f"openvino engine runs on the CPU; got --device {device}")
        if precision is not None and precision not in PRECISIONS:
            raise LibDeepfakeError(f"openvino engine: precision must be one of {', '.join(PRECISIONS)}, got "
                                   f"{precision!r}")  # fmt: skip
        if hint not in HINTS:
            raise LibDeepfakeError(f"openvino engine: hint must be one of {', '.join(HINTS)}, got {hint!r}")
        if threads is not None and threads < 1:
            raise LibDeepfakeError(f"openvino engine: threads must be >= 1, got {threads}")
        self._requested = precision
        self.hint = hint
        self.threads = threads or default_threads()
        self.pin_threads = pin_threads
        self.cache = bool(cache)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._precision: str | None = None
        self._size: int | None = None
        self._compiled: Any = None
        self._request: Any = None
        self._requests: list[Any] = []
        self._resolved: dict[str, Any] = {}
        self._cache_state: dict[str, Any] = {"state": "off"}
        self._version = ""

    @property
    def input_size(self) -> int:
        if self._size is None:
            raise LibDeepfakeError("openvino engine: input size is known after load()")
        return self._size

    @property
    def precision(self) -> str:
        return self._precision or self._requested or "unknown"

    def options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {"hint": self.hint, "threads": self.threads}
        if self.pin_threads is not None:
            opts["pin_threads"] = self.pin_threads
        return opts

    def info(self) -> EngineInfo:
        info = super().info()
        caps = cpu_caps()
        info.runtime = {
            "openvino": self._version,
            "resolved": dict(self._resolved),
            "cache": dict(self._cache_state),
            "cpu": caps.name,
            "cpu_flags": caps.precision_flags(self.precision),
            "manifest": self._manifest is not None,
        }
        return info

    def _compile_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "PERFORMANCE_HINT": HINTS[self.hint],
            "INFERENCE_NUM_THREADS": self.threads,
            "INFERENCE_PRECISION_HINT": _OV_PRECISION[self.precision],
        }
        if self.pin_threads is not None:
            config["ENABLE_CPU_PINNING"] = self.pin_threads
        return config

    def _load(self) -> None:
        ov = require("openvino", purpose="the OpenVINO engine", extra="openvino")
        self._version = str(ov.get_version())
        if self._manifest is None:
            self._manifest = Manifest.load(self.artifact)
        core = ov.Core()
        capabilities = list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
        artifact_precision = self._manifest.precision if self._manifest is not None else "unknown"
        self._precision = resolve_precision(self._requested, artifact_precision, cpu_caps(), capabilities)
        # The I/O is checked on the compiled model, so a cache hit never reads (or parses) the artifact itself.
        self._compiled = self._compile_cached(core, self._compile_config())
        _, _, size = contract_from_session(_port_args(self._compiled.inputs), _port_args(self._compiled.outputs))
        if self._manifest is not None:
            if size is not None and size != self._manifest.input_size:
                raise ArtifactMismatchError(f"{self.artifact.name} takes {size}x{size} crops but its manifest says "
                                            f"{self._manifest.input_size}")  # fmt: skip
            size = self._manifest.input_size
        elif size is None:
            raise ContractError(f"{self.artifact.name}: the crop size S is dynamic and there is no manifest "
                                f"({self.artifact.name}.json) to say which it is")  # fmt: skip
        else:
            logger.warning("%s has no manifest; running it as %s because its I/O matches the engine contract",
                           self.artifact, self.precision)  # fmt: skip
        self._size = int(size)
        self._resolved = self._read_back()
        if self.hint == "throughput":
            # Plain requests waited on one by one, no AsyncInferQueue callback: a Python callback runs on OpenVINO's
            # stream threads and needs the GIL, and destroying the compiled model (which joins those threads) while
            # holding the GIL deadlocked in a test.
            count = int(self._resolved["OPTIMAL_NUMBER_OF_INFER_REQUESTS"])
            self._requests = [self._compiled.create_infer_request() for _ in range(max(1, count))]
        else:
            self._request = self._compiled.create_infer_request()

    def _compile_cached(self, core: Any, config: dict[str, Any]) -> Any:
        if not self.cache:
            self._cache_state = {"state": "off"}
            return core.compile_model(str(self.artifact), "CPU", config)
        files = [self.artifact]
        if self.artifact.suffix == ".xml":
            files.append(self.artifact.with_suffix(".bin"))
        key = cache_key(file_digest([f for f in files if f.is_file()]), self.precision, config,
                        cpu_caps().signature(), self._version)  # fmt: skip
        blob = self.cache_dir / f"{self.artifact.stem}-{key}.blob"
        self._cache_state = {"state": "miss", "path": str(blob), "key": key}
        if blob.is_file():
            try:
                compiled = core.import_model(blob.read_bytes(), "CPU", config)
                self._cache_state["state"] = "hit"
                return compiled
            except Exception as exc:  # noqa: BLE001 - a damaged blob is rebuilt, and the rebuild is recorded
                logger.warning("compiled-model cache %s is unusable (%s); compiling again", blob, exc)
                self._cache_state["state"] = "rebuilt"
        compiled = core.compile_model(str(self.artifact), "CPU", config)
        from lib_deepfake.atomic import write_bytes_atomic

        stream = io.BytesIO()  # the stream overload: the no-argument one returns bytes or BytesIO by version
        compiled.export_model(stream)
        try:
            write_bytes_atomic(blob, stream.getvalue())
        except OSError as exc:  # a read-only cache costs start time, not correctness: say so and go on
            logger.warning("cannot write the compiled-model cache %s: %s", blob, exc)
            self._cache_state["state"] = f"miss (not written: {exc})"
        return compiled

    def _read_back(self) -> dict[str, Any]:
        resolved: dict[str, Any] = {}
        for key in ("PERFORMANCE_HINT", "NUM_STREAMS", "INFERENCE_NUM_THREADS", "INFERENCE_PRECISION_HINT",
                    "OPTIMAL_NUMBER_OF_INFER_REQUESTS", "ENABLE_CPU_PINNING", "EXECUTION_DEVICES"):  # fmt: skip
            try:
                value = self._compiled.get_property(key)
            except Exception:  # noqa: BLE001 - a property this version does not expose is left out
                continue
            if hasattr(value, "get_type_name"):  # an ov.Type such as f32/bf16
                value = value.get_type_name()
            resolved[key] = value if isinstance(value, (int, float, bool, str)) else [str(v) for v in value]
        return resolved

    def _infer(self, faces: torch.Tensor) -> torch.Tensor:
        import numpy as np

        host = faces.numpy()
        if not self._requests:
            out = self._request.infer({0: host}, share_inputs=True)
            return torch.from_numpy(np.array(out[0], dtype=np.float32, copy=True))
        bounds = np.array_split(np.arange(host.shape[0]), min(len(self._requests), host.shape[0]))
        used = self._requests[: len(bounds)]
        for request, idx in zip(used, bounds):
            request.start_async({0: host[idx[0] : idx[-1] + 1]}, share_inputs=True)
        for request in used:
            request.wait()
        return torch.from_numpy(np.concatenate([np.array(r.get_output_tensor(0).data, np.float32) for r in used]))

    def _close(self) -> None:
        self._request = None
        self._requests = []
        self._compiled = None
