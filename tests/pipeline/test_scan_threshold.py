"""A scan's threshold: the model card's calibrated one by default (checkpoint or artifact manifest), a given one
wins, 0.5 without a card (official checkpoints) or without a calibrated threshold - and run.json's words for each.
CPU, no scanning."""

from __future__ import annotations

from pathlib import Path

import pytest

from lib_deepfake.errors import ArtifactMismatchError
from lib_deepfake.manifest import Manifest, contract_io
from lib_deepfake.model.card import CARD_KEY, DatasetCounts, ModelCard
from lib_deepfake.model.checkpoint import load_model, save_checkpoint
from lib_deepfake.model.testing import write_test_checkpoint
from lib_deepfake.model.threshold import ThresholdChoice
from lib_deepfake.pipeline.config import ScanConfig
from lib_deepfake.pipeline.scan_threshold import resolve_scan_threshold

SMALL = dict(backbone="mobilenet", width_mult=0.25, size=32)


def _card(threshold: ThresholdChoice | None) -> ModelCard:
    data = DatasetCounts("synth", {"train": {"real": {"videos": 4, "frames": 20}}}, synthetic=True)
    return ModelCard.build([data], {"recipe": "default"}, architecture="LIB 2 x mobilenet", threshold=threshold)


CHOICE = ThresholdChoice(0.3125, "youden", "video", "val", ["synth", "synth_sbi"], {"acc": 1.0})


def _checkpoint(path: Path, card: ModelCard | None) -> Path:
    write_test_checkpoint(path, **SMALL)
    if card is not None:
        net, ckpt = load_model(path)
        save_checkpoint(path, net, ckpt.config, **{CARD_KEY: card.to_dict()})
    return path


def test_the_model_card_threshold_is_the_default(tmp_path):
    card = _card(CHOICE)
    config, settled = resolve_scan_threshold(ScanConfig(_checkpoint(tmp_path / "m.pth", card), threshold=None))
    assert config.threshold == 0.3125 and settled.value == 0.3125
    header = settled.header()
    assert header["threshold"]["origin"] == "model" and header["threshold"]["rule"] == "youden"
    assert header["threshold_source"] == "youden on val videos of synth, synth_sbi, from the model card"
    assert header["model_card"]["demo"] is True and header["model_card"]["threshold"]["value"] == 0.3125
    assert header["model_card"]["summary"].startswith("DEMO MODEL")
    assert header["model_card"]["summary_lines"] == card.summary_lines()
    # the fingerprint (what --resume compares) is that of the number, not of "None"
    assert config.fingerprint() == ScanConfig(tmp_path / "m.pth", threshold=0.3125).fingerprint()


def test_a_given_threshold_wins_and_the_card_is_still_shown(tmp_path):
    model = _checkpoint(tmp_path / "m.pth", _card(CHOICE))
    config, settled = resolve_scan_threshold(ScanConfig(model, threshold=0.7))
    assert config.threshold == 0.7 and settled.resolved["origin"] == "option"
    assert settled.source == "given with --threshold; the model card's calibrated threshold is 0.3125 (youden on " \
                             "val videos of synth, synth_sbi)"  # fmt: skip
    assert settled.card is not None


def test_no_card_is_0_5_and_said(tmp_path):
    official = write_test_checkpoint(tmp_path / "official.pth", official=True, **SMALL)
    config, settled = resolve_scan_threshold(ScanConfig(official, threshold=None))
    assert config.threshold == 0.5 and settled.resolved["origin"] == "default"
    assert settled.source == "default: the model has no model card" and settled.card is None
    _, settled = resolve_scan_threshold(ScanConfig(_checkpoint(tmp_path / "nothr.pth", _card(None)), threshold=None))
    assert settled.value == 0.5 and settled.source == "default: the model card holds no calibrated threshold"
    assert settled.card is not None


def test_an_artifact_manifest_card_is_read(tmp_path):
    card = _card(CHOICE)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not read here")
    Manifest("onnx", "fp32", contract_io(32), {}, extra={CARD_KEY: card.to_dict()}).save(model)
    config, settled = resolve_scan_threshold(ScanConfig(model, threshold=None))
    assert config.threshold == 0.3125 and settled.resolved["origin"] == "model"
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(b"")
    assert resolve_scan_threshold(ScanConfig(bare, threshold=None))[1].source == "default: the model has no model card"


def test_a_newer_card_is_an_error(tmp_path):
    data = _card(CHOICE).to_dict()
    data["card_version"] = 99
    model = tmp_path / "m.onnx"
    Manifest("onnx", "fp32", contract_io(32), {}, extra={CARD_KEY: data}).save(model)
    with pytest.raises(ArtifactMismatchError, match="model card version 99"):
        resolve_scan_threshold(ScanConfig(model, threshold=None))
