"""The engine interface every classifier backend implements (PyTorch, ONNX Runtime, TensorRT).

Lifecycle: ``__init__`` (cheap: stores options, allocates nothing, imports nothing heavy) -> :meth:`Engine.load`
(allocates the model/session/context) -> :meth:`Engine.infer` any number of times -> :meth:`Engine.close`
(idempotent). ``with create_engine(...) as engine:`` loads and closes.

The contract (docs/ARCHITECTURE.md):

- input ``faces``: **uint8 [N, S, S, 3] RGB** on the engine's device, S = :attr:`Engine.input_size`;
- output ``prob_fake``: **float32 [N]** on the same device, P(fake).

On CUDA, :meth:`Engine.infer` is asynchronous with respect to the host: it enqueues work on the current torch
stream and returns; the caller (bench timer, pipeline) decides when to synchronise. The returned tensor may be a
view of a reused output buffer (CUDA-graph replay): ``.clone()`` it to keep it across calls.
"""

from __future__ import annotations

import abc
import logging
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

import torch

from lib_deepfake.errors import ContractError, LibDeepfakeError
from lib_deepfake.manifest import INPUT_NAME, OUTPUT_NAME, Manifest

logger = logging.getLogger(__name__)

CONTRACT = "faces uint8 [N, S, S, 3] RGB -> prob_fake float32 [N]"


@dataclass(frozen=True)
class Availability:
    """Whether an engine (or decoder, provider, ...) can run here and, if not, why (one line)."""

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


@dataclass(frozen=True)
class TensorSpec:
    """One engine input or output. ``shape`` entries are ``None`` where dynamic (the batch axis)."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]


@dataclass(frozen=True)
class IOSpec:
    """The engine's I/O description; ``max_batch`` is the largest batch run in one call (None = unbounded:
    larger batches are split by the engine itself where it has a limit)."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    max_batch: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def contract_iospec(size: int, max_batch: int | None = None) -> IOSpec:
    return IOSpec(
        inputs=(TensorSpec(INPUT_NAME, "uint8", (None, size, size, 3)),),
        outputs=(TensorSpec(OUTPUT_NAME, "float32", (None,)),),
        max_batch=max_batch,
    )


def check_faces(faces: Any, size: int, device: torch.device) -> torch.Tensor:
    """Validate ``faces`` against the engine contract and return it contiguous.

    Args:
        faces: expected uint8 [N, size, size, 3] RGB torch tensor on ``device``.
        size: the model's crop size S.
        device: the engine's device.

    Raises:
        ContractError: wrong type, dtype, rank, layout, size or device; the message names the contract.
    """
    where = f"expected {CONTRACT} with S={size} on {device}"
    if not isinstance(faces, torch.Tensor):
        raise ContractError(f"faces must be a torch.Tensor, got {type(faces).__name__}; {where}")
    if faces.dtype != torch.uint8:
        raise ContractError(f"faces has dtype {faces.dtype}, {where} (crops as 0..255 bytes, not normalised floats)")
    shape = tuple(faces.shape)
    if faces.dim() != 4:
        raise ContractError(f"faces has shape {list(shape)}, {where}")
    if shape[1] == 3 and shape[3] != 3:
        raise ContractError(f"faces has shape {list(shape)} (channels first?), {where}: channels last, NHWC")
    if shape[3] != 3 or shape[1] != size or shape[2] != size:
        raise ContractError(f"faces has shape {list(shape)}, {where}")
    if shape[0] == 0:
        raise ContractError(f"faces is an empty batch, {where} with N >= 1")
    if faces.device.type != device.type or (device.index is not None and faces.device.index != device.index):
        raise ContractError(f"faces is on {faces.device}, {where}: move it with .to('{device}')")
    return faces.contiguous()


def parse_device(device: str | torch.device) -> torch.device:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"`` -> torch.device (``"cuda"`` means ``cuda:0``)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise LibDeepfakeError(f"invalid device {device!r}: use cpu, cuda or cuda:N") from exc
    if dev.type not in ("cpu", "cuda"):
        raise LibDeepfakeError(f"unsupported device {device!r}: use cpu, cuda or cuda:N")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", 0)
    return dev


def require_cuda(device: torch.device, what: str) -> None:
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LibDeepfakeError(f"{what} asked for {device} but torch sees no CUDA device here; use --device cpu")


@dataclass
class EngineInfo:
    """What a result must say about the engine that produced it (recorded in bench and verify JSON)."""

    engine: str
    artifact: str
    device: str
    precision: str
    options: dict[str, Any] = field(default_factory=dict)
    runtime: dict[str, Any] = field(default_factory=dict)  # e.g. actual ORT providers, TRT version, fallback


