"""The acceptance run (``slow``, ~1 min on 2 CPU cores): a 2 x MobileNet LIB (width 0.5) at 64 px, no pretrained
weights, trained with the default recipe for 10 epochs through the CLI on 500 generated crops with a real
self-blending signal, reaches val AUC >= 0.85; the best checkpoint is then evaluated on the test split."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lib_deepfake.cli.train import main
from tests.train.synthetic import make_dataset

ARGS = [
    "--dataset",
    "synth",
    "--model",
    "mobilenet",
    "--num-libs",
    "2",
    "--width-mult",
    "0.5",
    "--size",
    "64",
    "--epochs",
    "10",
    "--batch-size",
    "16",
    "--lr",
    "3e-3",
    "--no-pretrained",
    "--threads",
    "1",
    "--seed",
    "0",
]


@pytest.mark.slow
def test_default_recipe_learns_the_blend_signal(tmp_path):
    root = make_dataset(tmp_path / "ds")  # 30/10/10 videos per class for train/val/test, 5 crops each: 500 crops
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["--dataset-root", str(root), "--output", str(out), *ARGS])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 10
    best = max(r["val"]["frame"]["auc"] for r in records)
    assert best >= 0.85, [r["val"]["frame"]["auc"] for r in records]
    args = [
        "--eval-only",
        "--resume",
        str(out / "model_best.pth"),
        "--dataset-root",
        str(root),
        "--dataset",
        "synth",
        "--split",
        "test",
        "--threads",
        "1",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["metrics"]["frame"]["auc"] > 0.6  # better than chance on 20 unseen videos
