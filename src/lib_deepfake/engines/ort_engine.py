"""The ONNX Runtime engine, with explicit execution providers and no silent CPU fallback.

ONNX Runtime quietly runs on CPU when a requested CUDA or TensorRT provider cannot load (gpu-stack.md §2), so the
providers actually in use are read back from the session after it is created: a missing GPU provider is an error
unless ``allow_cpu_fallback``, and then the fallback is recorded in :meth:`OrtEngine.info`. On CUDA, inputs and
outputs are bound with IOBinding to torch tensors (no host round trip).

Stream ordering on CUDA: ONNX Runtime reads a ``user_compute_stream`` of 0 as "no stream" and then computes on a
stream of its own that does not wait for torch's queued work, so torch's default stream (handle 0) cannot be handed
over. Each GPU session gets a dedicated non-default torch stream instead (:func:`gpu_stream_options` on every GPU
provider entry), and :func:`run_ordered` makes that stream wait for the caller's stream before the run and the
caller wait for it afterwards, as the TensorRT engine does.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from lib_deepfake._optional import require
from lib_deepfake.engines.base import Availability, Engine, EngineInfo, require_cuda
from lib_deepfake.errors import ArtifactMismatchError, ContractError, LibDeepfakeError
from lib_deepfake.manifest import Manifest

logger = logging.getLogger(__name__)

#: ``--provider`` name -> ONNX Runtime execution provider
PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


def default_threads() -> int:
    """Cores this process may run on (affinity-aware), the default intra-op thread count on CPU."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def provider_list(
    provider: str, device: torch.device, *, fp16: bool = False, trt_cache_dir: Path | None = None
) -> list:
    """The ``providers=`` argument for ``InferenceSession``: the requested provider first, with its options.

    Args:
        provider: ``"cpu"``, ``"cuda"`` or ``"tensorrt"``.
        device: the engine's device (its index becomes ``device_id``).
        fp16: ask the TensorRT provider for FP16 kernels (TensorRT 10; TensorRT 11 takes precision from the graph).
        trt_cache_dir: where the TensorRT provider caches its engines (building them is slow).

    Returns:
        e.g. ``[("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]``; CPU stays last for the
        few nodes a GPU provider does not take.
    """
    if provider not in PROVIDERS:
        raise LibDeepfakeError(f"unknown ONNX Runtime provider {provider!r}; choose from {', '.join(PROVIDERS)}")
    if provider == "cpu":
        return ["CPUExecutionProvider"]
    if device.type != "cuda":
        raise LibDeepfakeError(f"ONNX Runtime provider {provider!r} needs --device cuda[:N], got {device}")
    cuda_opts: dict[str, Any] = {"device_id": int(device.index or 0)}
    chain: list[Any] = []
    if provider == "tensorrt":
        trt_opts: dict[str, Any] = {"device_id": int(device.index or 0), "trt_fp16_enable": bool(fp16)}
        if trt_cache_dir is not None:
            trt_opts.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(trt_cache_dir))
        chain.append(("TensorrtExecutionProvider", trt_opts))
    chain.append(("CUDAExecutionProvider", cuda_opts))
    chain.append("CPUExecutionProvider")
    return chain


def gpu_stream_options(stream_handle: int) -> dict[str, str]:
    """Provider options that make ONNX Runtime's CUDA or TensorRT provider compute on ``stream_handle``.

    Raises:
        LibDeepfakeError: ``stream_handle`` is 0 (torch's default stream), which ONNX Runtime reads as "no user
            stream": it would then run on a stream of its own, unordered with the producer of the inputs.
    """
    handle = int(stream_handle)
    if handle == 0:
        raise LibDeepfakeError(
            "ONNX Runtime reads user_compute_stream 0 (torch's default stream) as 'no stream' and would not wait for "
            "the work that writes its inputs; pass a dedicated non-default stream"
        )
    return {"has_user_compute_stream": "1", "user_compute_stream": str(handle)}


def with_user_stream(providers: list[Any], stream_handle: int) -> list[Any]:
    """``providers`` with :func:`gpu_stream_options` added to every GPU entry (CUDA and TensorRT alike: nodes the
    TensorRT provider does not take run on the CUDA provider, and both must use the same stream)."""
    opts = gpu_stream_options(stream_handle)
    out: list[Any] = []
    for entry in providers:
        if isinstance(entry, tuple) and entry[0] in (PROVIDERS["cuda"], PROVIDERS["tensorrt"]):
            out.append((entry[0], {**entry[1], **opts}))
        else:
            out.append(entry)
    return out


