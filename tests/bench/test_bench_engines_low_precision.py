"""lib-bench engines with the openvino and aoti engines and int8/bf16 rows: which rows run here and why the others do
not (never silently dropped), int8 artifacts calibrated on face crops and reused, GFLOP/s and fraction of the
measured peak on every row. Tiny model on CPU; timing values are not asserted (shared machine)."""

from __future__ import annotations

import shutil

import pytest
from tests.engines._artifacts import contract_onnx, tiny_checkpoint

from lib_deepfake.bench.flops import model_work
from lib_deepfake.bench.report import to_markdown
from lib_deepfake.bench.runner import EngineBenchConfig, _plan_rows, run_engine_bench
from lib_deepfake.engines.cpu_caps import CpuCaps, cpu_caps

pytest.importorskip("openvino", reason="needs the openvino extra")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench-lp")
    ckpt = tiny_checkpoint(root / "tiny.pth")
    work = root / "work"
    work.mkdir()
    contract_onnx(ckpt, work / "tiny.fp32.onnx")  # reused by the runner: its manifest names this checkpoint
    return ckpt, work


def _labels(rows):
    return [f"{r.engine_name} {r.precision}" for r in rows]


def test_every_pair_runs_or_is_skipped_with_a_reason(setup):
    ckpt, work = setup
    cfg = EngineBenchConfig(model=ckpt, engines=("torch", "onnxrt", "openvino", "aoti"),
                            precisions=("fp32", "bf16", "int8", "fp16"), work_dir=work)  # fmt: skip
    rows, notes = _plan_rows(cfg)
    planned = _labels(rows)
    bf16 = cpu_caps().bf16
    expected = ["torch fp32", *(["torch bf16"] if bf16 else []), "onnxrt fp32", "onnxrt int8", "openvino fp32",
                *(["openvino bf16"] if bf16 else []), "openvino int8", "aoti fp32"]  # fmt: skip
    assert planned == expected
    skipped = {n.split(":")[0] for n in notes}
    assert skipped | {p for p in planned if p != "torch fp32"} == {
        f"{e} {p}" for e in ("torch", "onnxrt", "openvino", "aoti") for p in ("fp32", "bf16", "int8", "fp16")
    } - {"torch fp32"}
    assert "aoti fp16: skipped (AOTInductor fp16 is the GPU mode (fp32 on CPUs))" in notes
    assert "onnxrt bf16: skipped (onnxrt has no bf16 mode)" in notes
    assert "torch fp16: skipped (fp16 on a CPU is emulated (no fp16 row on CPUs))" in notes


def test_bf16_rows_need_bf16_instructions(setup, monkeypatch):
    from lib_deepfake.engines import cpu_caps as module

    monkeypatch.setattr(module, "cpu_caps", lambda: CpuCaps("Old CPU", frozenset({"avx2"})))
    ckpt, work = setup
    rows, notes = _plan_rows(EngineBenchConfig(model=ckpt, engines=("torch", "openvino"), precisions=("bf16",),
                                               work_dir=work))  # fmt: skip
    assert _labels(rows) == ["torch fp32"]
    assert notes == ["torch bf16: skipped (Old CPU has no AVX512_BF16/AMX-BF16 instructions (bf16 would be emulated))",
                     "openvino bf16: skipped (Old CPU has no AVX512_BF16/AMX-BF16 instructions (bf16 would be "
                     "emulated))"]  # fmt: skip


def test_openvino_on_cuda_is_a_note(setup):
    ckpt, work = setup
    rows, notes = _plan_rows(EngineBenchConfig(model=ckpt, engines=("openvino",), device="cuda", work_dir=work))
    assert _labels(rows) == ["torch fp32"] and notes == ["openvino fp32: skipped (the openvino engine runs on CPUs)"]


@pytest.fixture(scope="module")
def result(setup):
    pytest.importorskip("nncf", reason="needs the openvino-int8 extra")
    ckpt, work = setup
    precisions = ("fp32", "int8", *(("bf16",) if cpu_caps().bf16 else ()))
    cfg = EngineBenchConfig(model=ckpt, engines=("onnxrt", "openvino"), precisions=precisions, batch_sizes=(2,),
                            warmup=1, iters=2, rounds=2, parity_samples=4, threads=1, work_dir=work)  # fmt: skip
    return run_engine_bench(cfg, progress=lambda message: None)


