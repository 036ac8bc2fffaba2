"""The one table of engines: name -> implementing class (imported only when asked for) and artifact suffixes.

Everything that chooses an engine (``lib-bench --engines``, ``lib-infer --engine auto``, ``lib-export verify``)
goes through this table; no other module switches on engine names or file formats.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lib_deepfake.errors import LibDeepfakeError

if TYPE_CHECKING:
    import torch

    from lib_deepfake.engines.base import Availability, Engine


@dataclass(frozen=True)
class EngineEntry:
    """One row of the table. ``suffixes`` is repeated here (and checked against the class by a test) so that
    suffix dispatch never imports an engine module."""

    target: str  # "module:Class"
    suffixes: tuple[str, ...]
    description: str


_ENGINES: dict[str, EngineEntry] = {
    "torch": EngineEntry(
        "lib_deepfake.engines.torch_engine:TorchEngine", (".pth", ".pt"), "PyTorch (the reference; CPU or CUDA)"
    ),
    "onnxrt": EngineEntry(
        "lib_deepfake.engines.ort_engine:OrtEngine", (".onnx",), "ONNX Runtime (CPU, CUDA or TensorRT provider)"
    ),
    "trt": EngineEntry(
        "lib_deepfake.engines.trt_engine:TrtEngine", (".plan", ".engine"), "TensorRT runtime (serialized plans)"
    ),
    # OpenVINO runs the contract .onnx when named explicitly (.onnx dispatches to onnxrt); .xml is its own IR.
    "openvino": EngineEntry(
        "lib_deepfake.engines.openvino_engine:OpenVinoEngine", (".xml",), "OpenVINO (CPU: fp32, bf16, int8)"
    ),
    "aoti": EngineEntry(
        "lib_deepfake.engines.aoti_engine:AotiEngine", (".pt2",), "AOTInductor package (torch; fp16 on CUDA, fp32 CPU)"
    ),
}


def register_engine(name: str, target: str, suffixes: tuple[str, ...], description: str = "") -> None:
    """Add an engine (tests, plugins). Duplicate names or suffixes raise."""
    if name in _ENGINES:
        raise LibDeepfakeError(f"an engine named {name!r} is already registered")
    taken = {s for e in _ENGINES.values() for s in e.suffixes} & set(suffixes)
    if taken:
        raise LibDeepfakeError(f"artifact suffix(es) {sorted(taken)} already belong to another engine")
    _ENGINES[name] = EngineEntry(target, tuple(suffixes), description)


def unregister_engine(name: str) -> None:
    _ENGINES.pop(name, None)


def list_engines() -> list[str]:
    """Engine names in table order (for ``click.Choice``)."""
    return list(_ENGINES)


def engine_entry(name: str) -> EngineEntry:
    try:
        return _ENGINES[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_ENGINES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise LibDeepfakeError(f"unknown engine {name!r}{hint}; choose from {', '.join(_ENGINES)}") from None


def engine_class(name: str) -> type[Engine]:
    """Import and return the class for ``name`` (this is the only place engine modules get imported)."""
    module_name, _, attr = engine_entry(name).target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def suffix_table() -> dict[str, str]:
    """artifact suffix -> engine name."""
    return {suffix: name for name, entry in _ENGINES.items() for suffix in entry.suffixes}


def engine_for_artifact(path: Path | str) -> str:
    """The engine that runs ``path``, from its suffix: .pth/.pt -> torch, .onnx -> onnxrt, .plan/.engine -> trt."""
    suffix = Path(path).suffix.lower()
    table = suffix_table()
    if suffix not in table:
        raise LibDeepfakeError(
            f"cannot tell which engine runs {Path(path).name}: known artifact suffixes are "
            + ", ".join(f"{s} ({n})" for s, n in table.items())
        )
    return table[suffix]


def engine_availability(name: str, device: str | torch.device | None = None) -> Availability:
    """``engine_class(name).available(device)``; imports only the (light) engine module, never its runtime."""
    return engine_class(name).available(device)


def create_engine(name_or_artifact: str | Path, artifact: Path | str | None = None, **options: Any) -> Engine:
    """Build an engine (cheap; call ``load()`` or use it as a context manager).

    Args:
        name_or_artifact: an engine name (``"torch"``, ``"onnxrt"``, ``"trt"``; then ``artifact`` is required) or an
            artifact path whose suffix picks the engine.
        artifact: the artifact, when the first argument is a name.
        **options: engine options (``device=``, ``precision=``, ``providers=``, ...); ``None`` values are dropped
            so CLI defaults never reach engines that lack the option.

    Raises:
        LibDeepfakeError: unknown name or suffix, or a name without an artifact.
    """
    text = str(name_or_artifact)
    if text in _ENGINES:
        name = text
        if artifact is None:
            raise LibDeepfakeError(f"engine {name!r} needs an artifact ({', '.join(_ENGINES[name].suffixes)})")
    else:
        if artifact is not None:
            engine_entry(text)  # raises "unknown engine" with a suggestion
        artifact = Path(name_or_artifact)
        name = engine_for_artifact(artifact)
    cls = engine_class(name)
    return cls(artifact, **{k: v for k, v in options.items() if v is not None})
