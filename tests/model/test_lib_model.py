"""LIB architecture against method.md §1-§2: key layout, shapes, heads and feature sizes (CPU, no markers)."""

from __future__ import annotations

import pytest
import torch

from lib_deepfake.errors import LibDeepfakeError
from lib_deepfake.model import LIBConfig, create_lib, list_backbones
from lib_deepfake.model.backbones.efficientnet import EfficientNetFeatures
from lib_deepfake.model.registry import backbone_spec


@pytest.mark.parametrize(
    ("backbone", "per_lib", "total", "params"),
    [
        ("resnet34", 216, 892, 87_965_120),
        ("mobilenet", 164, 684, 22_076_256),
        ("efficientnet-b0", 360, 1468, 27_463_504),
    ],
)
def test_state_dict_layout_matches_official(backbone: str, per_lib: int, total: int, params: int) -> None:
    net = create_lib(LIBConfig(backbone, num_libs=4))
    keys = list(net.state_dict())
    assert len(keys) == total
    assert sum(k.startswith("region_model1.") for k in keys) == per_lib
    assert sum(p.numel() for p in net.parameters()) == params
    # registration order = official state_dict order
    firsts = [k.split(".")[0] for k in keys]
    order = list(dict.fromkeys(firsts))
    assert order == [f"region_model{i}" for i in range(1, 5)] + [f"local_linear{i}" for i in range(1, 5)] + [
        "bottleneck",
        "baseline_linear",
        "linear",
    ]


def test_head_shapes_resnet_n4() -> None:
    sd = create_lib(LIBConfig("resnet34", num_libs=4)).state_dict()
    d = 512
    assert sd["local_linear1.weight"].shape == (2, 3 * d)
    assert sd["bottleneck.model.0.weight"].shape == (1000, 4 * d)
    assert sd["bottleneck.model.4.weight"].shape == (500, 1000)
    assert sd["bottleneck.model.8.weight"].shape == (d, 500)
    assert sd["baseline_linear.weight"].shape == (2, 4 * d)
    assert sd["linear.1.weight"].shape == (2, d)
    assert "region_model1.fc.weight" not in sd
    assert "region_model2.layer4.0.downsample.1.running_var" in sd


def test_mobilenet_keeps_unused_fc_and_names() -> None:
    sd = create_lib(LIBConfig("mobilenet", num_libs=2)).state_dict()
    assert sd["region_model1.fc.weight"].shape == (1000, 1024)
    assert sd["region_model1.model.13.3.weight"].shape == (1024, 1024, 1, 1)
    assert sd["region_model2.model.1.0.weight"].shape == (32, 1, 3, 3)  # depthwise


@pytest.mark.parametrize("n", [2, 3, 5])
def test_forward_heads_for_several_n(n: int) -> None:
    net = create_lib(LIBConfig("mobilenet", num_libs=n, width_mult=0.25)).eval()
    out = net(torch.randn(3, 3, 32, 32))
    assert out.fused.shape == (3, 2) and out.concat.shape == (3, 2)
    assert len(out.leave_one_out) == n and all(o.shape == (3, 2) for o in out.leave_one_out)
    assert net.state_dict()["local_linear1.weight"].shape[1] == (n - 1) * net.num_features
    torch.testing.assert_close(net.fused_logits(torch.zeros(2, 3, 32, 32)), net(torch.zeros(2, 3, 32, 32)).fused)


def test_leave_one_out_head_does_not_see_its_block() -> None:
    net = create_lib(LIBConfig("mobilenet", num_libs=3, width_mult=0.25)).eval()
    x = torch.randn(2, 3, 32, 32)
    feats = net.features(x)
    expected = net.local_linear2(torch.cat([feats[0], feats[2]], dim=1))
    torch.testing.assert_close(net(x).leave_one_out[1], expected)


@pytest.mark.parametrize(
    ("variant", "blocks", "features", "stem"),
    [("efficientnet-b0", 16, 1280, 32), ("efficientnet-b3", 26, 1536, 40), ("efficientnet-b4", 32, 1792, 48)],
)
def test_efficientnet_variants(variant: str, blocks: int, features: int, stem: int) -> None:
    m = EfficientNetFeatures(variant)
    assert len(m._blocks) == blocks and m.num_features == features
    assert m._conv_stem.weight.shape[0] == stem
    assert backbone_spec(variant).num_features == features


def test_efficientnet_b4_static_padding_uses_native_resolution() -> None:
    # method.md §1.4: built for 380, fed 224, `_blocks.6._depthwise_conv` (k5, s2) pads (2,2,2,2) - not TF-SAME@224.
    m = EfficientNetFeatures("efficientnet-b4")
    assert m._blocks[6]._depthwise_conv.pad_amounts == (2, 2, 2, 2)
    assert EfficientNetFeatures("efficientnet-b0")._conv_stem.pad_amounts == (0, 1, 0, 1)
    assert m(torch.zeros(1, 3, 64, 64)).shape == (1, 1792)


def test_registry_aliases_and_errors() -> None:
    assert LIBConfig("resnet").backbone == "resnet34"
    assert LIBConfig("efficientnet_b2").backbone == "efficientnet-b2"
    assert {"resnet34", "mobilenet", "efficientnet-b7"} <= set(list_backbones())
    with pytest.raises(LibDeepfakeError, match="did you mean"):
        backbone_spec("resnet35")
    with pytest.raises(LibDeepfakeError, match="num_libs"):
        LIBConfig("resnet34", num_libs=1)


def test_swish_is_silu() -> None:
    block = EfficientNetFeatures("efficientnet-b0")._blocks[1]
    assert isinstance(block._swish, torch.nn.SiLU)