def run_ordered(
    stream: Any, caller: Any, run: Callable[[], Any], consumed: Sequence[Any] = (), produced: Sequence[Any] = ()
) -> Any:
    """Run ``run`` (which enqueues work on ``stream``) ordered with the ``caller`` stream in both directions.

    ``stream`` first waits for everything already queued on ``caller`` (the kernels that wrote the inputs), then
    ``caller`` waits for ``stream`` (so whatever reads the outputs next sees them). ``consumed`` tensors were made
    on ``caller`` and are read on ``stream``; ``produced`` ones are written on ``stream`` and handed to ``caller``:
    both are recorded on the other stream so the caching allocator does not reuse their memory too early.
    Pure orchestration over objects with ``wait_stream`` and tensors with ``record_stream`` (tests pass fakes).
    """
    stream.wait_stream(caller)
    result = run()
    caller.wait_stream(stream)
    for tensor in consumed:
        tensor.record_stream(stream)
    for tensor in produced:
        tensor.record_stream(caller)
    return result


def check_providers(requested: str, actual: list[str], allow_cpu_fallback: bool) -> str | None:
    """Compare the provider asked for with those the session really uses.

    Returns:
        None when the requested provider leads ``actual``; otherwise a one-line description of the fallback
        (when ``allow_cpu_fallback``).

    Raises:
        ArtifactMismatchError: the requested GPU provider is not in use and fallback was not allowed.
    """
    wanted = PROVIDERS[requested]
    if actual and actual[0] == wanted:
        return None
    note = f"requested {wanted} but ONNX Runtime uses {actual or ['nothing']}"
    if not allow_cpu_fallback:
        raise ArtifactMismatchError(
            f"{note}: the GPU provider could not be loaded (is onnxruntime-gpu installed instead of onnxruntime, "
            "with its CUDA/cuDNN libraries?); pass --allow-cpu-fallback to run on "
            f"{actual[0] if actual else 'CPU'} anyway"
        )
    logger.warning("%s (--allow-cpu-fallback: recorded in the results)", note)
    return note


def contract_from_session(inputs: list[Any], outputs: list[Any]) -> tuple[str, str, int | None]:
    """Check an ONNX model's I/O against the engine contract from ORT's ``NodeArg`` lists.

    Returns:
        (input name, output name, S when the graph fixes it else None).

    Raises:
        ContractError: the graph does not take uint8 [N, S, S, 3] and return float32 [N].
    """
    if len(inputs) != 1 or len(outputs) != 1:
        raise ContractError(
            f"the ONNX model has {len(inputs)} inputs and {len(outputs)} outputs; the engine contract is one "
            "input faces uint8 [N, S, S, 3] RGB and one output prob_fake float32 [N]"
        )
    inp, out = inputs[0], outputs[0]
    shape = list(inp.shape)
    ok_in = inp.type == "tensor(uint8)" and len(shape) == 4 and shape[3] == 3
    ok_out = out.type == "tensor(float)" and len(list(out.shape)) == 1
    if not (ok_in and ok_out):
        raise ContractError(
            f"the ONNX model maps {inp.name} {inp.type} {shape} -> {out.name} {out.type} {list(out.shape)}; "
            "the engine contract is faces uint8 [N, S, S, 3] RGB -> prob_fake float32 [N] (export with lib-export "
            "to-onnx)"
        )
    size = shape[1] if isinstance(shape[1], int) and shape[1] == shape[2] else None
    return inp.name, out.name, size


def _metadata(session: Any) -> dict[str, str]:
    try:
        return dict(session.get_modelmeta().custom_metadata_map)
    except Exception:  # noqa: BLE001 - metadata is informative only
        return {}


