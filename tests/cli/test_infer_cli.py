"""lib-infer through click's CliRunner on CPU: a small scan (exit 0, outputs, auto choices printed), --resume,
refusing to mix results, exit 1 when the output cannot be written, usage errors; the option groups that build the
scan's configs (names, defaults from the configs). Also `lib-bench pipeline --help`. One scan with decode worker
processes; the rest fail before scanning. No markers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.helpers.media import make_clip

from lib_deepfake.cli.infer import main


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from lib_deepfake.model.testing import write_test_checkpoint

    root = tmp_path_factory.mktemp("infer_cli")
    model = write_test_checkpoint(root / "tiny.pth", size=32, width_mult=0.25)
    videos = root / "videos"
    make_clip(videos / "a clip.mp4", frames=6, size=(64, 48))
    make_clip(videos / "b.MKV", frames=6, size=(64, 48))
    (videos / "broken.mp4").write_bytes(b"\x00" * 100)
    labels = root / "labels.csv"
    labels.write_text("path,label\nvideos/a clip.mp4,0\nvideos/b.MKV,1\nvideos/broken.mp4,1\n")
    return {"root": root, "model": model, "videos": videos, "labels": labels}


def _args(setup, out: Path, *extra: str) -> list[str]:
    # The 'center' detector (a fixed centre box) gives every frame a face, so the scores come from the model.
    return [str(setup["videos"]), "--model", str(setup["model"]), "--out", str(out), "--frames", "4",
            "--detector", "center", "--workers", "1", "--labels", str(setup["labels"]), *extra]  # fmt: skip


def test_scan_exit_0_with_rows_auto_choices_and_auc(setup, tmp_path):
    out = tmp_path / "out"
    res = CliRunner().invoke(main, _args(setup, out))
    assert res.exit_code == 0, res.output
    # --engine auto with a checkpoint on a CPU probes the engines it can run for it (torch fp32/bf16 here)
    assert "[auto: " in res.output and "is the fastest candidate whose parity passed" in res.output
    assert "decoder: pyav [auto" in res.output
    assert "identity-max" in res.output and "video AUC:" in res.output
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["status"] for r in rows) == ["error", "ok", "ok"]
    assert (out / "report.html").is_file() and (out / "results.csv").is_file()
    run = json.loads((out / "run.json").read_text())
    assert run["summary"]["metrics"]["scored"] == 2 and run["summary"]["metrics"]["unscored"] == 1
    selection = run["resolved"]["engine_selection"]
    assert ("torch", "fp32") in {(p["engine"], p["precision"]) for p in selection["probes"]}
    assert run["resolved"]["engine"] == selection["engine"] and selection["artifacts"] == []

    again = CliRunner().invoke(main, _args(setup, out))
    assert again.exit_code == 1 and "--resume" in again.output  # never mixes two scans silently
    resumed = CliRunner().invoke(main, _args(setup, out, "--resume"))
    assert resumed.exit_code == 0, resumed.output
    assert "this run 0, resumed 3" in resumed.output
    assert len((out / "results.jsonl").read_text().splitlines()) == 3
    changed = CliRunner().invoke(main, _args(setup, out, "--resume", "--frames", "5"))
    assert changed.exit_code == 1 and "other settings" in changed.output


def test_detect_every_is_recorded_and_marks_interpolated_faces(setup, tmp_path):
    out = tmp_path / "sparse"
    res = CliRunner().invoke(main, _args(setup, out, "--detect-every", "2", "--faces", "--frames", "5"))
    assert res.exit_code == 0, res.output
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["detect_every"] == 2 and run["config"]["interpolate_iou"] == 0.5
    faces = [json.loads(line) for line in (out / "faces.jsonl").read_text().splitlines()]
    # The fixed centre box agrees with itself: frames 1 and 3 of the 5 sampled are interpolated, the rest detected.
    sources = {f["box_source"] for f in faces}
    assert sources == {"detector", "interpolated"}
    assert sum(f["box_source"] == "interpolated" for f in faces) == 2 * 2  # two videos


def test_unwritable_output_exits_1(setup, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = CliRunner().invoke(main, _args(setup, blocker / "out"))
    assert res.exit_code == 1 and "output folder" in res.output


def test_usage_errors_exit_2(setup, tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, [str(setup["videos"]), "--model", str(tmp_path / "missing.pth")])
    assert res.exit_code == 2
    res = runner.invoke(main, _args(setup, tmp_path / "o", "--sampling", "uniform:3"))
    assert res.exit_code == 2 and "either --frames or --sampling" in res.output
    res = runner.invoke(main, [str(tmp_path / "nope"), "--model", str(setup["model"]), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "input not found" in res.output


#: Every option lib-infer had before its options came from groups (names must not change).
OPTIONS = [
    "--model", "-m", "--engine", "--decoder", "--device", "--frames", "--sampling", "--out", "--threshold",
    "--batch-size", "--detect-batch", "--workers", "--timeout", "--aggregate", "--min-faces", "--top-k", "--detector",
    "--detector-model", "--detector-max-side", "--detect-every", "--interpolate-iou", "--threads", "--resume",
    "--overwrite", "--report", "--no-report", "--faces", "--no-faces", "--labels", "--all-files", "--allow-truncated",
    "--allow-cpu-fallback", "--ray", "--ray-workers", "--gpus-per-worker", "--cpus-per-worker", "--ray-retries",
    "-v", "--verbose", "-q", "--quiet", "--dedupe", "--no-dedupe", "--cache", "--candidate",
]  # fmt: skip


def _parse_scan_options(args: list[str]):
    """The ScanConfig (and leftovers) that SCAN_OPTIONS builds from ``args`` on a bare command."""
    import click

    from lib_deepfake.cli.infer import SCAN_OPTIONS

    got = {}

    @click.command()
    @SCAN_OPTIONS
    def cmd(**options):
        got["config"] = SCAN_OPTIONS.from_options(options)
        got["left"] = options

    res = CliRunner().invoke(cmd, args)
    assert res.exit_code == 0, res.output
    return got["config"], got["left"]


def test_options_keep_their_names_and_take_defaults_from_the_configs(setup):
    from lib_deepfake.pipeline.config import DecodeSettings, ScanConfig

    names = sorted(o for p in main.params for o in [*p.opts, *p.secondary_opts] if o.startswith("-"))
    assert names == sorted(OPTIONS)
    config, left = _parse_scan_options(["--model", str(setup["model"])])
    assert config == ScanConfig(setup["model"]) and left == {}  # every default is the config's own
    config, _ = _parse_scan_options(["--model", str(setup["model"]), "--frames", "8", "--timeout", "30",
                                     "--detector-max-side", "0", "--detect-batch", "4", "--allow-truncated",
                                     "--faces", "--aggregate", "topk"])  # fmt: skip
    assert config.decode == DecodeSettings(plan="uniform:8", timeout_s=30.0, allow_truncated=True)
    assert config.detection.max_side is None and config.detection.batch_size == 4
    assert config.faces_jsonl and config.aggregation == "topk"
    config, _ = _parse_scan_options(["-m", str(setup["model"]), "--sampling", "gop:4"])
    assert config.plan == "gop:4"


def test_help_of_infer_and_bench_pipeline():
    assert CliRunner().invoke(main, ["--help"]).exit_code == 0
    from lib_deepfake.cli.bench import main as bench_main

    res = CliRunner().invoke(bench_main, ["pipeline", "--help"])
    assert res.exit_code == 0 and "reference" in res.output


def test_bench_pipeline_runs_both_pipelines(setup, tmp_path):
    """Schema only (no timing asserts): both pipelines ran on the same files, rates, stages, memory, agreement."""
    from lib_deepfake.cli.bench import main as bench_main

    out = tmp_path / "bench.json"
    clip = setup["videos"] / "a clip.mp4"
    res = CliRunner().invoke(bench_main, ["pipeline", str(clip), "--model", str(setup["model"]), "--frames", "3",
                                          "--workers", "1", "--detect-every", "2", "--json", str(out), "-q",
                                          "--allow-noisy", "--quiet-wait-s", "0"])  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    for key in ("ours", "reference"):
        r = data[key]
        assert r["status"] == {"ok": 1} or r["status"] == {"no_face": 1}
        assert {"videos_per_s", "frames_per_s", "faces_per_s", "stages_s", "peak_rss"} <= set(r)
        assert r["peak_rss"]["main_mib"] > 0
    assert data["reference"]["frames_decoded"] == 6 and data["ours"]["resolved"]["decoder"] == "pyav"
    assert data["speedup_videos_per_s"] > 0 and data["machine"]["cpu_cores"] >= 1
    assert data["inputs"]["detect_every"] == 2 and data["ours"]["resolved"]["crop_backend"]
    assert data["ours"]["frames_detected"] + data["ours"]["frames_interpolated"] >= 3
    assert out.with_suffix(".md").read_text().startswith("# Pipeline benchmark")
