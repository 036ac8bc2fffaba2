"""The lib-bench CLI end to end on CPU (CliRunner): help, env, engines with JSON/markdown/PNG, usage and missing
extra errors; and lib-export's TensorRT commands failing cleanly without TensorRT."""

from __future__ import annotations

import importlib.util
import json

import pytest
from click.testing import CliRunner
from tests.engines._artifacts import contract_onnx, tiny_checkpoint

from lib_deepfake.cli.bench import main
from lib_deepfake.cli.export import main as export_main


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
    for name in ("engines", "env", "decode", "crops", "detect"):
        assert name in out.output


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
                                    "--work-dir", str(work), "--json", str(out), "-q"])  # fmt: skip
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
                                    "--batch-sizes", "1", "--work-dir", str(tmp_path), "-q"])  # fmt: skip
    assert res.exit_code == 1
    assert "Error: tensorrt is needed for building TensorRT plans" in res.output
    assert "pip install 'lib-deepfake[trt]'" in res.output and "Traceback" not in res.output


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
                                    "--frames", "1", "--iters", "1", "--warmup", "0", "--json", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text()) and out.with_suffix(".md").exists()


def test_crops_bad_frame_size():
    res = CliRunner().invoke(main, ["crops", "--frame-size", "big"])
    assert res.exit_code == 2 and "HxW" in res.output


def test_detect_subcommand(tmp_path):
    out = tmp_path / "detect.json"
    res = CliRunner().invoke(main, ["detect", "--width", "64", "--height", "48", "--batch-sizes", "1", "--frames",
                                    "2", "--repeats", "1", "--json", str(out)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())


def test_decode_help():
    res = CliRunner().invoke(main, ["decode", "--help"])
    assert res.exit_code == 0 and "--clip-dir" in res.output
