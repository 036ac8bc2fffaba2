"""Two or more artifacts of one model timed against each other: load each, check its parity against the PyTorch FP32
model on the bundled face crops, warm it up, then time them in interleaved rounds under the benchmark protocol.
What ``lib-bench grouped`` and ``bench/openvino_int8_ab.py`` share."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Side:
    """One side: an engine on an artifact at a precision, with extra engine options."""

    engine: str
    artifact: Path
    precision: str
    options: dict[str, Any] = field(default_factory=dict)


def reference_on_face_crops(checkpoint: Path, batch: int) -> tuple[Any, Any]:
    """(uint8 face crops at the model's input size, P(fake) of the PyTorch FP32 model on them)."""
    import torch

    from lib_deepfake.engines.parity import run_batched
    from lib_deepfake.engines.registry import create_engine
    from lib_deepfake.prep.face_crops import face_crop_set

    with create_engine("torch", checkpoint) as ref:
        faces = torch.from_numpy(face_crop_set(ref.input_size).copy())
        return faces, run_batched(ref, faces, batch)


#: (faces/s per round per side, parity record per side, the protocol record)
Timings = tuple[dict[str, list[float]], dict[str, dict[str, Any]], dict[str, Any]]


def time_side_by_side(sides: dict[str, Side], faces: Any, reference: Any, *, batch: int, rounds: int, calls: int,
                      say: Callable[[str], None] | None = None) -> Timings:  # fmt: skip
    """Load every side, check parity (``compare_outputs`` with its precision's limits), then ``rounds`` interleaved
    rounds of ``calls`` timed calls at ``batch`` per side.

    Returns:
        :data:`Timings`.
    """
    from lib_deepfake.bench.protocol import current_protocol, interleaved
    from lib_deepfake.engines.parity import compare_outputs, fill_batch, run_batched
    from lib_deepfake.engines.registry import create_engine

    say = say or (lambda msg: None)
    timed = fill_batch(faces, batch)
    engines: dict[str, Any] = {}
    parity: dict[str, dict[str, Any]] = {}
    try:
        for label, side in sides.items():
            say(f"loading {label}")
            eng = create_engine(side.engine, side.artifact, device="cpu", **side.options)
            eng.load()
            engines[label] = eng
            eng.validate_inputs = False
            got = run_batched(eng, faces, batch)
            parity[label] = compare_outputs(reference, got, side.precision, engine=side.engine).to_dict()
            eng.infer(timed)  # warm-up: first-call allocations and kernel choices
        run = current_protocol().start(say)
        rates: dict[str, list[float]] = {label: [] for label in engines}
        for i in range(rounds):
            for label in interleaved(list(engines), i):
                start = time.perf_counter()
                for _ in range(calls):
                    engines[label].infer(timed)
                rates[label].append(batch * calls / (time.perf_counter() - start))
        record = run.finish()
    finally:
        for eng in engines.values():
            eng.close()
    return rates, parity, record


def median(values: list[float]) -> float:
    """The middle value (the upper one of an even count), as the tables report rates."""
    return sorted(values)[len(values) // 2]


__all__ = ["Side", "Timings", "median", "reference_on_face_crops", "time_side_by_side"]
