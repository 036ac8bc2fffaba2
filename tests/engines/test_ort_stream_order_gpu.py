"""ONNX Runtime on CUDA must not read its input before torch has written it (marked gpu; needs onnxruntime-gpu).

A slow kernel on torch's current stream writes the input; ``infer`` runs with no manual synchronisation; the
result must equal a synchronised run, every time. On the old code (torch's default stream handle 0 handed to ONNX
Runtime, which then runs on a stream of its own) the engine reads zeros or a half-written buffer.
"""

from __future__ import annotations

import pytest
import torch
from tests.engines._artifacts import contract_onnx, tiny_checkpoint
from tests.engines._gpu_order import REPEATS, require_ort_cuda, slow_copy

from lib_deepfake.engines.ort_engine import OrtEngine
from lib_deepfake.errors import ArtifactMismatchError
from lib_deepfake.model.testing import random_faces

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("ort_order")
    return contract_onnx(tiny_checkpoint(root / "tiny.pth"), root / "tiny.onnx")


@pytest.mark.parametrize("provider", ["cuda", "tensorrt"])
def test_infer_waits_for_the_kernel_that_writes_its_input(model, provider):
    require_ort_cuda()
    engine = OrtEngine(model, device="cuda:0", provider=provider)
    try:
        engine.load()
    except ArtifactMismatchError as exc:  # the provider is compiled in but cannot load here (e.g. no TensorRT)
        pytest.skip(f"{provider} provider unusable on this machine: {exc}")
    try:
        inputs = [random_faces(8, 32, seed=s).cuda() for s in range(3)]
        inputs.append(torch.zeros_like(inputs[0]))
        refs = []
        for x in inputs:
            torch.cuda.synchronize()
            refs.append(engine.infer(x).clone())
            torch.cuda.synchronize()
        # The check can only see a race if reading zeros (or another set) gives a different answer.
        for i in range(3):
            assert not torch.allclose(refs[i], refs[3], atol=1e-4), "inputs too alike to show a race"
        for i in range(REPEATS):
            k = i % 3
            got = engine.infer(slow_copy(inputs[k])).clone()
            torch.cuda.synchronize()
            torch.testing.assert_close(got, refs[k], atol=1e-5, rtol=0, msg=f"run {i}: read before written?")
    finally:
        engine.close()
