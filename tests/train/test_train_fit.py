"""Training mechanics end to end on a tiny generated dataset (CPU, ~40 crops at 32 px, 2 epochs):
metrics file, checkpoints (weights_only, lib-export loadable), exact resume, --eval-only on an official checkpoint,
the CLI and its error messages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from lib_deepfake.cli.train import main
from lib_deepfake.model import LIBConfig, Preprocessing, create_lib, load_model
from lib_deepfake.train.config import make_train_config
from lib_deepfake.train.fit import fit
from tests.train.synthetic import make_dataset

TINY = dict(
    backbone="mobilenet",
    num_libs=2,
    width_mult=0.25,
    input_size=32,
    pretrained=False,
    batch_size=8,
    threads=1,
    tensorboard=False,
    save_every=1,
)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("ds"), videos={"train": 4, "val": 2, "test": 2}, frames=5, size=32)


@pytest.fixture(scope="module")
def two_epochs(tiny_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    fit(make_train_config("default", dataset_root=tiny_root, datasets=("synth",), output=out, epochs=2, **TINY))
    return out


def test_outputs_and_metrics_file(two_epochs):
    names = {p.name for p in two_epochs.iterdir()}
    assert {"config.json", "metrics.jsonl", "last.pth", "model_best.pth", "model_1.pth", "model_2.pth"} <= names
    lines = [json.loads(line) for line in (two_epochs / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]
    rec = lines[-1]
    assert {"loss", "ce", "gil", "lil", "images_per_s", "lr", "skipped", "weights"} <= set(rec["train"])
    assert rec["train"]["images"] == 40  # 4+4 videos x 5 frames, drop_last with batch 8
    assert {"auc", "acc", "logloss", "ap", "eer"} <= set(rec["val"]["frame"])
    assert rec["val"]["video"]["n"] == 4 and rec["val"]["frame"]["n"] == 20
    resolved = json.loads((two_epochs / "config.json").read_text())
    assert resolved["train"]["recipe"] == "default" and resolved["model"]["backbone"] == "mobilenet"


def test_checkpoints_are_weights_only_and_exportable(two_epochs):
    for name in ("last.pth", "model_best.pth"):
        raw = torch.load(two_epochs / name, weights_only=True)
        assert raw["format"] == "lib-deepfake-checkpoint"
        net, ckpt = load_model(two_epochs / name)
        assert ckpt.config.preprocessing.channel_order == "RGB" and ckpt.config.input_size == 32
    state = torch.load(two_epochs / "last.pth", weights_only=True)["train_state"]
    assert state["epoch"] == 2 and "params" in state["balancer"] and state["optimizer"]["state"]


def test_resume_continues_the_same_run(tiny_root, two_epochs, tmp_path):
    cfg = make_train_config("default", dataset_root=tiny_root, datasets=("synth",), output=tmp_path, epochs=2, **TINY)
    shutil.copy(two_epochs / "metrics.jsonl", tmp_path / "metrics.jsonl")
    fit(cfg, resume=two_epochs / "model_1.pth")
    a = torch.load(two_epochs / "last.pth", weights_only=True)
    b = torch.load(tmp_path / "last.pth", weights_only=True)
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    assert torch.equal(a["train_state"]["balancer"]["params"], b["train_state"]["balancer"]["params"])
    assert a["train_state"]["step"] == b["train_state"]["step"]
    epochs = [json.loads(x)["epoch"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]  # the abandoned epoch-2 line was replaced, not duplicated


def test_official_recipe_runs(tiny_root, tmp_path):
    kw = {**TINY, "save_every": 0}
    out = fit(
        make_train_config(
            "official", dataset_root=tiny_root, datasets=("synth",), output=tmp_path, epochs=1, balance="hyper", **kw
        )
    )
    rec = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert "test" in rec and "val" not in rec  # the official code selects on the test split
    assert out["epochs"] == 1
    ckpt = torch.load(tmp_path / "last.pth", weights_only=True)
    assert ckpt["config"]["preprocessing"]["channel_order"] == "BGR"


def _official_checkpoint(path: Path) -> Path:
    net = create_lib(LIBConfig("mobilenet", num_libs=2, width_mult=0.25, preprocessing=Preprocessing(32)))
    torch.save({"state_dict": {"module." + k: v for k, v in net.state_dict().items()}, "epoch": 3}, path)
    return path


def test_cli_eval_only_on_official_checkpoint(tiny_root, tmp_path):
    ckpt = _official_checkpoint(tmp_path / "official.pth")
    args = [
        "--eval-only",
        "--resume",
        str(ckpt),
        "--dataset-root",
        str(tiny_root),
        "--dataset",
        "synth",
        "--size",
        "32",
        "--split",
        "test",
        "--json",
        str(tmp_path / "r.json"),
        "--threads",
        "1",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["source"] == "official" and data["epoch"] == 3 and data["split"] == "test"
    assert data["model"]["preprocessing"]["channel_order"] == "BGR"
    assert data["metrics"]["frame"]["n"] == 20 and data["metrics"]["video"]["n"] == 4
    assert 0.0 <= data["metrics"]["frame"]["auc"] <= 1.0


def test_cli_trains_and_evaluates_its_own_checkpoint(tiny_root, tmp_path):
    out = tmp_path / "run"
    args = [
        "--dataset-root",
        str(tiny_root),
        "--dataset",
        "synth",
        "--model",
        "mobilenet",
        "--num-libs",
        "2",
        "--width-mult",
        "0.25",
        "--size",
        "32",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--output",
        str(out),
        "--no-pretrained",
        "--no-tensorboard",
        "--threads",
        "1",
        "--balance",
        "hyper",
        "--scales",
        "[1,2,10]",
        "--no-mixup",
        "--frames-per-video",
        "3",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "best val AUC" in result.output
    cfg = json.loads((out / "config.json").read_text())["train"]
    assert cfg["scales"] == [1.0, 2.0, 10.0] and cfg["mixup"] is False and cfg["frames_per_video"] == 3
    args = ["--eval-only", "--resume", str(out / "model_best.pth"), "--dataset-root", str(tiny_root)]
    result = CliRunner().invoke(main, [*args, "--dataset", "synth", "--split", "val", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["source"] == "lib-deepfake"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dataset", "nope"], "dataset folder"),
        (["--dataset", "synth", "--scales", "1,2"], "expected three numbers"),
        (["--dataset", "synth", "--eval-only"], "--eval-only needs --resume"),
    ],
)
def test_cli_errors_are_one_line(tiny_root, tmp_path, extra, message):
    args = ["--dataset-root", str(tiny_root), "--output", str(tmp_path), "--no-pretrained", *extra]
    result = CliRunner().invoke(main, args)
    assert result.exit_code in (1, 2)
    assert message in result.output
    assert "Traceback" not in result.output


def test_cli_single_class_val(tiny_root, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(tiny_root, root)
    # The real list names fake folders with label 1: the split has one class and AUC cannot select a model.
    (root / "synth" / "val_real.txt").write_text((root / "synth" / "val_fake.txt").read_text())
    args = ["--dataset-root", str(root), "--dataset", "synth", "--output", str(tmp_path / "o"), "--no-pretrained"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "the val split has only fake videos: AUC (the selection metric) is undefined" in result.output


def test_grad_accum_amp_and_channels_last_paths(tiny_root, tmp_path):
    kw = {**TINY, "save_every": 0, "batch_size": 4}
    cfg = make_train_config(
        "default",
        dataset_root=tiny_root,
        datasets=("synth",),
        output=tmp_path,
        epochs=1,
        grad_accum=2,
        amp="bf16",
        channels_last=True,
        frames_per_video=2,
        **kw,
    )
    fit(cfg)
    state = torch.load(tmp_path / "last.pth", weights_only=True)["train_state"]
    assert state["step"] == 2  # 8 videos x 2 frames = 16 frames = 4 batches of 4 -> 2 optimiser steps
    rec = json.loads((tmp_path / "metrics.jsonl").read_text())
    assert rec["train"]["images"] == 16 and rec["val"]["frame"]["auc"] is not None
