"""``lib-eval`` end to end: a tiny LIB checkpoint (and its ONNX export) on two tiny prepared datasets in the official
layout. The written scores are the model's (recomputed here from the PNGs), and every metric in eval.json equals
scikit-learn's on those scores; the threshold comes from the model card, the option or the 0.5 default, and says
so; eval.md, the ROC PNGs and one-line errors. CPU; needs scikit-learn, matplotlib, cv2, scikit-image.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict

import numpy as np
import pytest
from click.testing import CliRunner

cv2 = pytest.importorskip("cv2")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")
pytest.importorskip("skimage")

from tests.train.synthetic import make_dataset  # noqa: E402

from lib_deepfake.cli.eval import main  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from lib_deepfake.model.card import CARD_KEY, DatasetCounts, ModelCard
    from lib_deepfake.model.checkpoint import save_checkpoint
    from lib_deepfake.model.testing import build_test_model, write_test_checkpoint
    from lib_deepfake.model.threshold import ThresholdChoice

    root = tmp_path_factory.mktemp("data")
    make_dataset(root, "A", videos={"test": 4}, frames=4, size=32, seed=1)
    make_dataset(root, "B", videos={"test": 3}, frames=5, size=48, seed=2)  # crops resized to the model's 32 px
    models = tmp_path_factory.mktemp("models")
    plain = write_test_checkpoint(models / "plain.pth", size=32)
    card = ModelCard.build([DatasetCounts("A")], {"epochs": 1},
                           threshold=ThresholdChoice(0.37, "youden", "video", "val", ["A"]))  # fmt: skip
    net, config = build_test_model(size=32)
    carded = save_checkpoint(models / "carded.pth", net, config, epoch=1, **{CARD_KEY: card.to_dict()})
    return root, plain, carded


def _invoke(args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def _read_csv(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def _eer(labels, scores):
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    i = int(np.nanargmin(np.abs(1 - tpr - fpr)))
    return (fpr[i] + 1 - tpr[i]) / 2


def test_metrics_equal_sklearn_on_the_written_scores(setup, tmp_path):
    from sklearn.metrics import average_precision_score, roc_auc_score

    root, plain, _ = setup
    out = tmp_path / "eval"
    r = _invoke(["--model", plain, "--dataset-root", root, "--dataset", "A,B", "--out", out, "--batch-size", "7"])
    assert "threshold: 0.5 (default: the model carries no calibrated threshold)" in r.output
    report = json.loads((out / "eval.json").read_text())
    assert [d["dataset"] for d in report["datasets"]] == ["A", "B"]
    assert report["threshold"]["origin"] == "default" and report["model"]["card"] is None
    frames = _read_csv(out / "frame_scores.csv")
    videos = _read_csv(out / "video_scores.csv")
    for d, (n_videos, n_frames) in zip(report["datasets"], [(8, 32), (6, 30)]):
        name = d["dataset"]
        rows = [f for f in frames if f["dataset"] == name]
        y = np.array([int(f["label"]) for f in rows])
        s = np.array([float(f["score"]) for f in rows])
        assert (d["videos"], d["frames"], d["videos_real"], d["videos_fake"]) == (n_videos, n_frames, n_videos // 2,
                                                                                  n_videos // 2)  # fmt: skip
        assert d["frame"]["auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-6)
        assert d["frame"]["ap"] == pytest.approx(average_precision_score(y, s), abs=1e-6)
        assert d["frame"]["eer"] == pytest.approx(_eer(y, s), abs=1e-6)
        assert d["frame"]["at_threshold"]["acc"] == pytest.approx(np.mean((s >= 0.5) == (y == 1)))
        by_video = defaultdict(list)
        for f in rows:
            by_video[f["folder"]].append(float(f["score"]))
        vrows = {v["video"]: v for v in videos if v["dataset"] == name}
        assert sorted(vrows) == sorted(by_video)
        vy = np.array([int(vrows[k]["label"]) for k in sorted(by_video)])
        vs = np.array([np.mean(by_video[k]) for k in sorted(by_video)])
        np.testing.assert_allclose([float(vrows[k]["score_mean"]) for k in sorted(by_video)], vs, atol=2e-6)
        assert d["video_mean"]["auc"] == pytest.approx(roc_auc_score(vy, vs), abs=1e-6)
        # one face folder per video: identity-max is the mean of that identity's crops
        assert d["video_identity_max"]["auc"] == pytest.approx(d["video_mean"]["auc"])
        assert d["video_identity_max"]["at_threshold"]["acc"] == pytest.approx(np.mean((vs >= 0.5) == (vy == 1)))
    assert (out / "roc_A.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (out / "roc_B.png").is_file()
    md = (out / "eval.md").read_text()
    assert "| plain.pth | unknown (no model card) | " in md and "![ROC A](roc_A.png)" in md


def test_scores_are_the_models_own(setup, tmp_path):
    import torch

    from lib_deepfake.engines import create_engine

    root, plain, _ = setup
    out = tmp_path / "eval"
    _invoke(["--model", plain, "--dataset-root", root, "--dataset", "B", "--out", out, "--frames-per-video", "2"])
    rows = _read_csv(out / "frame_scores.csv")
    assert len(rows) == 12  # 2 of the 5 crops of each of the 6 videos
    faces = [cv2.resize(cv2.imread(r["frame"])[..., ::-1], (32, 32), interpolation=cv2.INTER_LINEAR) for r in rows]
    with create_engine(plain) as engine:
        expected = engine.infer(torch.from_numpy(np.ascontiguousarray(np.stack(faces)))).numpy()
    np.testing.assert_allclose([float(r["score"]) for r in rows], expected, atol=2e-6)


def test_onnx_artifact_gives_the_same_table(setup, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from lib_deepfake.export.onnx_export import export_onnx

    root, plain, _ = setup
    onnx = export_onnx(plain, tmp_path / "plain.onnx").path
    _invoke(["--model", plain, "--dataset-root", root, "--dataset", "A", "--out", tmp_path / "t"])
    _invoke(["--model", onnx, "--dataset-root", root, "--dataset", "A", "--out", tmp_path / "o", "--threads", "1"])
    torch_report = json.loads((tmp_path / "t" / "eval.json").read_text())
    onnx_report = json.loads((tmp_path / "o" / "eval.json").read_text())
    assert onnx_report["model"]["engine"].startswith("onnxrt")
    for level in ("frame", "video_mean", "video_identity_max"):
        a, b = torch_report["datasets"][0][level], onnx_report["datasets"][0][level]
        assert a["auc"] == pytest.approx(b["auc"], abs=1e-3)


def test_threshold_from_card_option_and_errors(setup, tmp_path):
    root, plain, carded = setup
    out = tmp_path / "eval"
    r = _invoke(["--model", carded, "--dataset-root", root, "--dataset", "A", "--out", out])
    report = json.loads((out / "eval.json").read_text())
    assert report["threshold"]["value"] == 0.37 and report["threshold"]["origin"] == "model"
    assert "youden on val videos of A" in r.output
    assert report["datasets"][0]["frame"]["at_threshold"]["threshold"] == 0.37
    assert report["model"]["card"]["training_data"][0]["name"] == "A"
    assert "| carded.pth | A | " in (out / "eval.md").read_text()
    _invoke(["--model", carded, "--dataset-root", root, "--dataset", "A", "--out", out, "--threshold", "0.6"])
    assert json.loads((out / "eval.json").read_text())["threshold"]["origin"] == "option"
    for args, message in (
        (["--dataset", "A,nope"], "dataset folder"),
        (["--dataset", "A,A"], "named twice"),
        (["--dataset", "A", "--split", "val"], "missing list file"),
        (["--dataset", "A", "--precision", "fp16", "--engine", "onnxrt"], "--precision applies to checkpoints"),
    ):
        r = CliRunner().invoke(main, ["--model", str(plain), "--dataset-root", str(root), "--out", str(out), *args])
        assert r.exit_code == 1 and message in r.output and len(r.output.strip().splitlines()) == 1, r.output


def test_help_is_light():
    from tests.test_import_hygiene import _loaded_after

    code = """
        from lib_deepfake.cli.eval import main
        try:
            main.main(["--help"], standalone_mode=False)
        except SystemExit:
            pass
    """
    assert _loaded_after(code) == []
