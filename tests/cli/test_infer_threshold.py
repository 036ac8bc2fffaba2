"""lib-infer's threshold: the model card's calibrated one by default (checkpoint, or the manifest of an exported
artifact), --threshold overrides, 0.5 without a card; run.json, the console and report.html say which and where it
came from, and show the card (escaped). CPU, two tiny clips, the fixed centre-box detector."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.helpers.media import make_clip

from lib_deepfake.cli.infer import main
from lib_deepfake.model.card import CARD_KEY, DatasetCounts, ModelCard
from lib_deepfake.model.checkpoint import load_model, save_checkpoint
from lib_deepfake.model.testing import write_test_checkpoint
from lib_deepfake.model.threshold import ThresholdChoice

# Far below any score the tiny model gives: with it every scored video is "fake"; with 0.5 they are not all fake.
LOW = 1e-6


def _carded(path: Path) -> Path:
    write_test_checkpoint(path, size=32, width_mult=0.25)
    data = DatasetCounts("<b>synth</b>", {"val": {"real": {"videos": 3, "frames": 15}}}, synthetic=True)
    choice = ThresholdChoice(LOW, "eer", "video", "val", ["<b>synth</b>"], {"acc": 1.0, "eer": 0.0})
    card = ModelCard.build([data], {"recipe": "default"}, architecture="LIB 2 x resnet34", threshold=choice)
    net, ckpt = load_model(path)
    return save_checkpoint(path, net, ckpt.config, **{**ckpt.extra, CARD_KEY: card.to_dict()})


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("infer_threshold")
    videos = root / "videos"
    make_clip(videos / "a.mp4", frames=6, size=(64, 48))
    make_clip(videos / "b.mp4", frames=8, size=(64, 48))
    labels = root / "labels.csv"
    labels.write_text("path,label\nvideos/a.mp4,0\nvideos/b.mp4,1\n")
    official = write_test_checkpoint(root / "official.pth", official=True, size=32, width_mult=0.25)
    return {"videos": videos, "labels": labels, "carded": _carded(root / "carded.pth"), "official": official}


def _scan(setup, model: Path, out: Path, *extra: str):
    args = [str(setup["videos"]), "--model", str(model), "--out", str(out), "--frames", "4", "--detector", "center",
            "--workers", "1", "--labels", str(setup["labels"]), *extra]  # fmt: skip
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return res.output, json.loads((out / "run.json").read_text()), rows, (out / "report.html").read_text()


def test_the_model_card_threshold_is_used_by_default(setup, tmp_path):
    output, run, rows, page = _scan(setup, setup["carded"], tmp_path / "out")
    assert run["config"]["threshold"] == LOW
    assert run["threshold"]["origin"] == "model" and run["threshold"]["rule"] == "eer"
    assert run["threshold_source"] == "eer on val videos of <b>synth</b>, from the model card"
    assert run["verdict_rule"].startswith(f"fake if score >= {LOW}")
    assert run["model_card"]["demo"] is True and run["model_card"]["summary"].startswith("DEMO MODEL")
    assert [r["verdict"] for r in rows] == ["fake", "fake"]  # every score is above the card's threshold
    assert run["summary"]["metrics"]["accuracy"] == 0.5  # one real video called fake: at the threshold used
    assert f"threshold: {LOW} (eer on val videos of <b>synth</b>, from the model card)" in output
    assert "model card: DEMO MODEL" in output
    # the report header: threshold source and card summary, escaped
    assert "eer on val videos of &lt;b&gt;synth&lt;/b&gt;, from the model card" in page
    assert "DEMO MODEL" in page and "<b>synth</b>" not in page


def test_threshold_option_overrides_and_says_so(setup, tmp_path):
    output, run, rows, _ = _scan(setup, setup["carded"], tmp_path / "out", "--threshold", "0.999999")
    assert run["config"]["threshold"] == 0.999999 and run["threshold"]["origin"] == "option"
    assert run["threshold_source"].startswith("given with --threshold; the model card's calibrated threshold is 1e-06")
    assert [r["verdict"] for r in rows] == ["real", "real"]
    assert "threshold: 0.999999 (given with --threshold;" in output
    assert run["model_card"] is not None  # still shown: what the verdicts are worth


def test_official_checkpoint_is_judged_at_0_5_and_said(setup, tmp_path):
    output, run, _, page = _scan(setup, setup["official"], tmp_path / "out")
    assert run["config"]["threshold"] == 0.5 and run["threshold"]["origin"] == "default"
    assert run["threshold_source"] == "default: the model has no model card" and run["model_card"] is None
    assert "threshold: 0.5 (default: the model has no model card)" in output
    assert "0.5 (default: the model has no model card)" in page


def test_an_exported_artifact_carries_the_threshold_and_resume_keeps_it(setup, tmp_path):
    pytest.importorskip("onnxruntime")
    from lib_deepfake.export.onnx_export import export_onnx

    onnx = export_onnx(setup["carded"], tmp_path / "m.onnx", check_parity=False).path
    out = tmp_path / "out"
    _, run, rows, _ = _scan(setup, onnx, out)
    assert run["config"]["threshold"] == LOW and run["threshold"]["origin"] == "model"
    assert [r["verdict"] for r in rows] == ["fake", "fake"]
    # the fingerprint holds the settled number: the same scan resumes, another threshold does not mix in
    output, _, _, _ = _scan(setup, onnx, out, "--resume")
    assert "this run 0, resumed 2" in output
    args = [str(setup["videos"]), "--model", str(onnx), "--out", str(out), "--frames", "4", "--detector", "center",
            "--workers", "1", "--resume", "--threshold", "0.5"]  # fmt: skip
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1 and "other settings" in res.output
