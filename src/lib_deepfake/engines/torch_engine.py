"""The PyTorch engine: the reference every other engine is compared with.

FP32 eager (no option set) is "the PyTorch reference" in every report. FP16, channels_last, CUDA graphs and
torch.compile are opt-in and appear in :meth:`TorchEngine.options` (and so in every result that used them).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from lib_deepfake.engines.base import Availability, Engine
from lib_deepfake.errors import LibDeepfakeError
from lib_deepfake.manifest import Manifest, contract_io

logger = logging.getLogger(__name__)

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class TorchEngine(Engine):
    """Runs a checkpoint (ours or official) with :class:`lib_deepfake.model.InferenceModel`.

    Args:
        artifact: checkpoint (.pth/.pt).
        device: ``"cpu"`` or ``"cuda[:N]"``.
        precision: ``"fp32"`` (reference), ``"fp16"`` or ``"bf16"``: the network computes in it; uint8 input,
            normalisation and the softmax stay FP32.
        channels_last: convert the network to channels_last memory format.
        cuda_graphs: replay CUDA graphs per input shape (CUDA only; best with fixed batch sizes).
        compile: wrap the model in ``torch.compile`` (first calls per shape are slow).
        official_input_size: crop size for official checkpoints, which do not record it (default 224).
        validate_inputs, manifest: see :class:`Engine`.
    """

    name = "torch"
    artifact_suffixes = (".pth", ".pt")
    requires = ("torch",)
    extra = "cpu"

    def __init__(
        self,
        artifact: Path | str,
        *,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        channels_last: bool = False,
        cuda_graphs: bool = False,
        compile: bool = False,
        official_input_size: int | None = None,
        validate_inputs: bool = True,
        manifest: Manifest | None = None,
    ) -> None:
        super().__init__(artifact, device=device, validate_inputs=validate_inputs, manifest=manifest)
        if precision not in _DTYPES:
            raise LibDeepfakeError(f"torch engine: precision must be one of {', '.join(_DTYPES)}, got {precision!r}")
        if cuda_graphs and self.device.type != "cuda":
            raise LibDeepfakeError("torch engine: --cuda-graphs needs a CUDA device")
        self._precision = precision
        self.channels_last = channels_last
        self.cuda_graphs = cuda_graphs
        self.compile = compile
        self.official_input_size = official_input_size
        self._size: int | None = None
        self._model: torch.nn.Module | None = None
        self._fn: Any = None

    @classmethod
    def available(cls, device: str | torch.device | None = None) -> Availability:
        if device is not None and torch.device(device).type == "cuda" and not torch.cuda.is_available():
            return Availability(False, f"torch {torch.__version__} sees no CUDA device")
        return Availability(True, f"torch {torch.__version__}")

    @property
    def input_size(self) -> int:
        if self._size is None:
            raise LibDeepfakeError("torch engine: input size is known after load()")
        return self._size

    @property
    def precision(self) -> str:
        return self._precision

    def options(self) -> dict[str, Any]:
        return {
            "channels_last": self.channels_last,
            "cuda_graphs": self.cuda_graphs,
            "compile": self.compile,
        }

    def describe(self) -> str:
        label = super().describe()
        return label if any(self.options().values()) else f"{label} eager"

    def _load(self) -> None:
        from lib_deepfake.engines.base import require_cuda
        from lib_deepfake.model.checkpoint import load_model
        from lib_deepfake.model.inference import InferenceModel

        require_cuda(self.device, "torch engine")
        net, ckpt = load_model(self.artifact, official_input_size=self.official_input_size)
        model = InferenceModel(net, ckpt.config.preprocessing, _DTYPES[self._precision]).eval().to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # not in the stubs
        self._size = ckpt.config.input_size
        if self._manifest is None:
            self._manifest = Manifest(
                format="checkpoint",
                precision=self._precision,
                io=contract_io(self._size),
                model=ckpt.config.to_dict(),
                source_checkpoint_sha256=ckpt.sha256,
                source=ckpt.source,
            )
        self._model = model
        fn: Any = model
        if self.compile:
            fn = torch.compile(model)
        if self.cuda_graphs:
            from lib_deepfake.engines._cuda_graphs import GraphCache

            eager = fn

            def run(x: torch.Tensor) -> torch.Tensor:
                with torch.inference_mode():
                    return eager(x)

            fn = GraphCache(run, self.device)
        self._fn = fn

    def _infer(self, faces: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self._fn(faces)

    def _close(self) -> None:
        self._fn = None
        self._model = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
