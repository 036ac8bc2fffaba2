"""lib-export to-onnx through click's CliRunner (CPU; onnx + onnxruntime): parity on face crops printed and
recorded, --parity-tol overrides recorded, --crops, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("onnxruntime")

from lib_deepfake.cli.export import main  # noqa: E402
from lib_deepfake.model.testing import write_test_checkpoint  # noqa: E402


def test_to_onnx_cli(tmp_path: Path) -> None:
    ckpt = write_test_checkpoint(tmp_path / "official.pth", official=True, backbone="mobilenet", size=32)
    out = tmp_path / "m.onnx"
    args = ["to-onnx", str(ckpt), "-o", str(out), "--official-size", "32", "--parity-tol", "agreement=0.9"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "parity vs PyTorch FP32: max |dlogit|" in result.output and "66 face crops" in result.output
    assert out.is_file()
    parity = json.loads(Path(str(out) + ".json").read_text())["extra"]["parity"]
    assert parity["tolerance_override"] == "agreement=0.9" and parity["tolerance"]["agreement"] == 0.9
    assert parity["tolerance"]["max_dlogit"] == 1e-3  # the FP32 default, kept


def test_to_onnx_cli_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage")
    result = CliRunner().invoke(main, ["to-onnx", str(bad), "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot read checkpoint") and result.output.count("\n") == 1
    result = CliRunner().invoke(main, ["to-onnx", str(bad), "-o", str(tmp_path / "m.onnx"), "--batch", "zero"])
    assert result.exit_code == 2
    result = CliRunner().invoke(main, ["to-onnx", str(bad), "-o", str(tmp_path / "m.onnx"), "--parity-tol", "1e-4"])
    assert result.exit_code == 2 and "KEY=VALUE" in result.output


def test_every_parity_command_offers_crops_and_limits() -> None:
    from lib_deepfake.cli.bench import main as bench_main

    for group, command in ((main, "to-onnx"), (main, "quantize"), (main, "verify"), (bench_main, "engines")):
        result = CliRunner().invoke(group, [command, "--help"])
        assert result.exit_code == 0, result.output
        assert "--crops" in result.output, command
        if group is main:
            assert "--parity-tol" in result.output, command
