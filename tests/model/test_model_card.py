"""The model card: to/from dict, carried by a checkpoint (weights_only) and by an artifact's manifest, training
datasets described from their list files (counts, sha256, provenance), the demo card, newer versions refused,
official checkpoints without one. CPU.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from lib_deepfake.errors import ArtifactMismatchError
from lib_deepfake.manifest import Manifest, contract_io
from lib_deepfake.model.card import CARD_KEY, DEMO_USE, DatasetCounts, ModelCard, load_card
from lib_deepfake.model.threshold import ThresholdChoice
from lib_deepfake.prep.dataset import describe_lists


def _card(**kw) -> ModelCard:
    data = DatasetCounts("FF++_c23", {"train": {"real": {"videos": 720, "frames": 23040},
                                                "fake": {"videos": 2880, "frames": 92160}}},
                         {"train_real.txt": "ab" * 32}, False, {"importer": "faceforensics"})  # fmt: skip
    threshold = ThresholdChoice(0.42, "eer", "video", "val", ["FF++_c23"], {"acc": 0.91, "eer": 0.09})
    return ModelCard.build([data], {"recipe": "default", "epochs": 10, "lr": 2e-4},
                           architecture="LIB 4 x resnet34 @224", val_metrics={"video": {"auc": 0.97}},
                           threshold=threshold, test_metrics={"CelebDF": {"frame": {"auc": 0.71}}}, **kw)  # fmt: skip


def test_round_trip_and_summary():
    card = _card()
    assert not card.demo and card.limitations and "Research" in card.intended_use
    again = ModelCard.from_dict(json.loads(json.dumps(card.to_dict())))
    assert again == card
    lines = card.summary_lines()
    assert lines[0] == "Model: LIB 4 x resnet34 @224"
    assert "Trained on: FF++_c23 (train 720 real / 2880 fake videos)" in lines
    assert "Threshold: 0.42 (eer on val videos of FF++_c23)" in lines
    assert "Validation: video AUC 0.970" in lines and "Test CelebDF: frame AUC 0.710" in lines


def test_checkpoint_and_manifest_carry_the_card(tmp_path):
    torch = pytest.importorskip("torch")
    from lib_deepfake.model.checkpoint import save_checkpoint
    from lib_deepfake.model.testing import build_test_model, write_test_checkpoint

    card = _card()
    net, config = build_test_model(size=32)
    ckpt = save_checkpoint(tmp_path / "m.pth", net, config, epoch=1, **{CARD_KEY: card.to_dict()})
    assert torch.load(ckpt, weights_only=True)[CARD_KEY]["threshold"]["value"] == 0.42
    assert load_card(ckpt) == card
    artifact = tmp_path / "m.onnx"
    Manifest("onnx", "fp32", contract_io(32), config.to_dict(), extra={CARD_KEY: card.to_dict()}).save(artifact)
    assert load_card(artifact) == card
    # no card: an official checkpoint, an artifact without a manifest or with a card-less one
    assert load_card(write_test_checkpoint(tmp_path / "official.pth", official=True, size=32)) is None
    assert load_card(tmp_path / "bare.onnx") is None
    Manifest("onnx", "fp32", contract_io(32), config.to_dict()).save(tmp_path / "old.onnx")
    assert load_card(tmp_path / "old.onnx") is None


def test_newer_card_is_refused():
    data = _card().to_dict()
    data["card_version"] = 99
    with pytest.raises(ArtifactMismatchError, match="model card version 99"):
        ModelCard.from_dict(data)


def test_dataset_counts_from_list_files_and_demo_card(tmp_path):
    pytest.importorskip("cv2")
    pytest.importorskip("skimage")
    from tests.train.synthetic import make_dataset

    make_dataset(tmp_path, "synth", videos={"train": 3, "test": 2}, frames=4, size=32)
    ds = tmp_path / "synth"
    counts = DatasetCounts.from_dict(describe_lists(ds))
    assert counts.counts["train"] == {"real": {"videos": 3, "frames": 12}, "fake": {"videos": 3, "frames": 12}}
    assert counts.counts["val"] == {"real": {"videos": 0, "frames": 0}, "fake": {"videos": 0, "frames": 0}}
    assert counts.list_sha256["test_fake.txt"] == hashlib.sha256((ds / "test_fake.txt").read_bytes()).hexdigest()
    assert set(counts.list_sha256) == {"train_real.txt", "train_fake.txt", "test_real.txt", "test_fake.txt"}
    assert not counts.synthetic and not ModelCard.build([counts], {}).demo
    # what lib-prep videos writes for a corpus made by `lib-prep synth`
    (ds / "prep_summary.json").write_text(json.dumps({"provenance": {"importer": "labels.csv", "synthetic": True}}))
    demo = ModelCard.build([DatasetCounts.from_dict(describe_lists(ds)), DatasetCounts("synth_sbi")], {})
    assert demo.demo and demo.intended_use == DEMO_USE
    assert demo.summary_lines()[0].startswith("DEMO MODEL")
