"""DistributedDataParallel plumbing: the pure pieces (CPU, fast) and a 2-process gloo run (``slow``).

The slow test trains one epoch with two CPU processes (gloo, env:// as torchrun sets it) and checks that only
rank 0 wrote files and that the gathered, de-duplicated evaluation equals a single-process evaluation of the same
checkpoint.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch

from lib_deepfake.train.ddp import DistInfo, dedupe_by_index, dist_info_from_env, gather_rows, per_rank_batch
from lib_deepfake.train.errors import TrainingError


def test_dist_info_from_env():
    assert dist_info_from_env({}) == DistInfo(0, 0, 1)
    info = dist_info_from_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"})
    assert (info.rank, info.local_rank, info.world_size, info.is_main, info.distributed) == (3, 1, 4, False, True)
    with pytest.raises(TrainingError, match="inconsistent"):
        dist_info_from_env({"RANK": "4", "WORLD_SIZE": "4"})


def test_per_rank_batch():
    assert per_rank_batch(256, 4) == 64
    with pytest.raises(TrainingError, match="not divisible"):
        per_rank_batch(10, 4)
    with pytest.raises(TrainingError, match="BatchNorm1d"):
        per_rank_batch(4, 4)


def test_dedupe_undoes_sampler_padding():
    rows = torch.tensor([[2, 1, 0.2], [0, 0, 0.5], [1, 1, 0.9], [0, 0, 0.5]], dtype=torch.float64)
    out = dedupe_by_index(rows)
    assert out[:, 0].tolist() == [0, 1, 2]
    assert torch.equal(gather_rows(rows, DistInfo()), rows)  # no process group: unchanged


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, root: str, out: str) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    from lib_deepfake.train.config import make_train_config
    from lib_deepfake.train.fit import fit

    cfg = make_train_config(
        "default",
        dataset_root=Path(root),
        datasets=("synth",),
        output=Path(out),
        epochs=1,
        backbone="mobilenet",
        num_libs=2,
        width_mult=0.25,
        input_size=32,
        pretrained=False,
        batch_size=8,
        threads=1,
        tensorboard=False,
    )
    fit(cfg)


@pytest.mark.slow
def test_two_process_gloo_training(tmp_path):
    from lib_deepfake.train.evaluate import evaluate_checkpoint
    from tests.train.synthetic import make_dataset

    root = make_dataset(tmp_path / "ds", videos={"train": 4, "val": 3, "test": 1}, frames=5, size=32)
    out = tmp_path / "run"
    torch.multiprocessing.spawn(_worker, args=(2, _free_port(), str(root), str(out)), nprocs=2, join=True)
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert record["train"]["images"] == 40  # both ranks' shares, summed
    assert record["val"]["frame"]["n"] == 30  # 30 frames, padding removed
    single = evaluate_checkpoint(out / "last.pth", root, ("synth",), "val", frames_per_video=32)
    assert single["metrics"]["frame"]["auc"] == pytest.approx(record["val"]["frame"]["auc"], abs=1e-6)
    # the end of training ran once (rank 0) on the gathered scores: both checkpoints carry a calibrated card
    from lib_deepfake.model.card import load_card

    for name in ("last.pth", "model_best.pth"):
        card = load_card(out / name)
        assert card is not None and card.threshold is not None and card.threshold.metrics["n"] == 6
