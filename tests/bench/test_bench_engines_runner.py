"""lib-bench engines on CPU with a tiny model: result schema, parity before timing, reference ratio, interleaved
rounds, machine description, markdown/PNG views. Timing values are not asserted (shared machine)."""

from __future__ import annotations

import json

import pytest
from tests.engines._artifacts import contract_onnx, tiny_checkpoint

from lib_deepfake.bench.report import to_markdown, write_results
from lib_deepfake.bench.runner import REFERENCE_LABEL, EngineBenchConfig, run_engine_bench
from lib_deepfake.errors import LibDeepfakeError


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    ckpt = tiny_checkpoint(root / "tiny.pth")
    work = root / "work"
    work.mkdir()
    contract_onnx(ckpt, work / "tiny.fp32.onnx")  # reused by the runner: its manifest names this checkpoint
    return ckpt, work


@pytest.fixture(scope="module")
def result(setup):
    ckpt, work = setup
    cfg = EngineBenchConfig(model=ckpt, engines=("torch", "onnxrt"), batch_sizes=(1, 3), warmup=1, iters=3, rounds=2,
                            parity_samples=6, threads=1, work_dir=work)  # fmt: skip
    messages = []
    res = run_engine_bench(cfg, progress=messages.append)
    res["_messages"] = messages
    return res


def test_schema_and_machine(result):
    assert result["schema"].startswith("lib-deepfake/bench-engines/")
    machine = result["machine"]
    assert machine["cpu"] and machine["cpu_cores"] >= 1 and "torch" in machine["versions"]
    assert "onnxruntime" in machine["versions"]
    assert result["load_average"]["start"] is not None
    assert result["model"]["input_size"] == 32 and result["model"]["num_libs"] == 2


def test_engines_parity_and_runtime(result):
    labels = [e["label"] for e in result["engines"]]
    assert labels[0] == REFERENCE_LABEL and len(labels) == 2
    ref, ort = result["engines"]
    assert ref["reference"] and ref["parity"]["max_abs_diff"] == 0.0
    assert ort["engine"] == "onnxrt" and ort["prep"]["reused"] is True
    assert ort["parity"]["passed"] is True and ort["parity"]["max_abs_diff"] < 1e-4 and ort["parity"]["samples"] == 6
    assert ort["runtime"]["providers"] == ["CPUExecutionProvider"] and ort["options"]["threads"] == 1
    assert ref["load_s"] > 0 and ort["load_s"] > 0


def test_results_per_engine_and_batch(result):
    rows = result["results"]
    assert {(r["label"], r["batch"]) for r in rows} == {(e["label"], b) for e in result["engines"] for b in (1, 3)}
    for r in rows:
        assert r["calls"] == 3 and r["faces_per_s"] > 0
        assert r["latency_ms"]["p50"] <= r["latency_ms"]["p99"]
        assert r["memory"]["process_peak_rss_mib"] > 0
        if r["label"] == REFERENCE_LABEL:
            assert r["ratio_vs_reference"] == pytest.approx(1.0)


def test_rounds_interleave(result):
    timed = [m for m in result["_messages"] if "batch 1: round" in m]
    assert [m.split(" x")[0].split(" ", 4)[-1] for m in timed] == [
        REFERENCE_LABEL,
        "onnxrt fp32 provider=cpu threads=1",
        "onnxrt fp32 provider=cpu threads=1",
        REFERENCE_LABEL,
    ]


def test_views(result, tmp_path):
    md = to_markdown(result)
    assert "| torch fp32 eager | 1 |" in md and "x reference" in md and "Machine: CPU" in md
    written = write_results({k: v for k, v in result.items() if k != "_messages"}, tmp_path / "engines-cpu-x.json")
    assert json.loads(written["json"].read_text())["schema"] == result["schema"]
    assert written["md"].read_text() == md
    assert written["png"].read_bytes()[:4] == b"\x89PNG"


def test_unsupported_precision_is_a_note(setup):
    from lib_deepfake.bench.runner import _plan_rows

    ckpt, work = setup
    rows, notes = _plan_rows(EngineBenchConfig(model=ckpt, engines=("torch", "onnxrt"), precisions=("fp32", "bf16"),
                                               work_dir=work))  # fmt: skip
    assert [r.label or f"{r.engine_name} {r.precision}" for r in rows] == [
        REFERENCE_LABEL, "torch bf16", "onnxrt fp32"]  # fmt: skip
    assert notes == ["onnxrt bf16: skipped (onnxrt has no bf16 mode)"]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"batch_sizes": (0,)}, "positive"),
    ({"iters": 1, "rounds": 2}, "rounds"),
    ({"engines": ()}, "no engines"),
])  # fmt: skip
def test_config_validation(setup, kwargs, match):
    with pytest.raises(LibDeepfakeError, match=match):
        EngineBenchConfig(model=setup[0], **kwargs)


def test_trt_plan_reuses_onnx_and_plan(setup, tmp_path, monkeypatch):
    """With a fake TensorRT 10 and a pretend GPU: the plan is built from the (reused) FP32 ONNX, then reused."""
    import shutil

    import torch
    from tests.engines._fake_trt import make_fake_trt

    from lib_deepfake.bench.runner import _ensure_plan
    from lib_deepfake.engines import _trt_api

    ckpt, work = setup
    local = tmp_path / "work"
    shutil.copytree(work, local)
    trt = make_fake_trt("10.13.0.35")
    monkeypatch.setattr(_trt_api, "trt", trt)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    gpu = {"gpu_name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}
    monkeypatch.setattr("lib_deepfake.engines.trt_engine.present_gpu", lambda device: gpu)
    cfg = EngineBenchConfig(model=ckpt, engines=("trt",), precisions=("fp16",), batch_sizes=(1, 8), device="cuda:0",
                            work_dir=local)  # fmt: skip
    plan, prep = _ensure_plan(ckpt, cfg, "fp16")
    assert plan.read_bytes() == b"FAKE-PLAN" and prep["reused"] is False
    assert ("set_shape", "faces", (1, 32, 32, 3), (8, 32, 32, 3), (8, 32, 32, 3)) in trt.calls
    builds = sum(c[0] == "build_serialized_network" for c in trt.calls)
    again, prep2 = _ensure_plan(ckpt, cfg, "fp16")
    assert again == plan and prep2["reused"] is True
    assert sum(c[0] == "build_serialized_network" for c in trt.calls) == builds
