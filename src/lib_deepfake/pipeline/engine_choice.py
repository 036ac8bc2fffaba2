"""Which classifier engine a scan runs, on which artifact, and why - the engine keys of run.json's ``"resolved"``.

- ``--engine NAME``: that engine on ``--model``.
- ``--engine auto`` with an ONNX model, a plan or a package, or on a GPU: the engine that runs the artifact's
  suffix (there is nothing to choose between).
- ``--engine auto`` with a checkpoint on a CPU: every (engine, precision) this machine can run for the model is
  probed - parity against the PyTorch FP32 reference on face crops, then a short timed run at the scan's batch
  size - and the fastest one whose accuracy gate passes is used (:func:`lib_deepfake.engines.auto.select_engine`).
  The candidates are the checkpoint itself (torch FP32, and BF16 where the CPU has bf16 instructions) and the
  other artifacts of the same model: those given with ``--candidate``, else those beside the checkpoint whose
  manifest names it as their source (``lib-export to-onnx``, ``quantize``, ``quantize-openvino`` write them there
  by default). The choice, its reason and every probe go into run.json.

A driver that fans a scan out to workers (Ray) resolves once and hands the workers the config from
:func:`pin_engine`, so every worker runs the same engine and none probes again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lib_deepfake.errors import ContractError, LibDeepfakeError
from lib_deepfake.pipeline.config import ScanConfig

logger = logging.getLogger(__name__)

#: (suffix, manifest precision) of the artifacts that can be CPU candidates of a checkpoint (the roles of
#: :func:`lib_deepfake.engines.auto.classify_artifacts`); an FP16 ONNX beside it is a GPU export, not one of them
_CANDIDATE_KINDS = ((".onnx", "fp32"), (".onnx", "int8"), (".xml", "int8"))


@dataclass(frozen=True)
class EngineChoice:
    """The engine a scan runs: its name, artifact and engine options, with the reason (and the probes of auto)."""

    engine: str
    artifact: Path
    reason: str
    options: dict[str, Any] = field(default_factory=dict)
    selection: dict[str, Any] | None = None

    def resolved(self) -> dict[str, Any]:
        """run.json's engine keys (``engine_selection`` only when auto probed)."""
        out: dict[str, Any] = {"engine": self.engine, "engine_choice": self.reason,
                               "engine_artifact": str(self.artifact), "engine_options": dict(self.options)}  # fmt: skip
        if self.selection is not None:
            out["engine_selection"] = self.selection
        return out


def choose_engine(config: ScanConfig) -> EngineChoice:
    """The engine for ``config`` (auto on a CPU with a checkpoint probes the candidates: seconds to minutes).

    Raises:
        LibDeepfakeError: ``--candidate`` where there is nothing to choose, artifacts of another model, or no
            candidate passed its accuracy gate.
    """
    from lib_deepfake.engines import engine_for_artifact

    if config.engine_pin is not None:
        return config.engine_pin
    if config.engine != "auto":
        if config.candidates:
            raise ContractError("--candidate is for --engine auto (it lists what auto may choose from)")
        return EngineChoice(config.engine, config.model, "explicit (--engine)")
    by_suffix = engine_for_artifact(config.model)
    if by_suffix != "torch" or config.on_cuda:
        if config.candidates:
            raise ContractError("--candidate needs --engine auto with a checkpoint (--model .pth/.pt) on a CPU: "
                                "that is where auto probes engines and precisions")  # fmt: skip
        return EngineChoice(
            by_suffix,
            config.model,
            f"auto: {config.model.suffix.lower()} artifacts run on "
            f"{by_suffix}" + (" (on a GPU auto does not probe)" if by_suffix == "torch" else ""),
        )
    return _probe_cpu(config)


def _probe_cpu(config: ScanConfig) -> EngineChoice:
    from lib_deepfake.engines.auto import select_engine

    given = bool(config.candidates)
    others = list(config.candidates) if given else sibling_artifacts(config.model)
    logger.info("--engine auto: probing the CPU candidates of %s (%s)", config.model.name,
                ", ".join(p.name for p in others) or "the checkpoint only")  # fmt: skip
    t0 = time.perf_counter()
    selection = select_engine([config.model, *others], batch=config.batch_size, threads=config.resolved_threads())
    found = "given with --candidate" if given else "found beside the checkpoint"
    record = {**selection.to_dict(), "artifacts": [str(p) for p in others], "artifacts_from": found,
              "probe_s": round(time.perf_counter() - t0, 2)}  # fmt: skip
    # Only what defines the choice (the precision) is kept: threads follow the scan (and each Ray worker's share).
    options = {k: v for k, v in selection.options.items() if k != "threads"}
    return EngineChoice(selection.engine, selection.artifact, f"auto: {selection.reason}", options, record)


def sibling_artifacts(checkpoint: Path) -> list[Path]:
    """The ONNX/OpenVINO artifacts next to ``checkpoint`` whose manifest names it as their source (by sha256).

    Raises:
        LibDeepfakeError: two artifacts of one role (e.g. two FP32 ONNX files of this checkpoint): the scan cannot
            tell which is meant; ``--candidate`` names them.
    """
    from lib_deepfake.manifest import Manifest
    from lib_deepfake.model.checkpoint import file_sha256

    sha = file_sha256(checkpoint)
    found: dict[tuple[str, str], Path] = {}
    for path in sorted(checkpoint.parent.iterdir()):
        if path.suffix not in {suffix for suffix, _ in _CANDIDATE_KINDS} or not path.is_file():
            continue
        try:
            manifest = Manifest.load(path)
        except LibDeepfakeError as exc:  # a broken manifest beside the checkpoint is not this scan's problem
            logger.warning("--engine auto: ignoring %s (%s)", path.name, str(exc).splitlines()[0])
            continue
        if manifest is None or manifest.source_checkpoint_sha256 != sha:
            continue
        role = (path.suffix, manifest.precision)
        if role not in _CANDIDATE_KINDS:
            continue
        if role in found:
            raise LibDeepfakeError(f"--engine auto: {found[role].name} and {path.name} are both {manifest.precision} "
                                   f"{path.suffix} exports of {checkpoint.name}; name the ones to try with "
                                   "--candidate")  # fmt: skip
        found[role] = path
    return list(found.values())


def pin_engine(config: ScanConfig, choice: EngineChoice) -> ScanConfig:
    """``config`` running ``choice`` without resolving again (what a driver gives its workers)."""
    return replace(config, engine_pin=choice)


__all__ = ["EngineChoice", "choose_engine", "pin_engine", "sibling_artifacts"]
