"""What a training run writes beside its checkpoints (rank 0 only): ``config.json`` (the resolved config and the
environment), ``metrics.jsonl`` (one line per epoch) and TensorBoard scalars."""

from __future__ import annotations

import json
import math
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch


def json_default(value: Any) -> Any:
    """``json.dumps`` fallback: non-finite floats as null, NumPy scalars as Python numbers, the rest as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)


def environment() -> dict[str, Any]:
    """torch, Python, machine and GPU of this process, for ``config.json``."""
    info: dict[str, Any] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


class MetricsLog:
    """``metrics.jsonl``: one JSON line per epoch.

    A fresh run (``resume_epoch`` None) starts the file anew; a resumed run keeps the lines up to the epoch it
    resumes from and drops the rest (they belong to the abandoned tail).
    """

    def __init__(self, path: Path, resume_epoch: int | None) -> None:
        self.path = path
        if resume_epoch is not None and path.is_file():
            kept = []
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    if int(json.loads(line).get("epoch", 0)) <= resume_epoch:
                        kept.append(line)
                except (ValueError, AttributeError):
                    continue
            path.write_text("".join(k + "\n" for k in kept), encoding="utf-8")
        elif resume_epoch is None and path.exists():
            path.unlink()

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=json_default) + "\n")


class Scalars:
    """TensorBoard scalars when ``directory`` is given (the ``train`` extra's tensorboard); nothing otherwise."""

    def __init__(self, directory: Path | None) -> None:
        self.writer = None
        if directory is not None:
            from lib_deepfake._optional import require

            require("tensorboard", purpose="TensorBoard logging (or pass --no-tensorboard)")
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(directory))

    def add(self, prefix: str, values: dict[str, Any], step: int) -> None:
        if self.writer is None:
            return
        for key, value in values.items():
            if isinstance(value, dict):
                self.add(f"{prefix}/{key}", value, step)
            elif isinstance(value, (int, float)) and value is not None and math.isfinite(float(value)):
                self.writer.add_scalar(f"{prefix}/{key}", float(value), step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class RunLog:
    """The run's files beside the checkpoints; open it on rank 0 only.

    Args:
        out_dir: the run's output folder (created).
        resolved: the resolved configuration, written to ``config.json``.
        resume_epoch: the epoch resumed from (None for a fresh run), for ``metrics.jsonl``.
        tensorboard: also write TensorBoard scalars to ``out_dir/tensorboard``.
    """

    def __init__(self, out_dir: Path, resolved: dict[str, Any], resume_epoch: int | None, tensorboard: bool) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.json").write_text(json.dumps(resolved, indent=2) + "\n", encoding="utf-8")
        self.metrics = MetricsLog(out_dir / "metrics.jsonl", resume_epoch)
        self.scalars = Scalars(out_dir / "tensorboard" if tensorboard else None)

    def write_epoch(self, record: dict[str, Any], split: str) -> None:
        """One epoch's ``record`` (``train`` statistics, metrics on ``split``) to the metrics file and TensorBoard."""
        epoch = record["epoch"]
        train_stats = record["train"]
        self.metrics.write(record)
        self.scalars.add("train", {k: v for k, v in train_stats.items() if k != "weights"}, epoch)
        self.scalars.add("weights", train_stats["weights"], epoch)
        self.scalars.add(split, record[split], epoch)

    def close(self) -> None:
        self.scalars.close()