class Engine(abc.ABC):
    """One inference backend. Subclasses implement :meth:`_load`, :meth:`_infer` and :meth:`_close`.

    Args:
        artifact: the file the engine runs (checkpoint, .onnx, .plan).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        validate_inputs: check every :meth:`infer` input against the contract (turn off in timed loops).
        manifest: the artifact's manifest; default: the sidecar ``ARTIFACT.json`` when it exists.
    """

    name: ClassVar[str]
    artifact_suffixes: ClassVar[tuple[str, ...]]
    requires: ClassVar[tuple[str, ...]] = ()  # import names, checked with find_spec (never imported)
    extra: ClassVar[str] = ""  # the lib-deepfake extra that provides ``requires``

    def __init__(
        self,
        artifact: Path | str,
        *,
        device: str | torch.device = "cpu",
        validate_inputs: bool = True,
        manifest: Manifest | None = None,
    ) -> None:
        self.artifact = Path(artifact)
        self.device = parse_device(device)
        self.validate_inputs = validate_inputs
        self._manifest = manifest
        self._loaded = False
        self._closed = False
        self.load_s: float | None = None

    # -- class-level capability -------------------------------------------------------------------------------
    @classmethod
    def available(cls, device: str | torch.device | None = None) -> Availability:
        """Can this engine run here (on ``device``)? Checks installed packages with ``find_spec`` only."""
        from lib_deepfake._optional import is_installed

        missing = [name for name in cls.requires if not is_installed(name)]
        if missing:
            return Availability(False, f"{', '.join(missing)} not installed (pip install 'lib-deepfake[{cls.extra}]')")
        return Availability(True, "")

    # -- lifecycle -----------------------------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._loaded

    def load(self) -> Engine:
        """Allocate everything (idempotent). Returns ``self`` for chaining."""
        if self._closed:
            raise LibDeepfakeError(f"{self.name} engine for {self.artifact.name} was closed; create a new one")
        if not self._loaded:
            import time

            if not self.artifact.is_file():
                raise LibDeepfakeError(f"{self.name} engine: artifact not found: {self.artifact}")
            start = time.perf_counter()
            self._load()
            self.load_s = time.perf_counter() - start
            self._loaded = True
        return self

    def close(self) -> None:
        """Free the model/session/context and device memory. Safe to call twice."""
        if self._loaded and not self._closed:
            self._close()
        self._closed = True
        self._loaded = False

    def __enter__(self) -> Engine:
        return self.load()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_loaded", False) and not getattr(self, "_closed", True):
            warnings.warn(
                f"{type(self).__name__} for {self.artifact} was loaded but never closed", ResourceWarning, stacklevel=1
            )

    # -- inference -----------------------------------------------------------------------------------------------
    def infer(self, faces: torch.Tensor) -> torch.Tensor:
        """Run the classifier.

        Args:
            faces: uint8 [N, S, S, 3] RGB crops on the engine's device (S = :attr:`input_size`), values 0..255.

        Returns:
            float32 [N] P(fake) on the same device. May be a view of a reused buffer; asynchronous on CUDA.

        Raises:
            ContractError: the input violates the contract (when ``validate_inputs``).
        """
        if not self._loaded:
            self.load()
        if self.validate_inputs:
            faces = check_faces(faces, self.input_size, self.device)
        return self._infer(faces)

    # -- description -----------------------------------------------------------------------------------------------
    @property
    def manifest(self) -> Manifest | None:
        return self._manifest

    @property
    @abc.abstractmethod
    def input_size(self) -> int:
        """The crop size S (known after :meth:`load`; engines read it from the artifact)."""

    @property
    def precision(self) -> str:
        return self._manifest.precision if self._manifest is not None else "fp32"

    @property
    def io(self) -> IOSpec:
        return contract_iospec(self.input_size)

    def info(self) -> EngineInfo:
        """Engine, artifact, device, precision, options and what the runtime actually uses."""
        return EngineInfo(self.name, str(self.artifact), str(self.device), self.precision, self.options(), {})

    def options(self) -> dict[str, Any]:
        """The opt-in options in effect (named in every result)."""
        return {}

    def describe(self) -> str:
        """A short label for tables: ``torch fp32 eager cpu``."""
        opts = [k if v is True else f"{k}={v}" for k, v in self.options().items() if v not in (False, None, "")]
        return " ".join([self.name, self.precision, *opts])

    # -- to implement -----------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def _load(self) -> None: ...

    @abc.abstractmethod
    def _infer(self, faces: torch.Tensor) -> torch.Tensor:
        """``faces`` is already validated and contiguous; must not synchronise the host on CUDA."""

    def _close(self) -> None:  # noqa: B027 - engines without resources need nothing
        pass