def test_rows_report_gflops_against_the_measured_peak(result, setup):
    from lib_deepfake.model.checkpoint import read_checkpoint

    assert result["work"] == model_work(read_checkpoint(setup[0]).config)
    assert result["peak"]["fp32"]["gflops"] > 0 and result["peak"]["fp32"]["method"] == "torch.matmul float32"
    for row in result["results"]:
        assert row["gflops"] == pytest.approx(2 * result["work"]["macs_per_face"] * row["faces_per_s"] / 1e9)
        peak = result["peak"].get(row["precision"], {}).get("gflops")
        assert row["peak_fraction"] == (pytest.approx(row["gflops"] / peak) if peak else None)
    md = to_markdown(result)
    assert "GFLOP/s of work" in md and "Work per face" in md and "fp32 " in md


def test_int8_rows_are_calibrated_on_face_crops(result, setup):
    _, work = setup
    engines = {e["label"]: e for e in result["engines"]}
    int8 = [e for e in engines.values() if e["precision"] == "int8"]
    assert {e["engine"] for e in int8} == {"onnxrt", "openvino"}
    for e in int8:
        assert "face crops from the bundled public-domain portraits" in e["prep"]["calibration"]
        assert e["prep"]["gate"] == "the benchmark's parity check of the row" and e["parity"]["samples"] > 0
    assert (work / "tiny.int8.onnx").is_file() and (work / "tiny.int8.xml").is_file()
    ov = next(e for e in int8 if e["engine"] == "openvino")
    assert ov["runtime"]["resolved"]["INFERENCE_NUM_THREADS"] == 1


def test_int8_artifacts_are_reused(setup, result):
    from lib_deepfake.bench.engine_artifacts import prepare_artifact
    from lib_deepfake.bench.runner import _ensure_onnx

    ckpt, work = setup
    for engine in ("onnxrt", "openvino"):
        _, prep = prepare_artifact(engine, "int8", checkpoint=ckpt, work_dir=work, device="cpu", calibration=None,
                                   official_input_size=None, ensure_onnx=_ensure_onnx)  # fmt: skip
        assert prep["reused"] is True


def test_no_peak_measurement_leaves_fractions_empty(setup):
    ckpt, work = setup
    cfg = EngineBenchConfig(model=ckpt, engines=("openvino",), batch_sizes=(1,), warmup=0, iters=1, rounds=1,
                            parity_samples=2, threads=1, work_dir=work, measure_peak=False)  # fmt: skip
    res = run_engine_bench(cfg, progress=lambda message: None)
    assert res["peak"] == {} and all(r["peak_fraction"] is None and r["gflops"] > 0 for r in res["results"])


def test_cli_int8_with_a_calibration_folder(setup, tmp_path):
    from click.testing import CliRunner

    from lib_deepfake.bench.engine_artifacts import calibration_folder
    from lib_deepfake.cli.bench import main

    ckpt, work = setup
    folder, _ = calibration_folder(None, tmp_path, 32)
    (tmp_path / "work").mkdir()
    for name in ("tiny.fp32.onnx", "tiny.fp32.onnx.json"):  # the FP32 ONNX as made by the fixture (no export here)
        shutil.copy(work / name, tmp_path / "work" / name)
    res = CliRunner().invoke(main, ["engines", "--model", str(ckpt), "--engines", "onnxrt,aoti", "--precision",
                                    "int8,fp16", "--batch-sizes", "2", "--iters", "1", "--rounds", "1", "--warmup", "0",
                                    "--parity-samples", "4", "--threads", "1", "--work-dir", str(tmp_path / "work"),
                                    "--calibration", str(folder), "-q", "--quiet-wait-s", "0",
                                    "--allow-noisy"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "| onnxrt int8 provider=cpu threads=1 | int8 | 2 |" in res.output and "GFLOP/s of work" in res.output
    assert "aoti fp16: skipped (AOTInductor fp16 is the GPU mode" in res.output
    assert any(p.name.startswith("tiny.int8.onnx") for p in (tmp_path / "work").iterdir())
