"""The model card travels from the checkpoint into every artifact's manifest: to-onnx copies it with the threshold
lib-infer will use, quantize copies it from the FP32 ONNX's manifest, an official checkpoint's artifacts say
"0.5, no card" and why, a card of a newer version stops the export before anything is written. CPU; needs onnx +
onnxruntime. (TensorRT, OpenVINO and AOTInductor go through the same two functions: test_manifest_card_entries.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")

from click.testing import CliRunner  # noqa: E402

from lib_deepfake.cli.export import main as export_cli  # noqa: E402
from lib_deepfake.errors import ArtifactMismatchError  # noqa: E402
from lib_deepfake.export.manifest_card import card_extra, card_extra_from_manifest, threshold_text  # noqa: E402
from lib_deepfake.export.onnx_export import export_onnx  # noqa: E402
from lib_deepfake.export.quantize import quantize_int8  # noqa: E402
from lib_deepfake.manifest import Manifest, contract_io  # noqa: E402
from lib_deepfake.model.card import CARD_KEY, DatasetCounts, ModelCard, load_card  # noqa: E402
from lib_deepfake.model.checkpoint import load_model, save_checkpoint  # noqa: E402
from lib_deepfake.model.testing import write_test_checkpoint  # noqa: E402
from lib_deepfake.model.threshold import ThresholdChoice  # noqa: E402

SMALL = dict(backbone="mobilenet", width_mult=0.25, size=32)


def _card(demo: bool = False) -> ModelCard:
    data = DatasetCounts("synth", {"val": {"real": {"videos": 3, "frames": 15}}}, synthetic=demo)
    threshold = ThresholdChoice(0.4242, "eer", "video", "val", ["synth"], {"acc": 0.9, "eer": 0.1})
    return ModelCard.build([data], {"recipe": "default"}, architecture="LIB 2 x mobilenet", threshold=threshold)


def _carded_checkpoint(path: Path, card: ModelCard) -> Path:
    write_test_checkpoint(path, **SMALL)
    net, ckpt = load_model(path)
    return save_checkpoint(path, net, ckpt.config, epoch=ckpt.epoch, **{**ckpt.extra, CARD_KEY: card.to_dict()})


@pytest.fixture(scope="module")
def carded(tmp_path_factory) -> tuple[Path, ModelCard]:
    card = _card(demo=True)
    return _carded_checkpoint(tmp_path_factory.mktemp("card") / "m.pth", card), card


def test_to_onnx_and_quantize_carry_the_card(carded, tmp_path):
    ckpt, card = carded
    onnx = export_onnx(ckpt, tmp_path / "m.onnx", check_parity=False)
    extra = onnx.manifest.extra
    assert extra[CARD_KEY] == card.to_dict() and "model_card_note" not in extra
    assert extra["threshold"]["value"] == 0.4242 and extra["threshold"]["origin"] == "model"
    assert extra["threshold"]["rule"] == "eer"
    assert load_card(onnx.path) == card  # what lib-infer / lib-eval read
    int8 = quantize_int8(onnx.path, tmp_path / "m.int8.onnx", check_parity=False)
    on_disk = json.loads((tmp_path / "m.int8.onnx.json").read_text())
    assert on_disk["extra"][CARD_KEY] == card.to_dict() and on_disk["extra"]["threshold"]["value"] == 0.4242
    assert load_card(int8.path) == card
    assert threshold_text(on_disk["extra"]) == "carried (a demo model); threshold 0.4242 (eer on val videos of synth)"


def test_official_checkpoint_artifacts_say_0_5_and_why(tmp_path):
    ckpt = write_test_checkpoint(tmp_path / "official.pth", official=True, **SMALL)
    onnx = export_onnx(ckpt, tmp_path / "o.onnx", official_input_size=32, check_parity=False)
    extra = onnx.manifest.extra
    assert extra[CARD_KEY] is None and load_card(onnx.path) is None
    assert extra["threshold"]["value"] == 0.5 and extra["threshold"]["origin"] == "default"
    assert extra["model_card_note"] == "official checkpoints carry no model card: threshold 0.5 (default)"
    int8 = quantize_int8(onnx.path, tmp_path / "o.int8.onnx", check_parity=False)
    assert int8.manifest.extra["model_card_note"] == extra["model_card_note"]  # the reason travels on
    assert int8.manifest.extra["threshold"]["value"] == 0.5


def test_cli_says_what_the_artifact_carries(carded, tmp_path):
    ckpt, _ = carded
    result = CliRunner().invoke(export_cli, ["to-onnx", str(ckpt), "-o", str(tmp_path / "m.onnx"), "--skip-parity"])
    assert result.exit_code == 0, result.output
    assert "model card: carried (a demo model); threshold 0.4242 (eer on val videos of synth)" in result.output
    # random weights quantize badly; the card is what is checked here
    loose = "max_dlogit=100,mean_dlogit=100,agreement=0"
    args = ["quantize", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "q.onnx"), "--parity-tol", loose]
    result = CliRunner().invoke(export_cli, args)
    assert result.exit_code == 0, result.output
    assert "model card: carried (a demo model); threshold 0.4242" in result.output


def test_a_newer_card_stops_the_export_before_writing(tmp_path):
    data = _card().to_dict()
    data["card_version"] = 99
    write_test_checkpoint(tmp_path / "m.pth", **SMALL)
    net, ckpt = load_model(tmp_path / "m.pth")
    save_checkpoint(tmp_path / "m.pth", net, ckpt.config, **{CARD_KEY: data})
    with pytest.raises(ArtifactMismatchError, match="model card version 99"):
        export_onnx(tmp_path / "m.pth", tmp_path / "m.onnx", check_parity=False)
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "m.onnx.json").exists()


def test_manifest_card_entries():
    """What every exporter puts into its manifest (to-trt and quantize-openvino from the ONNX's manifest, to-aoti
    from the checkpoint): the card, the default threshold and, without a card, why."""
    card = _card()
    assert card_extra(card.to_dict())["threshold"]["text"].startswith("0.4242 (eer on val videos of synth)")
    none = card_extra(None, source="lib-deepfake")
    assert none[CARD_KEY] is None and none["threshold"]["value"] == 0.5
    assert none["model_card_note"].startswith("no model card in the source")
    assert card_extra_from_manifest(None) == none  # an ONNX without a manifest
    m = Manifest("onnx", "fp32", contract_io(32), {}, extra=card_extra(card.to_dict()))
    assert card_extra_from_manifest(m) == card_extra(card.to_dict())
    cardless = ModelCard.build([], {}, threshold=None).to_dict()  # e.g. trained with the official recipe
    assert threshold_text(card_extra(cardless)) == "carried, without a calibrated threshold: 0.5 (default)"
    assert card_extra(cardless)["threshold"]["origin"] == "default"
