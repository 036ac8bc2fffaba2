"""The AOTInductor engine: runs a ``.pt2`` package from ``lib-export to-aoti`` (torch only, no other runtime).

A package holds kernels compiled for one torch version and one device kind (on CUDA: for one GPU architecture, tuned
on that GPU), so :meth:`AotiEngine._load` compares the manifest with what is here and refuses a mismatch with
:class:`ArtifactMismatchError`, as the TensorRT engine does for plans. Batches larger than the package's maximum are
split. On CUDA the package runs on torch's current stream; ``cuda_graphs`` replays a CUDA graph per input shape on
top (fixed batch sizes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lib_deepfake.engines.base import Engine, EngineInfo, IOSpec, contract_iospec, require_cuda
from lib_deepfake.errors import ArtifactMismatchError, LibDeepfakeError
from lib_deepfake.manifest import Manifest


def check_package(manifest: Manifest, device: torch.device, torch_version: str, here: dict[str, Any]) -> None:
    """Refuse a package built for another torch version, device kind or GPU architecture.

    Args:
        manifest: the package's manifest (format ``aoti``).
        device: where the engine runs.
        torch_version: this torch's version.
        here: :func:`lib_deepfake.export.aoti.device_facts` of ``device``.
    """
    if manifest.format != "aoti":
        raise ArtifactMismatchError(
            f"the manifest describes a {manifest.format!r} artifact, not an AOTInductor package"
        )
    built = manifest.extra
    if built.get("torch") != torch_version:
        raise ArtifactMismatchError(f"the package was compiled by torch {built.get('torch')} and this is torch "
                                    f"{torch_version}: AOTInductor packages are tied to their torch version; "
                                    "export it again with lib-export to-aoti")  # fmt: skip
    if built.get("device") != device.type:
        raise ArtifactMismatchError(f"the package was compiled for {built.get('device')} and the engine runs on "
                                    f"{device.type}; export it with --device {device.type}")  # fmt: skip
    if device.type == "cuda" and built.get("compute_capability") != here.get("compute_capability"):
        raise ArtifactMismatchError(
            f"the package was compiled for {built.get('gpu_name')} (sm {built.get('compute_capability')}) and this "
            f"is {here.get('gpu_name')} (sm {here.get('compute_capability')}); export it again on this GPU"
        )


class AotiEngine(Engine):
    """Runs an AOTInductor package with the engine contract.

    Args:
        artifact: the ``.pt2`` file (its manifest ``.pt2.json`` is required: it says what the package was built for).
        device: ``cpu`` or ``cuda[:N]``, as the package was compiled.
        cuda_graphs: replay CUDA graphs per input shape (CUDA only).
        validate_inputs, manifest: see :class:`Engine`.
    """

    name = "aoti"
    artifact_suffixes = (".pt2",)
    requires = ("torch",)
    extra = "cpu"

    def __init__(
        self,
        artifact: Path | str,
        *,
        device: str | torch.device = "cpu",
        cuda_graphs: bool = False,
        validate_inputs: bool = True,
        manifest: Manifest | None = None,
    ) -> None:
        super().__init__(artifact, device=device, validate_inputs=validate_inputs, manifest=manifest)
        if cuda_graphs and self.device.type != "cuda":
            raise LibDeepfakeError("aoti engine: --cuda-graphs needs a CUDA device")
        self.cuda_graphs = cuda_graphs
        self._runner: Any = None
        self._fn: Any = None
        self._max_batch = 1

    @property
    def input_size(self) -> int:
        if self._manifest is None:
            raise LibDeepfakeError("aoti engine: input size is known after load()")
        return self._manifest.input_size

    @property
    def io(self) -> IOSpec:
        return contract_iospec(self.input_size, self._max_batch)

    def options(self) -> dict[str, Any]:
        return {"cuda_graphs": self.cuda_graphs}

    def info(self) -> EngineInfo:
        info = super().info()
        extra = self._manifest.extra if self._manifest is not None else {}
        info.runtime = {"torch": torch.__version__, "built_with": extra.get("torch"), "max_batch": self._max_batch,
                        "inductor_configs": extra.get("inductor_configs")}  # fmt: skip
        return info

    def _load(self) -> None:
        from lib_deepfake.export.aoti import device_facts

        require_cuda(self.device, "aoti engine")
        if self._manifest is None:
            self._manifest = Manifest.load(self.artifact)
        if self._manifest is None:
            raise ArtifactMismatchError(f"{self.artifact.name} has no manifest ({self.artifact.name}.json): it says "
                                        "which torch and device the package was compiled for")  # fmt: skip
        check_package(self._manifest, self.device, torch.__version__, device_facts(self.device))
        self._max_batch = int(self._manifest.extra.get("max_batch", 1))
        index = self.device.index if self.device.type == "cuda" and self.device.index is not None else -1
        try:
            self._runner = torch._inductor.aoti_load_package(str(self.artifact), device_index=index)
        except Exception as exc:  # torch raises RuntimeError with the loader's message
            raise ArtifactMismatchError(f"cannot load the AOTInductor package {self.artifact}: "
                                        f"{str(exc).splitlines()[0]}") from exc  # fmt: skip
        fn: Any = self._runner
        if self.cuda_graphs:
            from lib_deepfake.engines._cuda_graphs import GraphCache

            fn = GraphCache(self._runner, self.device)
        self._fn = fn

    def _infer(self, faces: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            if faces.shape[0] <= self._max_batch:
                return self._fn(faces)
            return torch.cat([self._fn(part) for part in faces.split(self._max_batch)])

    def _close(self) -> None:
        self._fn = None
        self._runner = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
