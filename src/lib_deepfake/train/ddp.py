"""DistributedDataParallel plumbing for runs launched by ``torchrun`` (env:// rendezvous).

One process per device; ``--batch-size`` is the global batch and is split evenly over ranks. Only rank 0 writes
files. Evaluation shards the split with a ``DistributedSampler`` (which pads by repeating samples) and gathers
``(sample index, label, score, loss)`` on every rank, de-duplicated by sample index, so metrics equal those of a
single-process run.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

from lib_deepfake.train.errors import TrainingError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``world_size`` 1 means no process group."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def dist_info_from_env(env: dict[str, str] | None = None) -> DistInfo:
    """Read torchrun's ``RANK``/``LOCAL_RANK``/``WORLD_SIZE`` (absent: a single process)."""
    env = dict(os.environ) if env is None else env
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise TrainingError(f"malformed torchrun environment ({exc})") from None
    if world < 1 or not 0 <= rank < world:
        raise TrainingError(f"inconsistent torchrun environment: RANK={rank} WORLD_SIZE={world}")
    return DistInfo(rank=rank, local_rank=local, world_size=world)


def setup_distributed(info: DistInfo, device: str) -> torch.device:
    """Initialise the process group (NCCL on CUDA, gloo on CPU) and return this rank's device."""
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainingError(f"--device {device} asked for, but CUDA is not available")
        if info.distributed:
            dev = torch.device("cuda", info.local_rank)
        else:
            dev = torch.device(device)
        torch.cuda.set_device(dev)
    elif device == "cpu":
        dev = torch.device("cpu")
    else:
        raise TrainingError(f"--device must be cpu, cuda or cuda:N, got {device!r}")
    if info.distributed and not torch.distributed.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend, init_method="env://")
        logger.info("rank %d/%d joined the %s process group on %s", info.rank, info.world_size, backend, dev)
    return dev


def per_rank_batch(global_batch: int, world_size: int) -> int:
    if global_batch % world_size:
        raise TrainingError(f"batch size {global_batch} is not divisible by the {world_size} processes")
    per = global_batch // world_size
    if per < 2:
        raise TrainingError(
            f"batch size {global_batch} over {world_size} processes leaves {per} per rank: BatchNorm1d needs at least 2"
        )
    return per


def gather_rows(local: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """All-gather float64 rows [n_i, K] of different lengths from every rank (padded to the longest)."""
    if not info.distributed:
        return local
    dev = torch.device("cuda", torch.cuda.current_device()) if torch.distributed.get_backend() == "nccl" else "cpu"
    n = torch.tensor([local.shape[0]], device=dev)
    sizes = [torch.zeros_like(n) for _ in range(info.world_size)]
    torch.distributed.all_gather(sizes, n)
    longest = int(max(int(s) for s in sizes))
    padded = torch.zeros(longest, local.shape[1], dtype=local.dtype, device=dev)
    padded[: local.shape[0]] = local.to(dev)
    parts = [torch.empty_like(padded) for _ in range(info.world_size)]
    torch.distributed.all_gather(parts, padded)
    return torch.cat([p[: int(s)] for p, s in zip(parts, sizes)]).cpu()


def dedupe_by_index(rows: torch.Tensor) -> torch.Tensor:
    """Keep one row per sample index (column 0), sorted by it (undoes DistributedSampler's padding)."""
    idx = rows[:, 0].long()
    order = torch.argsort(idx, stable=True)
    rows, idx = rows[order], idx[order]
    keep = torch.ones_like(idx, dtype=torch.bool)
    keep[1:] = idx[1:] != idx[:-1]
    return rows[keep]


def barrier(info: DistInfo) -> None:
    if info.distributed:
        torch.distributed.barrier()


def all_reduce_mean(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean over ranks of a small float tensor (training statistics)."""
    if not info.distributed:
        return values
    dev = torch.device("cuda", torch.cuda.current_device()) if torch.distributed.get_backend() == "nccl" else "cpu"
    out = values.to(dev).clone()
    torch.distributed.all_reduce(out)
    return (out / info.world_size).cpu()


def broadcast_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank.

    DDP broadcasts buffers at the start of each forward, so after the last training step every rank holds the
    statistics of its own last batch; evaluation and the saved checkpoint must all use rank 0's.
    """
    if not info.distributed:
        return
    for buf in module.buffers():
        torch.distributed.broadcast(buf.data, src=0)


def cleanup(info: DistInfo) -> None:
    if info.distributed and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
