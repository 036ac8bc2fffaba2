"""The lib-bench CLI end to end on CPU (CliRunner): the lazy group (help imports no command module, listed help
matches each command), env, engines with JSON/markdown/PNG, train, ray (marker ``ray``), usage and missing extra
errors; and lib-export's TensorRT commands failing cleanly without TensorRT."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner
from tests.engines._artifacts import contract_onnx, tiny_checkpoint

from lib_deepfake.cli.bench import COMMANDS, main
from lib_deepfake.cli.export import main as export_main

# The machine running the tests is often busy: measure at once and mark the result noisy instead of waiting.
QUIET_ENOUGH = ("--allow-noisy", "--quiet-wait-s", "0")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("benchcli")
    ckpt = tiny_checkpoint(root / "tiny.pth")
    work = root / "work"
    work.mkdir()
    contract_onnx(ckpt, work / "tiny.fp32.onnx")
    return ckpt, work


def test_help_lists_subcommands():
    out = CliRunner().invoke(main, ["--help"])
    assert out.exit_code == 0
    for name in ("engines", "env", "decode", "crops", "detect", "pipeline", "ray", "train", "gpu-check"):
        assert f"\n  {name} " in out.output


def test_group_help_imports_no_command_module():
    code = (
        "import sys\nfrom lib_deepfake.cli.bench import COMMANDS, main\n"
        "try:\n    main.main(['--help'], prog_name='lib-bench')\nexcept SystemExit as exc:\n    assert not exc.code\n"
        "loaded = sorted({c.target.split(':')[0] for c in COMMANDS.values()} & set(sys.modules))\n"
        "print('LOADED', loaded)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "LOADED []" in out and "gpu-check" in out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_loads_and_its_listed_help_is_its_own(name):
    command = main.get_command(click.Context(main), name)
    assert command is not None and command.name == name
    assert command.get_short_help_str(10_000) == COMMANDS[name].short_help
    res = CliRunner().invoke(main, [name, "--help"], prog_name="lib-bench")
    assert res.exit_code == 0 and f"Usage: lib-bench {name}" in res.output


def test_runs_as_a_module():
    res = subprocess.run([sys.executable, "-m", "lib_deepfake.cli.bench", "train", "--help"], capture_output=True,
                         text=True)  # fmt: skip
    assert res.returncode == 0 and "Usage: lib-bench train" in res.stdout


def test_train_writes_json_and_markdown(tmp_path):
    stem = tmp_path / "results" / "train-cpu-test"
    res = CliRunner().invoke(main, ["train", "--backbone", "mobilenet", "--num-libs", "2", "--width-mult", "0.25",
                                    "--size", "32", "--batch-size", "2", "--warmup", "0", "--iters", "2",
                                    "--threads", "1", "--machine", "ci box", "--out", str(stem), "-q",
                                    *QUIET_ENOUGH])  # fmt: skip
    assert res.exit_code == 0, res.output
    data = json.loads(stem.with_suffix(".json").read_text())
    assert json.loads(res.stdout) == data
    assert data["config"]["batch_size"] == 2 and data["config"]["iters"] == 2 and data["images_per_s"] > 0
    assert data["environment"]["machine"] == "ci box" and data["step_ms"]["p90"] >= data["step_ms"]["p50"] > 0
    md = stem.with_suffix(".md").read_text()
    assert md.startswith("# Training-step throughput (cpu, ci box)") and "| mobilenet | 2 | 0.25 | 32 | 2 |" in md


@pytest.mark.ray
def test_ray_writes_json_and_markdown(tmp_path):
    out = tmp_path / "results"
    res = CliRunner().invoke(main, ["ray", "--videos", "2", "--frames", "4", "--frame-size", "96x80", "--plan",
                                    "uniform:2", "--size", "32", "--width", "0.25", "--workers", "1",
                                    "--cpus-per-worker", "1", "--threads", "1", "--object-store-mb", "100",
                                    "--out", str(out), "--tag", "t", "-q", *QUIET_ENOUGH])  # fmt: skip
    assert res.exit_code == 0, res.output
    (result,) = out.glob("ray-*-t.json")
    data = json.loads(result.read_text())
    assert set(json.loads(res.stdout)) == {"local", "ray", "agreement"}
    assert (
        data["settings"]["videos"] == 2 and data["settings"]["frame_size"] == "96x80" and "out" not in data["settings"]
    )
    assert data["agreement"]["same_status"] is True
    assert result.with_suffix(".md").read_text().startswith("### Ray scan vs local scan on ")


def test_bad_sizes_are_usage_errors(tmp_path):
    res = CliRunner().invoke(main, ["ray", "--frame-size", "big", "--out", str(tmp_path), *QUIET_ENOUGH])
    assert res.exit_code == 2 and "expected WxH" in res.output
    res = CliRunner().invoke(main, ["train", "--iters", "0", "--out", str(tmp_path / "x"), *QUIET_ENOUGH])
    assert res.exit_code == 2


def test_env_text_and_json():
    runner = CliRunner()
    text = runner.invoke(main, ["env"])
    assert text.exit_code == 0 and "[ok] torch" in text.output and "trt" in text.output
    as_json = runner.invoke(main, ["env", "--json"])
    assert as_json.exit_code == 0 and json.loads(as_json.output)["engines"]["onnxrt"]["ok"] is True


def test_engines_writes_json_md_png(model, tmp_path):
    ckpt, work = model
    out = tmp_path / "results" / "engines-cpu-test.json"
    res = CliRunner().invoke(main, ["engines", "--model", str(ckpt), "--engines", "torch,onnxrt", "--batch-sizes",
                                    "2", "--iters", "2", "--warmup", "1", "--parity-samples", "4", "--threads", "1",
                                    "--work-dir", str(work), "--json", str(out), "-q", *QUIET_ENOUGH])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "| onnxrt fp32 provider=cpu threads=1 | 2 |" in res.output
    data = json.loads(out.read_text())
    assert [e["engine"] for e in data["engines"]] == ["torch", "onnxrt"]
    assert out.with_suffix(".md").exists() and out.with_suffix(".png").exists()


@pytest.mark.parametrize(("args", "match"), [
    (["--engines", "torch,tensorflow"], "tensorflow not in"),
    (["--batch-sizes", "1,x"], "int"),
    (["--batch-sizes", "0"], "positive"),
])  # fmt: skip
def test_usage_errors_exit_2(model, args, match):
    res = CliRunner().invoke(main, ["engines", "--model", str(model[0]), *args])
    assert res.exit_code == 2 and match in res.output


def test_trt_without_tensorrt_is_one_line(model, tmp_path):
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed here")
    ckpt, work = model
    res = CliRunner().invoke(main, ["engines", "--model", str(ckpt), "--engines", "trt", "--precision", "fp16",
                                    "--batch-sizes", "1", "--work-dir", str(tmp_path), "-q",
                                    *QUIET_ENOUGH])  # fmt: skip
    from lib_deepfake.engines.registry import engine_availability

    reason = engine_availability("trt", "cpu").reason  # no TensorRT, or (lean bindings) no CUDA device
    assert res.exit_code == 1
    assert f"Error: --engines trt: not usable here: {reason}" in res.output and "Traceback" not in res.output


def test_export_to_trt_without_tensorrt(model, tmp_path):
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed here")
    res = CliRunner().invoke(export_main, ["to-trt", str(model[0]), "-o", str(tmp_path / "m.plan")])
    assert res.exit_code == 1 and "lib-deepfake[trt]" in res.output


def test_export_to_trt_help_documents_profile():
    res = CliRunner().invoke(export_main, ["to-trt", "--help"])
    assert res.exit_code == 0
    for option in ("--min-batch", "--opt-batch", "--max-batch", "--workspace-gib", "--timing-cache",
                   "--builder-opt-level"):  # fmt: skip
        assert option in res.output


def test_crops_subcommand(tmp_path):
    out = tmp_path / "crops.json"
    res = CliRunner().invoke(main, ["crops", "--frame-size", "48x64", "--crop-size", "16", "--faces", "2",
                                    "--frames", "1", "--iters", "1", "--warmup", "0", "--json", str(out),
                                    *QUIET_ENOUGH])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text()) and out.with_suffix(".md").exists()


def test_crops_bad_frame_size():
    res = CliRunner().invoke(main, ["crops", "--frame-size", "big"])
    assert res.exit_code == 2 and "HxW" in res.output


def test_detect_subcommand(tmp_path):
    out = tmp_path / "detect.json"
    res = CliRunner().invoke(main, ["detect", "--width", "64", "--height", "48", "--batch-sizes", "1", "--frames",
                                    "2", "--repeats", "1", "--json", str(out), *QUIET_ENOUGH])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())


def test_decode_help():
    res = CliRunner().invoke(main, ["decode", "--help"])
    assert res.exit_code == 0 and "--clip-dir" in res.output
