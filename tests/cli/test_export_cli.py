"""lib-export to-onnx through click's CliRunner (CPU; onnx + onnxruntime)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("onnxruntime")

from lib_deepfake.cli.export import main  # noqa: E402
from lib_deepfake.model.testing import write_test_checkpoint  # noqa: E402


def test_to_onnx_cli(tmp_path: Path) -> None:
    ckpt = write_test_checkpoint(tmp_path / "official.pth", official=True, backbone="mobilenet", size=32)
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(main, ["to-onnx", str(ckpt), "-o", str(out), "--official-size", "32"])
    assert result.exit_code == 0, result.output
    assert "parity: max |dprob_fake|" in result.output
    assert out.is_file() and Path(str(out) + ".json").is_file()


def test_to_onnx_cli_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage")
    result = CliRunner().invoke(main, ["to-onnx", str(bad), "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 1
    assert result.output.startswith("Error: cannot read checkpoint") and result.output.count("\n") == 1
    result = CliRunner().invoke(main, ["to-onnx", str(bad), "-o", str(tmp_path / "m.onnx"), "--batch", "zero"])
    assert result.exit_code == 2
