"""The N backbones fused into grouped convolutions compute what the N backbones compute, and ``lib-bench grouped``
compares both ONNX graphs per engine with parity first."""

from __future__ import annotations

import json

import pytest
import torch

from lib_deepfake.errors import LibDeepfakeError
from lib_deepfake.export.grouped import GroupedLIB
from lib_deepfake.model.checkpoint import load_model
from lib_deepfake.model.testing import write_test_checkpoint

TINY_RESNET = {"backbone": "resnet34", "num_libs": 3, "size": 32, "width_mult": 0.25}


@pytest.fixture(scope="module")
def resnet_ckpt(tmp_path_factory):
    return write_test_checkpoint(tmp_path_factory.mktemp("grouped") / "r34x3.pth", **TINY_RESNET)


def test_grouped_network_matches_the_backbones(resnet_ckpt):
    net, _ = load_model(resnet_ckpt)
    net.eval()
    grouped = GroupedLIB(net)
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        want, got = net.fused_logits(x), grouped.fused_logits(x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    # one grouped convolution per layer: the second convolution of the fused network has groups = N
    convs = [m for m in grouped.backbone.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs[0].groups == 1 and convs[0].out_channels == 3 * net.backbones[0].conv1.out_channels
    assert all(c.groups == 3 for c in convs[1:])


def test_other_backbones_are_refused(tmp_path):
    ckpt = write_test_checkpoint(tmp_path / "m.pth", backbone="mobilenet", num_libs=2, size=32, width_mult=0.25)
    net, _ = load_model(ckpt)
    with pytest.raises(LibDeepfakeError, match="grouped backbones support ResNet"):
        GroupedLIB(net)


@pytest.mark.slow
def test_bench_grouped_end_to_end(resnet_ckpt, tmp_path):
    from click.testing import CliRunner

    from lib_deepfake.cli.bench import main

    out = tmp_path / "grouped.json"
    result = CliRunner().invoke(main, ["grouped", "--model", str(resnet_ckpt), "--pairs", "onnxrt:fp32", "--rounds",
                                       "2", "--calls", "1", "--batch-size", "4", "--work-dir", str(tmp_path),
                                       "--allow-noisy", "--quiet-wait-s", "0", "--json", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    (row,) = data["rows"]
    assert row["parity_grouped"]["passed"] and row["parity_ordinary"]["passed"]
    assert row["grouped_vs_ordinary"]["n"] == 2 and row["grouped_faces_per_s"] > 0
    manifest = json.loads((tmp_path / "r34x3.grouped.onnx.json").read_text())
    assert manifest["extra"]["grouped_backbones"] is True
    assert "| onnxrt | fp32 |" in out.with_suffix(".md").read_text()
