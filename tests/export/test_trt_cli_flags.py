"""``lib-export to-trt`` passes --version-compatible/--exclude-lean-runtime to the build and reports a refused
timing cache (the build itself is faked: no TensorRT or GPU here)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from lib_deepfake.cli.export import main
from lib_deepfake.export import trt_build
from lib_deepfake.export.trt_build import TrtBuildResult
from lib_deepfake.manifest import Manifest, contract_io


def _fake_build(seen: dict, cache_status: str = "new"):
    def build_engine(source, out, config, *, device, official_input_size):
        seen["config"] = config
        extra = {"tensorrt": "11.4.0.106", "gpu_name": "H200", "compute_capability": "9.0",
                 "version_compatible": config.version_compatible,
                 "timing_cache": {"path": str(config.timing_cache), "status": cache_status}}  # fmt: skip
        manifest = Manifest(format="tensorrt", precision="fp16", io=contract_io(32), model={}, extra=extra)
        return TrtBuildResult(Path(out), manifest, Path(source), 1.5)

    return build_engine


def test_version_compatible_flags_reach_the_build(tmp_path, monkeypatch):
    seen: dict = {}
    monkeypatch.setattr(trt_build, "build_engine", _fake_build(seen))
    src = tmp_path / "m.onnx"
    src.write_bytes(b"x")
    args = ["to-trt", str(src), "-o", str(tmp_path / "m.plan"), "--version-compatible", "--exclude-lean-runtime"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert seen["config"].version_compatible and seen["config"].exclude_lean_runtime
    assert "fp16, version-compatible, TensorRT 11.4.0.106" in result.output


def test_exclude_lean_runtime_alone_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(trt_build, "build_engine", _fake_build({}))
    src = tmp_path / "m.onnx"
    src.write_bytes(b"x")
    result = CliRunner().invoke(main, ["to-trt", str(src), "-o", str(tmp_path / "m.plan"), "--exclude-lean-runtime"])
    assert result.exit_code != 0 and "add --version-compatible" in result.output


def test_refused_timing_cache_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(trt_build, "build_engine", _fake_build({}, cache_status="rejected"))
    src = tmp_path / "m.onnx"
    src.write_bytes(b"x")
    cache = tmp_path / "t.cache"
    args = ["to-trt", str(src), "-o", str(tmp_path / "m.plan"), "--timing-cache", str(cache)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert f"TensorRT refused the timing cache {cache}" in result.output and f"{cache}.rejected" in result.output
