"""The `make demo` summary step: it reports the scan's own figures (video AUC and the accuracy at the threshold the
scan used, with where that threshold came from), prints them and writes summary.json. Outputs are fabricated in
the layout the demo's commands write."""

from __future__ import annotations

import json
from pathlib import Path

from lib_deepfake.demo import main


def _demo_outputs(out: Path, *, with_card: bool = True) -> None:
    (out / "scan").mkdir(parents=True)
    (out / "bench").mkdir()
    (out / "train").mkdir()
    card = {"demo": True, "summary": "DEMO MODEL: trained on the synthetic demo corpus", "threshold": {"value": 0.31}}
    run = {
        "config": {"threshold": 0.31 if with_card else 0.5},
        "threshold_source": "eer on val videos of synth, synth_sbi, from the model card" if with_card
        else "default: the model has no model card",
        "model_card": card if with_card else None,
        "summary": {"files": 12, "status": {"ok": 11, "no_face": 1, "error": 0},
                    "metrics": {"auc": 0.861, "accuracy": 0.818, "fake": 6, "real": 5, "scored": 11}},
    }  # fmt: skip
    (out / "scan" / "run.json").write_text(json.dumps(run))
    bench = {"device": "cpu", "machine": {"cpu": "EPYC", "cpu_cores": 2},
             "results": [{"label": "torch fp32", "engine": "torch", "batch": 32, "ratio_vs_reference": 1.0,
                          "faces_per_s": 100.0},
                         {"label": "onnxrt fp32", "engine": "onnxrt", "batch": 32, "ratio_vs_reference": 1.7,
                          "faces_per_s": 170.0}]}  # fmt: skip
    (out / "bench" / "engines.json").write_text(json.dumps(bench))
    epochs = [{"epoch": 1, "best_auc": 0.8}, {"epoch": 2, "best_auc": 0.93}]
    (out / "train" / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in epochs))


def test_summary_reports_accuracy_at_the_scan_threshold(tmp_path, capsys):
    _demo_outputs(tmp_path)
    assert main([str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "video-level AUC 0.861, accuracy 0.818 (6 fake / 5 real scored)" in printed
    assert "threshold 0.31 (eer on val videos of synth, synth_sbi, from the model card)" in printed
    assert "best val frame AUC 0.930 (2 epochs)" in printed and "onnxrt fp32: 1.70x" in printed
    assert "a demo model" in printed
    record = json.loads((tmp_path / "summary.json").read_text())
    assert record["scan"]["video_auc"] == 0.861 and record["scan"]["accuracy"] == 0.818
    assert record["scan"]["threshold"] == 0.31 and "model card" in record["scan"]["threshold_source"]
    assert record["model_card"]["demo"] is True and record["train"]["threshold"] == {"value": 0.31}


def test_summary_without_a_card_says_so(tmp_path, capsys):
    _demo_outputs(tmp_path, with_card=False)
    assert main([str(tmp_path)]) == 0
    assert "threshold 0.5 (default: the model has no model card)" in capsys.readouterr().out
    assert json.loads((tmp_path / "summary.json").read_text())["model_card"] is None


def test_missing_outputs_are_one_line(tmp_path, capsys):
    assert main([str(tmp_path)]) == 1
    assert "run `make demo` first" in capsys.readouterr().err


def test_wall_time_and_a_noisy_ratio_are_recorded(tmp_path, capsys):
    import time

    _demo_outputs(tmp_path)
    (tmp_path / "started_at").write_text(f"{int(time.time()) - 150}\n")  # what the Makefile writes before step 1
    bench = json.loads((tmp_path / "bench" / "engines.json").read_text())
    bench.update(noisy=True, load_average={"start": [1.4, 1.1, 0.9], "end": [1.5, 1.2, 0.9]})
    (tmp_path / "bench" / "engines.json").write_text(json.dumps(bench))
    assert main([str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    record = json.loads((tmp_path / "summary.json").read_text())
    assert 149 <= record["wall_s"] < 200 and "wall time     15" in printed
    assert record["speed"]["noisy"] is True and "noisy: load" in printed
    assert record["machine"] == {"cpu": "EPYC", "cpu_cores": 2, "device": "cpu", "gpu": None}


def test_no_start_stamp_means_no_wall_time(tmp_path, capsys):
    _demo_outputs(tmp_path)
    assert main([str(tmp_path)]) == 0
    assert json.loads((tmp_path / "summary.json").read_text())["wall_s"] is None
    assert "wall time" not in capsys.readouterr().out
