"""The end of training: a model card with the threshold chosen on the validation videos in model_best.pth and
last.pth (the rule recorded, the value equal to choose_threshold on the same scores), the demo card, the official
recipe without a threshold (and why), a resumed run whose best epoch ran before the resume, --threshold-rule. CPU,
tiny generated dataset."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from lib_deepfake.cli.train import main
from lib_deepfake.model.card import CARD_KEY, DEMO_USE, load_card
from lib_deepfake.model.checkpoint import load_model
from lib_deepfake.model.threshold import choose_threshold
from lib_deepfake.train.config import make_train_config
from lib_deepfake.train.data import FrameDataset, make_loader
from lib_deepfake.train.fit import fit
from lib_deepfake.train.lists import Video, build_samples, read_split, video_of_folder
from lib_deepfake.train.loop import predict
from lib_deepfake.train.metrics import video_scores
from lib_deepfake.train.model_card import choose_video_threshold, video_groups
from lib_deepfake.train.normalize import make_normalizer
from tests.train.synthetic import make_dataset

TINY = dict(backbone="mobilenet", num_libs=2, width_mult=0.25, input_size=32, pretrained=False, batch_size=8,
            threads=1, tensorboard=False, save_every=0)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("ds"), videos={"train": 4, "val": 3, "test": 2}, frames=5, size=32)


@pytest.fixture(scope="module")
def trained(tiny_root, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("run")
    summary = fit(make_train_config("default", dataset_root=tiny_root, datasets=("synth",), output=out, epochs=2,
                                    **TINY))  # fmt: skip
    return out, summary


def _val_video_scores(root: Path, checkpoint: Path) -> tuple[np.ndarray, np.ndarray]:
    """Score ``checkpoint`` on the val split independently of the training code path: (video labels, scores)."""
    videos = read_split(root, ("synth",), "val")
    samples = build_samples(videos, 32)
    net, ckpt = load_model(checkpoint)
    loader = make_loader(FrameDataset(samples, 32, "RGB"), 5, shuffle=False, drop_last=False, workers=0,
                         pin_memory=False, seed=0, epoch=0)  # fmt: skip
    rows, _, _ = predict(net, make_normalizer(net, ckpt.config.preprocessing, torch.device("cpu")), loader,
                         device=torch.device("cpu"))  # fmt: skip
    folder = np.array([samples[i].video for i in rows[:, 0].long().numpy()])
    _, labels, scores = video_scores(folder, rows[:, 1].long().numpy(), rows[:, 2].numpy())
    return labels, scores


def test_checkpoints_carry_a_card_with_the_eer_threshold(tiny_root, trained):
    out, summary = trained
    for name in ("model_best.pth", "last.pth"):
        raw = torch.load(out / name, weights_only=True)  # still weights_only-safe with the card
        assert raw[CARD_KEY]["threshold"]["rule"] == "eer"
        card = load_card(out / name)
        assert card is not None and card.threshold is not None
        assert card.threshold.level == "video" and card.threshold.split == "val"
        assert card.threshold.datasets == ["synth"]
        assert card.recipe["threshold_rule"] == "eer" and card.recipe["recipe"] == "default"
        assert card.architecture == "LIB 2 x mobilenet width x0.25 @32 px, RGB input"
        assert card.training_data[0].name == "synth"
        assert card.training_data[0].counts["val"] == {"real": {"videos": 3, "frames": 15},
                                                       "fake": {"videos": 3, "frames": 15}}  # fmt: skip
        assert card.val_metrics["video"]["n"] == 6 and not card.demo
        labels, scores = _val_video_scores(tiny_root, out / name)
        expected = choose_threshold(labels, scores, "eer")
        assert card.threshold.value == pytest.approx(expected.value, abs=1e-6)
        assert card.threshold.metrics["eer"] == pytest.approx(expected.metrics["eer"])
    best = load_card(out / "model_best.pth")
    assert summary["threshold"] == best.threshold.to_dict() and summary["card_in"] == "model_best.pth"
    # the training state survives the re-save: last.pth still resumes
    assert torch.load(out / "last.pth", weights_only=True)["train_state"]["epoch"] == 2


def test_face_folders_of_one_video_are_one_score():
    videos = [Video("d/a.mp4/face0", 1, "d", ()), Video("d/a.mp4/face1", 1, "d", ()), Video("d/b.mp4", 0, "d", ()),
              Video("d/c.mp4/face0", 0, "d", ())]  # fmt: skip
    assert video_groups(videos).tolist() == [0, 0, 1, 2]
    assert video_of_folder("d/a.mp4/face1") == ("d/a.mp4", 1)
    # sample -> folder: two frames per folder
    video_of_sample = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    scores = [0.9, 0.7, 0.1, 0.3, 0.2, 0.2, 0.6, 0.4]
    labels = [1, 1, 1, 1, 0, 0, 0, 0]
    rows = torch.tensor([[i, y, s] for i, (y, s) in enumerate(zip(labels, scores))], dtype=torch.float64)
    choice = choose_video_threshold(rows, video_of_sample, videos, "youden", ("d",))
    # video a = mean(0.9, 0.7, 0.1, 0.3) = 0.5 (fake), b = 0.2, c = 0.5 (real): one cut cannot separate a from c
    expected = choose_threshold([1, 0, 0], [0.5, 0.2, 0.5], "youden")
    assert choice.value == expected.value and choice.metrics["n"] == 3


def test_demo_data_makes_a_demo_card_and_the_rule_is_recorded(tiny_root, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(tiny_root, root)
    # what lib-prep videos writes for a corpus made by `lib-prep synth`
    (root / "synth" / "prep_summary.json").write_text(json.dumps({"provenance": {"synthetic": True}}))
    fit(make_train_config("default", dataset_root=root, datasets=("synth",), output=tmp_path / "o", epochs=1,
                          threshold_rule="target-fpr:0.34", **TINY))  # fmt: skip
    card = load_card(tmp_path / "o" / "model_best.pth")
    assert card.demo and card.intended_use == DEMO_USE
    assert card.summary_lines()[0].startswith("DEMO MODEL")
    assert card.threshold.rule == "target-fpr:0.34" and card.threshold.metrics["fpr"] <= 0.34
    labels, scores = _val_video_scores(root, tmp_path / "o" / "model_best.pth")
    assert card.threshold.value == pytest.approx(choose_threshold(labels, scores, "target-fpr:0.34").value, abs=1e-6)


def test_official_recipe_stores_no_threshold_and_says_why(tiny_root, tmp_path):
    summary = fit(make_train_config("official", dataset_root=tiny_root, datasets=("synth",), output=tmp_path,
                                    epochs=1, balance="hyper", **TINY))  # fmt: skip
    card = load_card(tmp_path / "model_best.pth")
    assert card is not None and card.threshold is None and card.val_metrics is None
    assert "official recipe selects checkpoints on the test split" in summary["threshold_note"]
    (name, metrics), *_ = card.test_metrics.items()
    assert name == "synth" and "selected on" in metrics["note"] and metrics["frame"]["n"] == 20


def test_resumed_run_scores_a_best_checkpoint_from_before_the_resume(tiny_root, trained, tmp_path):
    out, _ = trained
    run = tmp_path / "run"
    shutil.copytree(out, run)
    raw = torch.load(run / "last.pth", weights_only=True)
    raw["train_state"]["best_auc"] = 2.0  # no epoch of the resumed run can beat it: model_best.pth stays as it was
    del raw[CARD_KEY]
    torch.save(raw, run / "last.pth")
    before = torch.load(run / "model_best.pth", weights_only=True)["state_dict"]
    fit(make_train_config("default", dataset_root=tiny_root, datasets=("synth",), output=run, epochs=3, **TINY),
        resume=run / "last.pth")  # fmt: skip
    after = torch.load(run / "model_best.pth", weights_only=True)
    assert all(torch.equal(v, after["state_dict"][k]) for k, v in before.items())
    labels, scores = _val_video_scores(tiny_root, run / "model_best.pth")
    card = load_card(run / "model_best.pth")
    assert card.threshold.value == pytest.approx(choose_threshold(labels, scores, "eer").value, abs=1e-6)
    assert load_card(run / "last.pth").recipe["checkpoint_epoch"] == 3


def test_cli_threshold_rule(tiny_root, tmp_path):
    args = ["--dataset-root", str(tiny_root), "--dataset", "synth", "--model", "mobilenet", "--num-libs", "2",
            "--width-mult", "0.25", "--size", "32", "--epochs", "1", "--batch-size", "8", "--no-pretrained",
            "--no-tensorboard", "--threads", "1", "--output", str(tmp_path / "o")]  # fmt: skip
    result = CliRunner().invoke(main, [*args, "--threshold-rule", "Youden"])
    assert result.exit_code == 0, result.output
    assert "threshold: " in result.output and "(youden on val videos of synth), in the model card" in result.output
    assert load_card(tmp_path / "o" / "model_best.pth").threshold.rule == "youden"
    bad = CliRunner().invoke(main, [*args, "--threshold-rule", "target-fpr:2"])
    assert bad.exit_code == 2 and "target-fpr needs a rate in [0, 1)" in bad.output
    assert "Traceback" not in bad.output
