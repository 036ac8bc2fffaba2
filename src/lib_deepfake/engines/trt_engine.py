"""The TensorRT engine: runs a serialized plan built by ``lib-export to-trt``.

Written against the TensorRT 10/11 Python API (gpu-stack.md §4; names checked against ``typings/tensorrt.pyi``):
``Runtime.deserialize_cuda_engine``, ``ICudaEngine.get_tensor_*``, ``IExecutionContext.set_input_shape`` /
``set_tensor_address`` / ``execute_async_v3``. I/O buffers are torch tensors and work is enqueued on a torch stream,
so there is one CUDA context (torch's) and no pycuda. The pure helpers (:func:`check_plan_compat`,
:func:`split_batch`, :class:`PlanRunner`) are tested on CPU with a fake whose every runtime call is checked against
NVIDIA's own lean bindings (``tensorrt_lean_bindings``, which import without a GPU); the real path is **not yet
run on a GPU**.

Runtimes: the full ``tensorrt`` when installed, else the lean runtime (``tensorrt_lean_bindings``, extra
``trt-lean``), which runs only plans built with ``lib-export to-trt --version-compatible``; the plan's manifest says
which it is, and a plan the present runtime cannot run is refused before deserialising.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from lib_deepfake.engines import _trt_api
from lib_deepfake.engines.base import Availability, Engine, EngineInfo, IOSpec, contract_iospec, require_cuda
from lib_deepfake.errors import ArtifactMismatchError, ContractError, LibDeepfakeError
from lib_deepfake.manifest import Manifest

if TYPE_CHECKING:
    import tensorrt

logger = logging.getLogger(__name__)

#: TensorRT ``DataType`` member name -> torch dtype (the I/O types a contract plan may use)
TRT_TO_TORCH = {
    "UINT8": torch.uint8,
    "FLOAT": torch.float32,
    "HALF": torch.float16,
    "BF16": torch.bfloat16,
    "INT32": torch.int32,
    "INT64": torch.int64,
    "BOOL": torch.bool,
}


def trt_major(version: str) -> int:
    """``"10.13.0.35"`` -> 10."""
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        raise LibDeepfakeError(f"cannot read a TensorRT major version from {version!r}") from None


def present_gpu(device: torch.device) -> dict[str, str]:
    """Name and compute capability (``"9.0"``) of ``device`` as torch reports them."""
    major, minor = torch.cuda.get_device_capability(device)
    return {"gpu_name": torch.cuda.get_device_name(device), "compute_capability": f"{major}.{minor}"}


#: Version-compatible plans of one major also run on the runtime of the next (TensorRT support matrix: 10 -> 11).
_CROSS_MAJOR = {(10, 11)}


def _version_problem(built: Mapping[str, Any], b_ver: str, p_ver: str) -> str | None:
    """Why a plan built with ``b_ver`` cannot run on runtime ``p_ver`` (None when it can)."""
    if not (b_ver and p_ver):
        return None
    b_major, p_major = trt_major(b_ver), trt_major(p_ver)
    if not built.get("version_compatible"):
        if b_major != p_major:
            return f"it was built with TensorRT {b_ver}, this machine has TensorRT {p_ver}"
        return None
    if _trt_api.version_tuple(b_ver) > _trt_api.version_tuple(p_ver):
        return (f"it was built with TensorRT {b_ver}, newer than this machine's {p_ver}: version-compatible plans run "
                "on the same or a later TensorRT only")  # fmt: skip
    if b_major != p_major and (b_major, p_major) not in _CROSS_MAJOR:
        return f"it was built with TensorRT {b_ver}, and TensorRT {p_ver} does not run {b_major}.x plans"
    if built.get("exclude_lean_runtime") and b_ver != p_ver:
        return (f"it was built with TensorRT {b_ver} without its lean runtime (--exclude-lean-runtime), so it runs "
                f"only on exactly that version, not {p_ver}")  # fmt: skip
    return None


def check_plan_compat(built: Mapping[str, Any], present: Mapping[str, Any], artifact: str) -> None:
    """Refuse a plan that the TensorRT runtime and GPU present cannot run, before deserialising it.

    Plans are not portable (gpu-stack.md §4.2): kernels are compiled for one compute capability, and a plan runs
    only on the TensorRT that built it unless it was built version-compatible (then on the same or a later version
    of that major, and 10.x plans on 11.x). The lean runtime runs version-compatible plans only. Checking the
    manifest first turns a deserialisation failure (or worse) into a message that says what was built and what
    is present.

    Args:
        built: the plan manifest's ``extra`` (``tensorrt``, ``compute_capability``, ``gpu_name``,
            ``version_compatible``, ``exclude_lean_runtime``).
        present: ``tensorrt`` (version), ``runtime`` (``"full"`` or ``"lean"``), ``compute_capability``,
            ``gpu_name`` for this machine.
        artifact: name for messages.

    Raises:
        ArtifactMismatchError: the plan cannot run here; the message says how to get one that can.
    """
    if present.get("runtime") == "lean" and not built.get("version_compatible"):
        raise ArtifactMismatchError(
            f"{artifact} was not built version-compatible, and the TensorRT here is the lean runtime "
            f"(tensorrt_lean_bindings {present.get('tensorrt', '?')}), which runs only version-compatible plans: "
            "rebuild it with lib-export to-trt --version-compatible, or install the full TensorRT "
            "(pip install 'lib-deepfake[trt]')"
        )
    problems = []
    b_ver, p_ver = str(built.get("tensorrt", "")), str(present.get("tensorrt", ""))
    version_problem = _version_problem(built, b_ver, p_ver)
    if version_problem:
        problems.append(version_problem)
    b_cc, p_cc = str(built.get("compute_capability", "")), str(present.get("compute_capability", ""))
    if b_cc and p_cc and b_cc != p_cc:
        problems.append(
            f"it was built for compute capability {b_cc} ({built.get('gpu_name', '?')}), this GPU is {p_cc} "
            f"({present.get('gpu_name', '?')})"
        )
    if problems:
        raise ArtifactMismatchError(
            f"{artifact} cannot run here: {'; '.join(problems)}. Rebuild it on this machine with lib-export to-trt"
        )
    if b_ver and p_ver and b_ver != p_ver and not built.get("version_compatible"):
        logger.warning(
            "%s was built with TensorRT %s and this machine has %s: plans are tied to the exact version unless built "
            "version-compatible; rebuild if loading fails",
            artifact,
            b_ver,
            p_ver,
        )


def split_batch(n: int, max_batch: int) -> list[tuple[int, int]]:
    """``[start, stop)`` chunks of at most ``max_batch`` covering ``n`` rows (the profile's max)."""
    if n < 1 or max_batch < 1:
        raise ValueError(f"split_batch needs n >= 1 and max_batch >= 1, got {n}, {max_batch}")
    return [(start, min(start + max_batch, n)) for start in range(0, n, max_batch)]


def _dtype_name(trt_dtype: Any) -> str:
    return str(getattr(trt_dtype, "name", trt_dtype)).split(".")[-1].upper()


class PlanRunner:
    """Binds torch tensors to a deserialized engine and enqueues it. Device-agnostic: addresses are data pointers.

    Args:
        engine: an ``ICudaEngine`` (``_trt_api.trt`` must be bound: the real module or a test fake).
        context: an ``IExecutionContext`` of ``engine`` (optimisation profile 0).
        device: where I/O buffers live.

    Raises:
        ArtifactMismatchError: the plan's I/O is not the engine contract.
    """

    def __init__(self, engine: tensorrt.ICudaEngine, context: tensorrt.IExecutionContext, device: torch.device) -> None:
        trt = _trt_api.trt
        self.engine = engine
        self.context = context
        self.device = device
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise ArtifactMismatchError(
                f"the plan has inputs {inputs} and outputs {outputs}; the engine contract is one input (faces) and "
                "one output (prob_fake)"
            )
        self.input_name, self.output_name = inputs[0], outputs[0]
        in_dtype = _dtype_name(engine.get_tensor_dtype(self.input_name))
        out_dtype = _dtype_name(engine.get_tensor_dtype(self.output_name))
        in_shape = tuple(int(d) for d in engine.get_tensor_shape(self.input_name))
        if in_dtype != "UINT8" or out_dtype != "FLOAT" or len(in_shape) != 4 or in_shape[3] != 3:
            raise ArtifactMismatchError(
                f"the plan maps {self.input_name} {in_dtype} {list(in_shape)} -> {self.output_name} {out_dtype}; the "
                "engine contract is faces UINT8 [N, S, S, 3] -> prob_fake FLOAT [N] (build it with lib-export to-trt)"
            )
        self.input_size = in_shape[1]
        profile = engine.get_tensor_profile_shape(self.input_name, 0)
        self.min_batch, self.opt_batch, self.max_batch = (int(tuple(s)[0]) for s in profile)
        self.output_dtype = TRT_TO_TORCH[out_dtype]

    def run(self, faces: torch.Tensor, stream_handle: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """Enqueue the plan on ``stream_handle`` for ``faces``; batches above the profile's max are split.

        Args:
            faces: uint8 [N, S, S, 3] contiguous, on the runner's device.
            stream_handle: ``torch.cuda.Stream.cuda_stream`` (the CUDA stream to enqueue on).
            out: optional float32 [N] destination.

        Returns:
            float32 [N] (written asynchronously on the stream).
        """
        n = int(faces.shape[0])
        if out is None:
            out = torch.empty((n,), dtype=self.output_dtype, device=self.device)
        for start, stop in split_batch(n, self.max_batch):
            chunk = faces[start:stop]
            target = out[start:stop]
            if stop - start < self.min_batch:
                # Below the profile's minimum TensorRT refuses the shape: pad with copies of the first row.
                pad = self.min_batch - (stop - start)
                chunk = torch.cat([chunk, chunk[:1].expand(pad, *chunk.shape[1:])]).contiguous()
                target = torch.empty((self.min_batch,), dtype=self.output_dtype, device=self.device)
            self._enqueue(chunk, target, stream_handle)
            if target.data_ptr() != out[start:stop].data_ptr() or target.shape[0] != stop - start:
                out[start:stop].copy_(target[: stop - start])
        return out

    def _enqueue(self, chunk: torch.Tensor, target: torch.Tensor, stream_handle: int) -> None:
        ctx = self.context
        if not ctx.set_input_shape(self.input_name, tuple(chunk.shape)):
            raise ContractError(
                f"TensorRT rejected input shape {list(chunk.shape)} (profile {self.min_batch}..{self.max_batch})"
            )
        ctx.set_tensor_address(self.input_name, chunk.data_ptr())
        ctx.set_tensor_address(self.output_name, target.data_ptr())
        if not ctx.execute_async_v3(stream_handle):
            raise LibDeepfakeError("TensorRT execute_async_v3 failed (see the TensorRT log above)")


class TrtEngine(Engine):
    """Runs a TensorRT plan (.plan/.engine) on a CUDA device.

    Args:
        artifact: the plan; its manifest (``.plan.json``) is checked against this machine before deserialising.
        device: ``"cuda[:N]"``.
        cuda_graphs: capture one CUDA graph per batch size and replay it (fixed batch sizes only; each captured
            size gets its own execution context, so its activation memory is not shared).
        validate_inputs, manifest: see :class:`Engine`.
    """

    name = "trt"
    artifact_suffixes = (".plan", ".engine")
    extra = "trt"

    def __init__(
        self,
        artifact: Path | str,
        *,
        device: str | torch.device = "cuda:0",
        cuda_graphs: bool = False,
        validate_inputs: bool = True,
        manifest: Manifest | None = None,
    ) -> None:
        super().__init__(artifact, device=device, validate_inputs=validate_inputs, manifest=manifest)
        if self.device.type != "cuda":
            raise LibDeepfakeError("the trt engine runs on CUDA only: use --device cuda[:N]")
        self.cuda_graphs = cuda_graphs
        self._engine: tensorrt.ICudaEngine | None = None
        self._runtime: tensorrt.Runtime | None = None
        self._runner: PlanRunner | None = None
        self._graph_runners: dict[int, PlanRunner] = {}
        self._graphs: Any = None
        self._stream: torch.cuda.Stream | None = None
        self._present: dict[str, str] = {}

    @classmethod
    def available(cls, device: str | torch.device | None = None) -> Availability:
        module = _trt_api.installed_runtime()
        if module is None:
            hint = "pip install 'lib-deepfake[trt]', or '[trt-lean]' for version-compatible plans"
            return Availability(False, f"neither tensorrt nor tensorrt_lean_bindings is installed ({hint})")
        if not torch.cuda.is_available():
            return Availability(False, f"{module} is installed but torch sees no CUDA device")
        return Availability(True, f"{module} installed, CUDA device present")

    @property
    def input_size(self) -> int:
        if self._runner is not None:
            return self._runner.input_size
        if self._manifest is not None:
            return self._manifest.input_size
        raise LibDeepfakeError("trt engine: input size is known after load()")

    @property
    def io(self) -> IOSpec:
        return contract_iospec(self.input_size, self._runner.max_batch if self._runner else None)

    def options(self) -> dict[str, Any]:
        return {"cuda_graphs": self.cuda_graphs}

    def info(self) -> EngineInfo:
        info = super().info()
        runner = self._runner
        info.runtime = {
            "tensorrt": self._present.get("tensorrt", ""),
            "runtime": self._present.get("runtime", ""),
            "gpu_name": self._present.get("gpu_name", ""),
            "compute_capability": self._present.get("compute_capability", ""),
            "profile": [runner.min_batch, runner.opt_batch, runner.max_batch] if runner else None,
            "manifest": self._manifest is not None,
        }
        return info

    def _present_machine(self) -> dict[str, str]:
        trt = _trt_api.trt
        return {"tensorrt": str(trt.__version__), "runtime": _trt_api.runtime_kind(trt), **present_gpu(self.device)}

    def _load(self) -> None:
        _trt_api.bind("running TensorRT plans", builder=False)
        trt = _trt_api.trt
        # Before anything touches TensorRT's runtime: without a driver the lean Runtime is unusable (crashes).
        require_cuda(self.device, "trt engine")
        self._present = self._present_machine()
        manifest: Manifest | None = self.manifest if self.manifest is not None else Manifest.load(self.artifact)
        self._manifest = manifest
        built: Mapping[str, Any] = {}
        if manifest is None:
            logger.warning("%s has no manifest: its TensorRT version, GPU and version compatibility are not checked",
                           self.artifact.name)  # fmt: skip
        else:
            if manifest.format != "tensorrt":
                raise ArtifactMismatchError(f"{self.artifact.name}: manifest format is {manifest.format!r}")
            built = manifest.extra
            check_plan_compat(built, self._present, self.artifact.name)
        torch.cuda.set_device(self.device)
        logger_trt = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(logger_trt)
        if built.get("version_compatible") and not built.get("exclude_lean_runtime"):
            # A version-compatible plan carries its own lean runtime (host code), which a runtime of another
            # version loads only when allowed; our manifest says we built it.
            runtime.engine_host_code_allowed = True
        engine = runtime.deserialize_cuda_engine(self.artifact.read_bytes())
        if engine is None:
            kind = self._present.get("runtime", "full")
            lean = kind == "lean"
            raise ArtifactMismatchError(
                f"TensorRT {self._present['tensorrt']} ({kind} runtime) could not deserialize "
                f"{self.artifact.name} on {self._present['gpu_name']} (built for another version or GPU"
                f"{', or not version-compatible' if lean else ''}, or damaged); rebuild it with lib-export to-trt"
                f"{' --version-compatible' if lean else ''}"
            )
        self._engine, self._runtime = engine, runtime
        self._runner = PlanRunner(engine, engine.create_execution_context(), self.device)
        if manifest is not None and manifest.input_size != self._runner.input_size:
            raise ArtifactMismatchError(
                f"{self.artifact.name} takes {self._runner.input_size}px crops but its manifest says "
                f"{manifest.input_size}"
            )
        self._stream = torch.cuda.Stream(self.device)
        if self.cuda_graphs:
            from lib_deepfake.engines._cuda_graphs import GraphCache

            self._graphs = GraphCache(self._graph_step, self.device)

    def _graph_step(self, faces: torch.Tensor) -> torch.Tensor:
        # Runs on the capturing (current) stream; one context per batch size so no captured graph ever sees its
        # context's shapes or addresses change after capture.
        n = int(faces.shape[0])
        runner = self._graph_runners.get(n)
        if runner is None:
            assert self._engine is not None
            runner = PlanRunner(self._engine, self._engine.create_execution_context(), self.device)
            self._graph_runners[n] = runner
        return runner.run(faces, torch.cuda.current_stream(self.device).cuda_stream)

    def _infer(self, faces: torch.Tensor) -> torch.Tensor:
        assert self._runner is not None and self._stream is not None
        if self._graphs is not None:
            n = int(faces.shape[0])
            chunks = split_batch(n, self._runner.max_batch)
            if len(chunks) == 1:
                return self._graphs(faces)
            out = torch.empty((n,), dtype=torch.float32, device=self.device)
            for start, stop in chunks:
                out[start:stop].copy_(self._graphs(faces[start:stop]))
            return out
        caller = torch.cuda.current_stream(self.device)
        # TensorRT recommends a non-default stream; order it after whatever produced `faces` and back again.
        self._stream.wait_stream(caller)
        with torch.cuda.stream(self._stream):
            out = self._runner.run(faces, self._stream.cuda_stream)
        caller.wait_stream(self._stream)
        faces.record_stream(self._stream)
        out.record_stream(caller)
        return out

    def _close(self) -> None:
        if self._graphs is not None:
            self._graphs.clear()
        self._graphs = None
        self._graph_runners.clear()
        self._runner = None
        self._engine = None
        self._runtime = None
