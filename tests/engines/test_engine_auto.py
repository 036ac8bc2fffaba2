"""--engine auto on CPUs: candidates from the artifacts and the hardware, parity gate and timed probe, and the choice
with its reason (the pure part on fixed probes; the whole on a tiny model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests.engines._artifacts import contract_onnx, tiny_checkpoint

from lib_deepfake.engines.auto import (
    Candidate,
    Probe,
    choose,
    classify_artifacts,
    cpu_candidates,
    probe_candidates,
    select_engine,
)
from lib_deepfake.engines.base import Availability
from lib_deepfake.errors import LibDeepfakeError

PASS = {"passed": True, "failures": []}
FAIL = {"passed": False, "failures": ["faces: mean |dlogit| 0.9 > 0.25"]}


def _probe(engine, precision, fps, parity=PASS, error=None):
    return Probe(Candidate(engine, precision, Path(f"{engine}.{precision}")), fps, parity, error)


def test_choose_takes_the_fastest_that_passed():
    probes = [_probe("onnxrt", "fp32", 7.4), _probe("openvino", "bf16", 15.2), _probe("openvino", "int8", 30.0, FAIL),
              _probe("onnxrt", "int8", None, None, "cannot load")]  # fmt: skip
    sel = choose(probes, ["torch bf16: the CPU has no bf16 instructions"])
    assert (sel.engine, sel.precision) == ("openvino", "bf16")
    assert "openvino bf16 is the fastest candidate whose parity passed (15.2 faces/s, 2.05x the next, onnxrt fp32" in (
        sel.reason
    )
    assert "openvino int8 failed parity: faces: mean |dlogit| 0.9 > 0.25" in sel.reason
    assert "onnxrt int8 error: cannot load" in sel.reason and "torch bf16: the CPU has no bf16" in sel.reason
    assert [p["passed"] for p in sel.probes] == [True, True, False, False]
    assert sel.reason.startswith(sel.headline) and sel.headline.endswith("4 candidates passed)")
    assert "Rejected" not in sel.headline and sel.to_dict()["headline"] == sel.headline
    json.dumps(sel.to_dict())


def test_choose_breaks_exact_ties_by_the_simpler_runtime():
    sel = choose([_probe("openvino", "fp32", 10.0), _probe("onnxrt", "fp32", 10.0)])
    assert sel.engine == "onnxrt"


def test_choose_refuses_when_nothing_passed():
    with pytest.raises(LibDeepfakeError, match="no candidate passed.*openvino int8 failed parity"):
        choose([_probe("openvino", "int8", 30.0, FAIL)])


def test_cpu_candidates_follow_artifacts_and_hardware():
    arts = {"checkpoint": Path("m.pth"), "onnx_fp32": Path("m.onnx"), "onnx_int8": Path("m.int8.onnx"),
            "openvino_int8": Path("m.int8.xml")}  # fmt: skip
    ok = lambda name: Availability(True)  # noqa: E731
    cands, notes = cpu_candidates(arts, bf16=True, available=ok, threads=2)
    assert [c.label for c in cands] == ["torch fp32", "onnxrt fp32", "openvino fp32", "torch bf16", "openvino bf16",
                                        "onnxrt int8", "openvino int8"]  # fmt: skip
    assert notes == []
    assert cands[-1].artifact == Path("m.int8.xml")  # NNCF's IR before the QDQ model for OpenVINO
    assert cands[4].options == {"precision": "bf16", "threads": 2}
    no_ov = lambda name: Availability(name != "openvino", "openvino not installed")  # noqa: E731
    cands, notes = cpu_candidates({"checkpoint": Path("m.pth"), "onnx_fp32": Path("m.onnx")}, bf16=False,
                                  available=no_ov)  # fmt: skip
    assert [c.label for c in cands] == ["torch fp32", "onnxrt fp32"]
    assert "torch bf16: the CPU has no bf16 instructions" in notes
    assert "openvino fp32: openvino not installed" in notes
    assert any(n.startswith("onnxrt int8: no artifact (a calibrated INT8 artifact") for n in notes)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("auto")
    ckpt = tiny_checkpoint(root / "tiny.pth")
    return ckpt, contract_onnx(ckpt, root / "tiny.onnx")


def test_classify_artifacts(model, tmp_path):
    ckpt, onnx = model
    assert classify_artifacts([ckpt, onnx]) == {"checkpoint": ckpt, "onnx_fp32": onnx}
    with pytest.raises(LibDeepfakeError, match="two onnx_fp32"):
        classify_artifacts([onnx, onnx])
    other = tiny_checkpoint(tmp_path / "other.pth", seed=5)
    with pytest.raises(LibDeepfakeError, match="different checkpoints"):
        classify_artifacts([other, onnx])
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(onnx.read_bytes())
    with pytest.raises(LibDeepfakeError, match="has no manifest"):
        classify_artifacts([bare])


def test_probe_rejects_an_engine_that_disagrees(model):
    from lib_deepfake.engines.registry import create_engine
    from lib_deepfake.model.testing import random_faces

    ckpt, onnx = model
    faces = random_faces(6, 32, seed=1)

    def skewed(name, artifact, **kw):  # an engine whose outputs are off: its probe must fail the gate
        engine = create_engine(name, artifact, **kw)
        real = engine._infer
        engine._infer = lambda x: (real(x) * 0.5).contiguous()
        return engine

    with create_engine("torch", ckpt) as ref:
        reference = ref.infer(faces).clone()
    probes = probe_candidates([Candidate("onnxrt", "fp32", onnx)], reference, faces, batch=4, calls=1)
    assert probes[0].passed and probes[0].faces_per_s > 0
    bad = probe_candidates([Candidate("onnxrt", "fp32", onnx)], reference, faces, batch=4, calls=1, factory=skewed)
    assert not bad[0].passed and bad[0].parity["failures"]


def test_select_engine_end_to_end(model):
    ckpt, onnx = model
    sel = select_engine([ckpt, onnx], batch=4, calls=1, threads=1)
    probed = {(p["engine"], p["precision"]) for p in sel.probes}
    assert ("torch", "fp32") in probed and ("onnxrt", "fp32") in probed
    assert (sel.engine, sel.precision) in {k for k in probed}
    assert sel.reason.startswith(f"{sel.engine} {sel.precision} is the fastest candidate whose parity passed")
    assert any("int8: no artifact" in n for n in sel.not_candidates)
    assert json.loads(json.dumps(sel.to_dict()))["artifact"] == str(sel.artifact)


def test_select_engine_needs_the_checkpoint(model):
    with pytest.raises(LibDeepfakeError, match="needs the checkpoint"):
        select_engine([model[1]])


def test_faces_are_repeated_up_to_the_batch(model):
    ckpt, onnx = model
    from lib_deepfake.model.testing import random_faces

    faces = random_faces(3, 32, seed=2)
    from lib_deepfake.engines.registry import create_engine

    with create_engine("torch", ckpt) as ref:
        reference = ref.infer(faces).clone()
    probes = probe_candidates([Candidate("torch", "fp32", ckpt, {"precision": "fp32"})], reference, faces, batch=8,
                              calls=1)  # fmt: skip
    assert probes[0].passed and probes[0].parity["samples"] == 3
    assert isinstance(reference, torch.Tensor)
