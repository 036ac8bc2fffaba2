"""Small real artifacts for engine, bench, verify and CLI tests (shared by tests/engines, tests/bench,
tests/export/test_verify*, tests/cli/test_bench_cli.py).

The contract ONNX is made with the TorchScript exporter (about 1 s) instead of ``export_onnx`` (dynamo, 8-30 s on
the shared 2-core machine): the engines only need a contract ONNX of the same model, and ``export_onnx`` has its own
tests. A manifest like ``export_onnx`` writes goes beside it (``with_manifest=False`` tests the no-manifest path).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from lib_deepfake.manifest import INPUT_NAME, OUTPUT_NAME, Manifest, contract_io
from lib_deepfake.model.checkpoint import load_model
from lib_deepfake.model.inference import InferenceModel
from lib_deepfake.model.testing import random_faces, write_test_checkpoint

TINY = {"backbone": "mobilenet", "num_libs": 2, "size": 32, "width_mult": 0.25}


def tiny_checkpoint(path: Path, *, seed: int = 0, official: bool = False) -> Path:
    return write_test_checkpoint(path, seed=seed, official=official, **TINY)


def contract_onnx(checkpoint: Path, out: Path, *, with_manifest: bool = True, precision: str = "fp32") -> Path:
    """Export ``checkpoint`` to a contract ONNX (dynamic batch) and, by default, its manifest."""
    net, ckpt = load_model(checkpoint)
    model = InferenceModel(net, ckpt.config.preprocessing).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (random_faces(2, ckpt.config.input_size),),
            str(out),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=18,
            dynamo=False,
        )
    if with_manifest:
        Manifest(
            format="onnx",
            precision=precision,
            io=contract_io(ckpt.config.input_size),
            model=ckpt.config.to_dict(),
            source_checkpoint_sha256=ckpt.sha256,
            source=ckpt.source,
            extra={"exporter": "torch.onnx (torchscript, tests)"},
        ).save(out)
    return out


def float_input_onnx(out: Path, size: int = 32) -> Path:
    """An ONNX that breaks the contract: float32 NCHW input."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node(
                "Constant", [], ["axes"], value=helper.make_tensor("a", TensorProto.INT64, [3], [1, 2, 3])
            ),
            helper.make_node("ReduceMean", ["x", "axes"], ["y"], keepdims=0),
        ],
        "bad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    onnx.save(model, str(out))
    return out
