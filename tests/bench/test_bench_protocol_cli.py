"""The benchmark protocol through the lib-bench commands (CliRunner, monkeypatched load average and clock): every
measuring subcommand takes --allow-noisy/--quiet-wait-s; a busy machine makes a command wait, then refuse in one
line (exit 1, nothing written); --allow-noisy measures and marks the JSON and the table noisy; a quiet machine
measures at once; commands gated at their start (ray, train) refuse before doing any work. CPU, no markers."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lib_deepfake.bench import protocol
from lib_deepfake.cli.bench import main

MEASURING = ("engines", "pipeline", "decode", "crops", "detect", "ray", "train")
CROPS = ["crops", "--frame-size", "48x64", "--crop-size", "16", "--faces", "2", "--frames", "1", "--iters", "2",
         "--rounds", "2", "--warmup", "0"]  # fmt: skip


@pytest.fixture
def load(monkeypatch):
    """Set the 1-min load average seen by the protocol (2 usable cores: quiet up to 1.0); sleeping advances a fake
    clock."""
    state = {"load": 0.0, "now": 0.0, "slept": 0.0}

    def sleep(seconds: float) -> None:
        state["now"] += seconds
        state["slept"] += seconds

    monkeypatch.setattr(protocol, "load_1min", lambda: state["load"])
    monkeypatch.setattr(protocol, "usable_cores", lambda: 2)
    monkeypatch.setattr(protocol, "_sleep", sleep)
    monkeypatch.setattr(protocol, "_clock", lambda: state["now"])
    return state


@pytest.mark.parametrize("name", MEASURING)
def test_every_measuring_command_has_the_options(name):
    res = CliRunner().invoke(main, [name, "--help"])
    assert res.exit_code == 0 and "--allow-noisy" in res.output and "--quiet-wait-s" in res.output
    assert "[default: 120" in res.output


def test_busy_machine_waits_then_refuses(load, tmp_path):
    load["load"] = 1.7
    out = tmp_path / "crops.json"
    res = CliRunner().invoke(main, [*CROPS, "--quiet-wait-s", "30", "--json", str(out)])
    assert res.exit_code == 1 and "Traceback" not in res.output
    (line,) = [x for x in res.output.splitlines() if x.startswith("Error:")]
    assert "machine busy: 1-min load average 1.70 > 1 (half of 2 usable cores) after waiting 30 s" in line
    assert "--allow-noisy" in line and load["slept"] == pytest.approx(30) and not out.exists()


def test_allow_noisy_marks_json_and_table(load, tmp_path):
    load["load"] = 1.7
    out = tmp_path / "crops.json"
    res = CliRunner().invoke(main, [*CROPS, "--allow-noisy", "--quiet-wait-s", "10", "--json", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["noisy"] is True and data["protocol"]["load_1min_before"] == 1.7 and data["protocol"]["waited_s"] == 10
    assert data["speedup_stats"] is None or data["speedup_stats"]["n"] == 2
    md = out.with_suffix(".md").read_text()
    assert "NOISY" in md.splitlines()[0] and "**NOISY RESULT**" in md


def test_quiet_machine_measures_at_once(load, tmp_path):
    load["load"] = 0.3
    out = tmp_path / "detect.json"
    res = CliRunner().invoke(main, ["detect", "--detector", "center", "--width", "64", "--height", "48",
                                    "--batch-sizes", "1,2", "--max-sides", "64,32", "--frames", "2", "--repeats", "3",
                                    "--json", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["noisy"] is False and load["slept"] == 0 and data["protocol"]["allow_noisy"] is False
    assert [(r["max_side"], r["batch_size"]) for r in data["runs"]] == [(64, 1), (64, 2), (32, 1), (32, 2)]
    assert data["runs"][3]["speed_vs_first"]["n"] == 3 and data["runs"][0]["speed_vs_first"]["median"] == 1.0
    assert "NOISY" not in out.with_suffix(".md").read_text()


def test_gate_at_start_refuses_before_any_work(load, tmp_path):
    load["load"] = 5.0
    stem = tmp_path / "train-cpu-test"
    res = CliRunner().invoke(main, ["train", "--backbone", "mobilenet", "--num-libs", "2", "--width-mult", "0.25",
                                    "--size", "32", "--batch-size", "2", "--iters", "1", "--out", str(stem),
                                    "--quiet-wait-s", "0"])  # fmt: skip
    assert res.exit_code == 1 and "machine busy" in res.output and not stem.with_suffix(".json").exists()


def test_engines_ratios_per_round_and_noisy_mark(load, tmp_path):
    from tests.engines._artifacts import tiny_checkpoint

    load["load"] = 3.0
    ckpt = tiny_checkpoint(tmp_path / "tiny.pth")
    out = tmp_path / "engines.json"
    res = CliRunner().invoke(main, ["engines", "--model", str(ckpt), "--engines", "torch,onnxrt", "--batch-sizes", "2",
                                    "--iters", "3", "--rounds", "3", "--warmup", "0", "--parity-samples", "4",
                                    "--threads", "1", "--work-dir", str(tmp_path / "work"), "--json", str(out),
                                    "--no-plot", "-q", "--allow-noisy", "--quiet-wait-s", "0"])  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["noisy"] is True and data["protocol"]["load_1min_before"] == 3.0 and load["slept"] == 0
    onnxrt = [r for r in data["results"] if r["engine"] == "onnxrt"][0]
    stats = onnxrt["ratio_stats"]
    assert stats["n"] == 3 and stats["min"] <= stats["median"] == onnxrt["ratio_vs_reference"] <= stats["max"]
    md = out.with_suffix(".md").read_text()
    assert "NOISY" in md.splitlines()[0] and "3 rounds) (noisy)" in md
