"""``--engine auto`` on a CPU: the fastest (engine, precision) whose accuracy gate passes for this model, and why.

Three steps, each testable on its own:

1. :func:`cpu_candidates` - the (engine, precision) pairs this machine can run with the artifacts at hand: torch
   and OpenVINO in bf16 only where the CPU has bf16 instructions (bf16 needs no calibration), int8 only with a
   calibrated INT8 artifact (``lib-export quantize`` for ONNX Runtime, ``lib-export quantize-openvino`` for
   OpenVINO), each engine only where its runtime is installed. Pairs left out are listed with the reason.
2. :func:`probe_candidates` - for each candidate, a parity check against the PyTorch FP32 reference on face crops
   (the precision's limits of :mod:`lib_deepfake.engines.parity`) and a short timed probe at the scan's batch size.
3. :func:`choose` - pure: the fastest candidate that passed, with a one-paragraph reason naming the runner-up, the
   candidates that failed their gate and the pairs that were not candidates.

:func:`select_engine` runs the three; the returned :class:`Selection` is what a scan records (``to_dict()``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lib_deepfake.errors import LibDeepfakeError

#: candidate order when two probes tie (exactly): the simpler runtime first
ORDER = (("torch", "fp32"), ("onnxrt", "fp32"), ("openvino", "fp32"), ("torch", "bf16"), ("openvino", "bf16"),
         ("onnxrt", "int8"), ("openvino", "int8"))  # fmt: skip


@dataclass(frozen=True)
class Candidate:
    """One (engine, precision) with the artifact it runs and its engine options."""

    engine: str
    precision: str
    artifact: Path
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.engine} {self.precision}"


@dataclass
class Probe:
    """What probing one candidate found: speed, parity against the reference, or the error that stopped it."""

    candidate: Candidate
    faces_per_s: float | None = None
    parity: dict[str, Any] | None = None
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and self.parity is not None and self.parity.get("passed") is True

    def to_dict(self) -> dict[str, Any]:
        return {"engine": self.candidate.engine, "precision": self.candidate.precision,
                "artifact": str(self.candidate.artifact), "faces_per_s": self.faces_per_s, "passed": self.passed,
                "parity": self.parity, "error": self.error}  # fmt: skip


@dataclass
class Selection:
    """The choice and its reason, as a scan records it."""

    engine: str
    precision: str
    artifact: Path
    options: dict[str, Any]
    reason: str
    probes: list[dict[str, Any]]
    not_candidates: list[str]
    #: the reason's first sentence (the choice and its speed; the rest lists what was rejected), for one-line output
    headline: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "artifact": str(self.artifact)}


def classify_artifacts(paths: Sequence[Path | str]) -> dict[str, Path]:
    """Sort artifacts of one model by role: ``checkpoint``, ``onnx_fp32``, ``onnx_int8`` (QDQ, ONNX Runtime) and
    ``openvino_int8`` (NNCF IR), from their suffix and manifest.

    Raises:
        LibDeepfakeError: an artifact of another model (checkpoint sha256 differs), two of one role, or an
            unknown kind.
    """
    from lib_deepfake.manifest import Manifest
    from lib_deepfake.model.checkpoint import file_sha256

    roles: dict[str, Path] = {}
    shas: dict[str, str] = {}
    for raw in paths:
        path = Path(raw)
        if path.suffix in (".pth", ".pt"):
            role, sha = "checkpoint", file_sha256(path)
        else:
            manifest = Manifest.load(path)
            if manifest is None:
                raise LibDeepfakeError(f"{path.name} has no manifest ({path.name}.json); --engine auto needs it to "
                                       "know what the artifact is")  # fmt: skip
            kinds = {(".onnx", "fp32"): "onnx_fp32", (".onnx", "int8"): "onnx_int8", (".xml", "int8"): "openvino_int8"}
            role = kinds.get((path.suffix, manifest.precision), "")
            if not role:
                raise LibDeepfakeError(f"{path.name}: a {manifest.precision} {path.suffix} is no CPU candidate for "
                                       "--engine auto (give the checkpoint, FP32 ONNX and INT8 models)")  # fmt: skip
            sha = manifest.source_checkpoint_sha256
        if role in roles:
            raise LibDeepfakeError(f"two {role} artifacts given: {roles[role].name} and {path.name}")
        roles[role], shas[role] = path, sha
    if len({s for s in shas.values() if s}) > 1:
        raise LibDeepfakeError("the artifacts come from different checkpoints: " +
                               ", ".join(f"{roles[r].name} ({s[:12]})" for r, s in shas.items()))  # fmt: skip
    return roles


def cpu_candidates(artifacts: dict[str, Path], *, bf16: bool, available: Callable[[str], Any],
                   threads: int | None = None) -> tuple[list[Candidate], list[str]]:  # fmt: skip
    """The pairs to probe and, for every other pair, why it is not one.

    Args:
        artifacts: :func:`classify_artifacts` output.
        bf16: the CPU has bf16 instructions (:attr:`~lib_deepfake.engines.cpu_caps.CpuCaps.bf16`).
        available: engine name -> ``Availability`` (truthy when the runtime can run here).
        threads: intra-op threads for ONNX Runtime and OpenVINO.
    """
    ckpt, onnx = artifacts.get("checkpoint"), artifacts.get("onnx_fp32")
    sources: dict[tuple[str, str], Path | None] = {
        ("torch", "fp32"): ckpt, ("onnxrt", "fp32"): onnx, ("openvino", "fp32"): onnx, ("torch", "bf16"): ckpt,
        ("openvino", "bf16"): onnx, ("onnxrt", "int8"): artifacts.get("onnx_int8"),
        ("openvino", "int8"): artifacts.get("openvino_int8") or artifacts.get("onnx_int8"),
    }  # fmt: skip
    needs = {"fp32": "the FP32 ONNX (lib-export to-onnx)", "bf16": "the FP32 ONNX (lib-export to-onnx)",
             "int8": "a calibrated INT8 artifact (lib-export quantize / quantize-openvino)"}  # fmt: skip
    candidates, notes = [], []
    usable: dict[str, Any] = {}
    for engine, precision in ORDER:
        label = f"{engine} {precision}"
        artifact = sources[(engine, precision)]
        if artifact is None:
            notes.append(f"{label}: no artifact ({'the checkpoint' if engine == 'torch' else needs[precision]})")
            continue
        if precision == "bf16" and not bf16:
            notes.append(f"{label}: the CPU has no bf16 instructions")
            continue
        if engine not in usable:
            usable[engine] = available(engine)
        if not usable[engine]:
            notes.append(f"{label}: {getattr(usable[engine], 'reason', 'not available')}")
            continue
        options: dict[str, Any] = {}
        if engine == "torch":
            options["precision"] = precision
        elif engine == "openvino":
            options.update(precision=precision, threads=threads)
        elif engine == "onnxrt":
            options["threads"] = threads
        candidates.append(Candidate(engine, precision, artifact, {k: v for k, v in options.items() if v is not None}))
    return candidates, notes


def choose(probes: Sequence[Probe], not_candidates: Sequence[str] = ()) -> Selection:
    """The fastest probe whose parity passed, with the reason (pure).

    Raises:
        LibDeepfakeError: no candidate passed (the message lists why each failed).
    """
    passing = [p for p in probes if p.passed and p.faces_per_s]
    failed = [p for p in probes if not p.passed]
    failed_text = "; ".join(
        f"{p.candidate.label} {'error: ' + p.error if p.error else 'failed parity: ' + _failures(p)}" for p in failed
    )
    if not passing:
        raise LibDeepfakeError(f"--engine auto: no candidate passed its accuracy gate ({failed_text or 'none probed'})")
    rank = {pair: i for i, pair in enumerate(ORDER)}
    passing.sort(key=lambda p: (-float(p.faces_per_s or 0), rank.get((p.candidate.engine, p.candidate.precision), 99)))
    best = passing[0]
    reason = f"{best.candidate.label} is the fastest candidate whose parity passed ({best.faces_per_s:.1f} faces/s"
    if len(passing) > 1:
        second = passing[1]
        reason += f", {best.faces_per_s / second.faces_per_s:.2f}x the next, {second.candidate.label} at "  # type: ignore[operator]
        reason += f"{second.faces_per_s:.1f}"
    reason += f"; {len(passing)} of {len(probes)} candidates passed)"
    headline = reason
    if failed_text:
        reason += f". Rejected: {failed_text}"
    if not_candidates:
        reason += f". Not candidates: {'; '.join(not_candidates)}"
    return Selection(best.candidate.engine, best.candidate.precision, best.candidate.artifact,
                     dict(best.candidate.options), reason + ".", [p.to_dict() for p in probes],
                     list(not_candidates), headline)  # fmt: skip


def _failures(probe: Probe) -> str:
    parity = probe.parity or {}
    return ", ".join(parity.get("failures") or []) or "no parity result"


def probe_candidates(candidates: Sequence[Candidate], reference: Any, faces: Any, *, batch: int = 16,
                     calls: int = 3, factory: Callable[..., Any] | None = None) -> list[Probe]:  # fmt: skip
    """Parity on ``faces`` against ``reference`` (P(fake) of the PyTorch FP32 model on them), then ``calls`` timed
    calls at ``batch``, for each candidate in turn (one engine loaded at a time). A candidate that fails to load or
    run is a probe with its error, not an exception."""
    import torch

    from lib_deepfake.engines.parity import compare_outputs, fill_batch, run_batched

    if factory is None:
        from lib_deepfake.engines.registry import create_engine as factory
    faces = torch.as_tensor(faces)
    timed = fill_batch(faces, batch)
    probes = []
    for cand in candidates:
        probe = Probe(cand)
        try:
            with factory(cand.engine, cand.artifact, device="cpu", **cand.options) as engine:
                got = run_batched(engine, faces, batch)
                probe.parity = compare_outputs(reference, got, cand.precision, engine=cand.engine).to_dict()
                engine.validate_inputs = False
                engine.infer(timed)  # warm-up: first-call allocations and kernel choices
                start = time.perf_counter()
                for _ in range(calls):
                    engine.infer(timed)
                probe.faces_per_s = batch * calls / (time.perf_counter() - start)
        except LibDeepfakeError as exc:
            probe.error = str(exc).splitlines()[0]
        probes.append(probe)
    return probes


def select_engine(artifacts: Sequence[Path | str], *, batch: int = 16, calls: int = 3, threads: int | None = None,
                  faces: Any = None) -> Selection:  # fmt: skip
    """Probe every CPU candidate for the given artifacts of one model and choose.

    Args:
        artifacts: the checkpoint (required: it is the reference) and any of the FP32 ONNX, INT8 QDQ ONNX and INT8
            OpenVINO IR of the same model.
        batch: the batch size the scan will use (what is timed).
        calls: timed calls per candidate (a probe, not a benchmark: enough to rank engines that differ by 10 %+).
        threads: intra-op threads of ONNX Runtime / OpenVINO.
        faces: uint8 [N, S, S, 3] crops for the parity gate (default: the bundled face-crop set).
    """
    from lib_deepfake.engines.cpu_caps import cpu_caps
    from lib_deepfake.engines.parity import run_batched
    from lib_deepfake.engines.registry import engine_availability
    from lib_deepfake.engines.torch_engine import TorchEngine

    roles = classify_artifacts(artifacts)
    if "checkpoint" not in roles:
        raise LibDeepfakeError("--engine auto needs the checkpoint: it is the FP32 reference every candidate is "
                               "checked against")  # fmt: skip
    candidates, notes = cpu_candidates(roles, bf16=cpu_caps().bf16, available=lambda n: engine_availability(n, "cpu"),
                                       threads=threads)  # fmt: skip
    with TorchEngine(roles["checkpoint"]) as ref:
        if faces is None:
            from lib_deepfake.prep.face_crops import face_crop_set

            faces = face_crop_set(ref.input_size)
        reference = run_batched(ref, faces, batch)
    return choose(probe_candidates(candidates, reference, faces, batch=batch, calls=calls), notes)