def probe_providers() -> dict[str, Any]:
    """What this ONNX Runtime build offers (imports onnxruntime; for ``lib-bench env``)."""
    ort = require("onnxruntime", purpose="ONNX Runtime engines", extra="cpu")
    info: dict[str, Any] = {"version": ort.__version__, "compiled_providers": list(ort.get_available_providers())}
    get_ep_devices = getattr(ort, "get_ep_devices", None)
    if get_ep_devices is not None:
        # The honest list: providers with a device that can actually run (compiled-in != loadable).
        try:
            info["ep_devices"] = sorted({str(getattr(d, "ep_name", d)) for d in get_ep_devices()})
        except Exception as exc:  # noqa: BLE001 - diagnostics only
            info["ep_devices_error"] = str(exc)
    return info


class OrtEngine(Engine):
    """Runs a contract ONNX model (``lib-export to-onnx``) with ONNX Runtime.

    Args:
        artifact: the .onnx file. Without its manifest (``.onnx.json``) it still runs when its I/O matches the
            contract, with a warning.
        device: ``"cpu"`` or ``"cuda[:N]"``.
        provider: ``"cpu"``, ``"cuda"`` or ``"tensorrt"``; default: ``cpu`` on CPU, ``cuda`` on CUDA.
        threads: intra-op threads on CPU (default: the cores this process may use).
        allow_cpu_fallback: run on whatever ORT picked when the requested GPU provider is unusable (recorded).
        trt_cache_dir: engine cache for the TensorRT provider.
        spin: let idle intra-op threads busy-wait for the next piece of work (ONNX Runtime's default, fastest for
            the engine alone); False when other processes need the cores, e.g. lib-infer's decode workers.
        validate_inputs, manifest: see :class:`Engine`.
    """

    name = "onnxrt"
    artifact_suffixes = (".onnx",)
    requires = ("onnxruntime",)
    extra = "cpu"

    def __init__(
        self,
        artifact: Path | str,
        *,
        device: str | torch.device = "cpu",
        provider: str | None = None,
        threads: int | None = None,
        allow_cpu_fallback: bool = False,
        trt_cache_dir: Path | str | None = None,
        spin: bool = True,
        validate_inputs: bool = True,
        manifest: Manifest | None = None,
    ) -> None:
        super().__init__(artifact, device=device, validate_inputs=validate_inputs, manifest=manifest)
        self.provider = provider or ("cuda" if self.device.type == "cuda" else "cpu")
        if self.provider not in PROVIDERS:
            raise LibDeepfakeError(
                f"unknown ONNX Runtime provider {self.provider!r}; choose from {', '.join(PROVIDERS)}"
            )
        if self.provider == "cpu" and self.device.type == "cuda":
            raise LibDeepfakeError("onnxrt engine: provider 'cpu' with a CUDA device; use --device cpu")
        if threads is not None and threads < 1:
            raise LibDeepfakeError(f"onnxrt engine: threads must be >= 1, got {threads}")
        self.threads = threads or default_threads()
        self.allow_cpu_fallback = allow_cpu_fallback
        self.spin = bool(spin)
        self.trt_cache_dir = Path(trt_cache_dir) if trt_cache_dir is not None else None
        self._session: Any = None
        self._size: int | None = None
        self._in_name = ""
        self._out_name = ""
        self._actual: list[str] = []
        self.fallback: str | None = None
        self._ort_version = ""
        self._precision: str | None = None
        self._stream: Any = None

    @classmethod
    def available(cls, device: str | torch.device | None = None) -> Availability:
        base = super().available(device)
        if not base:
            return base
        from importlib.metadata import PackageNotFoundError, version

        dists = {}
        for dist in ("onnxruntime", "onnxruntime-gpu"):
            with contextlib.suppress(PackageNotFoundError):
                dists[dist] = version(dist)
        if len(dists) > 1:
            return Availability(
                False, "both onnxruntime and onnxruntime-gpu are installed and overwrite each other: "
                "pip uninstall -y onnxruntime onnxruntime-gpu, then install one"
            )  # fmt: skip
        label = ", ".join(f"{k} {v}" for k, v in dists.items())
        if device is not None and torch.device(device).type == "cuda" and "onnxruntime-gpu" not in dists:
            return Availability(False, f"{label or 'onnxruntime'}: the CPU build has no CUDA provider "
                                "(pip install 'lib-deepfake[gpu]' after removing onnxruntime)")  # fmt: skip
        return Availability(True, label)

    @property
    def input_size(self) -> int:
        if self._size is None:
            raise LibDeepfakeError("onnxrt engine: input size is known after load()")
        return self._size

    @property
    def precision(self) -> str:
        return self._precision or "unknown"

    def options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {"provider": self.provider}
        if self.device.type == "cpu":
            opts["threads"] = self.threads
            if not self.spin:
                opts["spin"] = False
        if self.allow_cpu_fallback:
            opts["allow_cpu_fallback"] = True
        return opts

    def info(self) -> EngineInfo:
        info = super().info()
        info.runtime = {
            "onnxruntime": self._ort_version,
            "providers": list(self._actual),
            "fallback": self.fallback,
            "manifest": self._manifest is not None,
        }
        return info

    def _load(self) -> None:
        ort = require("onnxruntime", purpose="running ONNX models", extra="gpu" if self.provider != "cpu" else "cpu")
        self._ort_version = str(ort.__version__)
        require_cuda(self.device, "onnxrt engine")
        if self._manifest is None:
            self._manifest = Manifest.load(self.artifact)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads if self.device.type == "cpu" else 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # the fallback is detected below; ORT's own error lines would repeat it
        if not self.spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        fp16 = self._manifest is not None and self._manifest.precision == "fp16"
        providers = provider_list(self.provider, self.device, fp16=fp16, trt_cache_dir=self.trt_cache_dir)
        if self.provider != "cpu":
            # A stream of our own (never handle 0), kept for the session's life; _infer_bound orders it with the
            # caller's stream on every run.
            self._stream = torch.cuda.Stream(self.device)
            providers = with_user_stream(providers, self._stream.cuda_stream)
        try:
            session = ort.InferenceSession(str(self.artifact), options, providers=providers)
        except Exception as exc:  # ORT raises its own exception types (Fail, InvalidGraph, ...)
            raise ArtifactMismatchError(
                f"ONNX Runtime cannot load {self.artifact}: {str(exc).splitlines()[0]}"
            ) from exc
        self._actual = list(session.get_providers())
        self.fallback = check_providers(self.provider, self._actual, self.allow_cpu_fallback)
        self._in_name, self._out_name, size = contract_from_session(session.get_inputs(), session.get_outputs())
        meta = _metadata(session)
        if self._manifest is not None:
            if size is not None and size != self._manifest.input_size:
                raise ArtifactMismatchError(
                    f"{self.artifact.name} takes {size}x{size} crops but its manifest says {self._manifest.input_size}"
                )
            size = self._manifest.input_size
            self._precision = self._manifest.precision
        else:
            logger.warning(
                "%s has no manifest (%s.json); running it because its I/O matches the engine contract",
                self.artifact.name,
                self.artifact.name,
            )
            if size is None and "lib_deepfake.input_size" in meta:
                size = int(meta["lib_deepfake.input_size"])
            self._precision = meta.get("lib_deepfake.precision")
            if size is None:
                raise ContractError(
                    f"{self.artifact.name}: the crop size S is dynamic and there is no manifest to say which it is"
                )
        self._size = int(size)
        self._session = session
        self._on_gpu = self._actual[0] in (PROVIDERS["cuda"], PROVIDERS["tensorrt"])

    def _infer(self, faces: torch.Tensor) -> torch.Tensor:
        if self._on_gpu:
            return self._infer_bound(faces)
        host = faces.cpu() if faces.device.type != "cpu" else faces  # only after a recorded CPU fallback
        (out,) = self._session.run([self._out_name], {self._in_name: host.numpy()})
        result = torch.from_numpy(out)
        return result.to(self.device, non_blocking=True) if faces.device.type != "cpu" else result

    def _infer_bound(self, faces: torch.Tensor) -> torch.Tensor:
        import numpy as np

        index = int(self.device.index or 0)
        out = torch.empty((faces.shape[0],), dtype=torch.float32, device=self.device)
        binding = self._session.io_binding()
        binding.bind_input(self._in_name, "cuda", index, np.uint8, tuple(faces.shape), faces.data_ptr())
        binding.bind_output(self._out_name, "cuda", index, np.float32, tuple(out.shape), out.data_ptr())
        caller = torch.cuda.current_stream(self.device)
        run_ordered(self._stream, caller, lambda: self._session.run_with_iobinding(binding), consumed=(faces,))
        return out

    def _close(self) -> None:
        self._session = None
        self._stream = None
