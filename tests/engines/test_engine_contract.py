"""One contract suite over every engine: faces uint8 [N,S,S,3] RGB -> prob_fake float32 [N], same device, within
the parity limits of its precision of the PyTorch FP32 reference on face crops (never noise: it saturates outputs);
bad inputs give a ContractError naming the contract.

torch and onnxrt run on CPU here; trt joins on a machine with TensorRT and a GPU (markers gpu, trt).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from tests.engines._artifacts import contract_onnx, float_input_onnx, tiny_checkpoint

from lib_deepfake.engines import create_engine
from lib_deepfake.engines.parity import compare_outputs
from lib_deepfake.engines.torch_engine import TorchEngine
from lib_deepfake.errors import ArtifactMismatchError, ContractError, LibDeepfakeError
from lib_deepfake.model.testing import random_faces
from lib_deepfake.prep.face_crops import face_crop_set

SIZE = 32


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    root = tmp_path_factory.mktemp("engines")
    ckpt = tiny_checkpoint(root / "tiny.pth")
    onnx_path = contract_onnx(ckpt, root / "tiny.onnx")
    return {"root": root, "torch": ckpt, "onnxrt": onnx_path}


def _artifact(artifacts, name):
    if name == "trt":
        from lib_deepfake.export.trt_build import TrtBuildConfig, build_engine

        plan = artifacts["root"] / "tiny.plan"
        if not plan.exists():
            build_engine(artifacts["torch"], plan, TrtBuildConfig(1, 4, 8, precision="fp32"))
        return plan
    return artifacts[name]


ENGINES = ["torch", "onnxrt", pytest.param("trt", marks=[pytest.mark.gpu, pytest.mark.trt])]


def _device(name):
    return "cuda:0" if name == "trt" else "cpu"


@pytest.fixture(scope="module")
def reference(artifacts):
    with TorchEngine(artifacts["torch"]) as ref:
        faces = torch.from_numpy(face_crop_set(SIZE, 24))
        yield faces, ref.infer(faces).clone()


@pytest.mark.parametrize("name", ENGINES)
def test_contract_and_parity(artifacts, reference, name):
    faces, expected = reference
    with create_engine(name, _artifact(artifacts, name), device=_device(name)) as engine:
        assert engine.input_size == SIZE
        out = engine.infer(faces.to(engine.device))
        assert out.dtype == torch.float32 and out.shape == (24,) and out.device == engine.device
        report = compare_outputs(expected, out, engine.precision, engine=name)
        assert report.passed, report.failures
        assert report.saturated < 0.5, "the crops must be informative for this model"
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
        io = engine.io
        assert io.inputs[0].dtype == "uint8" and io.inputs[0].shape == (None, SIZE, SIZE, 3)
        assert io.outputs[0].dtype == "float32"
        assert engine.info().engine == name


@pytest.mark.parametrize("name", ENGINES)
@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (lambda f: f.float(), "dtype torch.float32"),
        (lambda f: f.permute(0, 3, 1, 2).contiguous(), "channels first"),
        (lambda f: f[0], "shape"),
        (lambda f: f[:, :16, :16], "shape"),
        (lambda f: f[:0], "empty"),
        (lambda f: f.numpy(), "torch.Tensor"),
    ],
)
def test_bad_input_names_contract(artifacts, name, bad, match):
    with create_engine(name, _artifact(artifacts, name), device=_device(name)) as engine:
        faces = random_faces(2, SIZE).to(engine.device)
        with pytest.raises(ContractError, match=match) as info:
            engine.infer(bad(faces.cpu() if match == "torch.Tensor" else faces))
        assert "uint8 [N, S, S, 3]" in str(info.value)


def test_lifecycle(artifacts):
    engine = TorchEngine(artifacts["torch"])
    assert not engine.loaded
    with engine as loaded:
        assert loaded is engine and engine.loaded and engine.load_s is not None
    assert not engine.loaded
    engine.close()  # idempotent
    with pytest.raises(LibDeepfakeError, match="closed"):
        engine.load()


def test_torch_official_checkpoint(tmp_path):
    ckpt = tiny_checkpoint(tmp_path / "official.pth", official=True)
    with TorchEngine(ckpt, official_input_size=SIZE) as engine:
        out = engine.infer(random_faces(3, SIZE))
    assert out.shape == (3,) and engine.manifest is not None and engine.manifest.source == "official"


def test_torch_options_named(artifacts):
    engine = TorchEngine(artifacts["torch"], channels_last=True)
    assert engine.options()["channels_last"] is True
    assert "channels_last" in engine.describe()
    assert TorchEngine(artifacts["torch"]).describe() == "torch fp32 eager"
    with pytest.raises(LibDeepfakeError, match="CUDA"):
        TorchEngine(artifacts["torch"], cuda_graphs=True)


def test_torch_channels_last_matches_reference(artifacts, reference):
    faces, expected = reference
    with TorchEngine(artifacts["torch"], channels_last=True) as engine:
        assert torch.allclose(engine.infer(faces), expected, atol=1e-5)


def test_onnx_without_manifest_runs_with_warning(artifacts, reference, tmp_path, caplog):
    bare = contract_onnx(artifacts["torch"], tmp_path / "bare.onnx", with_manifest=False)
    faces, expected = reference
    with caplog.at_level(logging.WARNING), create_engine(bare) as engine:
        out = engine.infer(faces)
    assert "no manifest" in caplog.text
    assert torch.allclose(out, expected, atol=1e-4)
    assert engine.info().runtime["manifest"] is False


def test_onnx_breaking_contract_is_refused(tmp_path):
    with pytest.raises(ContractError, match="engine contract"), create_engine(float_input_onnx(tmp_path / "f.onnx")):
        pass


def test_onnx_garbage_file(tmp_path):
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ArtifactMismatchError, match="cannot load"), create_engine(bad):
        pass


def test_ort_threads_explicit(artifacts):
    with create_engine(artifacts["onnxrt"], threads=1) as engine:
        assert engine.options()["threads"] == 1
        info = engine.info()
    assert info.runtime["providers"][0] == "CPUExecutionProvider" and info.runtime["fallback"] is None
    assert np.isfinite(engine.load_s)


def test_ort_spin_off_reaches_the_session(artifacts):
    # lib-infer turns busy-waiting off so its decode workers keep their cores; the option must reach ONNX Runtime.
    with create_engine(artifacts["onnxrt"], threads=1, spin=False) as engine:
        assert engine.options()["spin"] is False
        opts = engine._session.get_session_options()
        assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert engine.infer(torch.zeros((1, engine.input_size, engine.input_size, 3), dtype=torch.uint8)).shape == (1,)
    with create_engine(artifacts["onnxrt"], threads=1) as engine:
        assert "spin" not in engine.options()
