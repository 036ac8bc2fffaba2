"""The N backbones of a LIB network as one network of grouped convolutions (groups = N), for export.

LIB runs N identical-in-shape ResNets on the same crop and concatenates their pooled features. Stacking their
weights turns every convolution into one grouped convolution (backbone i's channels are group i), every BatchNorm
into one BatchNorm over N times the channels, and the concatenation into a plain flatten: one wide network instead
of N narrow ones, with the same arithmetic. The first convolution reads the shared crop, so it becomes a dense
convolution with N times the output channels (no copy of the input per backbone).

Whether it is faster depends on the runtime's grouped-convolution kernels. ``lib-bench grouped`` measures it
against the ordinary export, engine by engine and precision by precision, with parity on face crops; the result
(docs/engines.md, "Grouped backbones") decides whether ``lib-export to-onnx`` uses it. Until a runtime runs it
faster at equal parity it stays out of the product: :func:`export_grouped_onnx` is the only entry point.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from lib_deepfake.errors import LibDeepfakeError

if TYPE_CHECKING:
    from lib_deepfake.model.lib import LIBNet

_STATELESS = (nn.ReLU, nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.Identity, nn.Flatten, nn.Dropout)


def _fuse_conv(convs: list[nn.Conv2d], shared_input: bool) -> nn.Conv2d:
    first = convs[0]
    n = len(convs)
    groups = first.groups if shared_input else first.groups * n
    in_channels = first.in_channels if shared_input else first.in_channels * n
    # Conv2d's attributes are typed as tuples of any length; a 2-D convolution's are pairs.
    kernel, stride, padding, dilation = first.kernel_size, first.stride, first.padding, first.dilation
    fused = nn.Conv2d(in_channels, first.out_channels * n, kernel, stride, padding, dilation,  # type: ignore[arg-type]
                      groups, bias=first.bias is not None, padding_mode=first.padding_mode)  # fmt: skip
    with torch.no_grad():
        fused.weight.copy_(torch.cat([c.weight for c in convs], dim=0))
        if first.bias is not None:
            fused.bias.copy_(torch.cat([c.bias for c in convs]))  # type: ignore[union-attr, misc]
    return fused


def _fuse_batchnorm(norms: list[nn.BatchNorm2d]) -> nn.BatchNorm2d:
    first = norms[0]
    if any(m.eps != first.eps for m in norms):
        raise LibDeepfakeError("backbones' BatchNorm layers differ in eps; they cannot be fused")
    fused = nn.BatchNorm2d(first.num_features * len(norms), eps=first.eps, momentum=first.momentum)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(fused, name).copy_(torch.cat([getattr(m, name) for m in norms]))
    return fused.eval()


def fuse_modules(modules: list[nn.Module], shared_input: str | None = None, prefix: str = "") -> nn.Module:
    """One module computing ``modules`` side by side on channel-stacked inputs (backbone-major channel order).

    Args:
        modules: the same architecture N times (same module tree, same shapes).
        shared_input: dotted name of the convolution that reads the input shared by all (``conv1`` for ResNets).
        prefix: dotted name of ``modules`` (recursion).

    Raises:
        LibDeepfakeError: the trees differ, or a layer with parameters that cannot be stacked.
    """
    first = modules[0]
    if any(type(m) is not type(first) for m in modules):
        raise LibDeepfakeError(f"backbones differ at {prefix or 'the top'}: {[type(m).__name__ for m in modules]}")
    if isinstance(first, nn.Conv2d):
        return _fuse_conv(modules, shared_input == prefix)  # type: ignore[arg-type]
    if isinstance(first, nn.BatchNorm2d):
        return _fuse_batchnorm(modules)  # type: ignore[arg-type]
    if isinstance(first, _STATELESS):
        return copy.deepcopy(first)
    children = dict(first.named_children())
    if not children or any(True for _ in first.parameters(recurse=False)):
        raise LibDeepfakeError(f"cannot fuse {type(first).__name__} at {prefix or 'the top'} into grouped layers")
    fused = copy.copy(first)  # same class and forward(); its children are replaced below
    fused._modules = dict(first._modules)
    for name in children:
        parts = [getattr(m, name) for m in modules]
        if parts[0] is None:
            continue
        child_prefix = f"{prefix}.{name}" if prefix else name
        setattr(fused, name, fuse_modules(parts, shared_input, child_prefix))
    return fused


class GroupedLIB(nn.Module):
    """The prediction path of a LIB network with its backbones fused (``fused_logits`` like :class:`LIBNet`)."""

    def __init__(self, net: LIBNet) -> None:
        super().__init__()
        if net.config.backbone not in ("resnet34",):
            raise LibDeepfakeError(f"grouped backbones support ResNet backbones, not {net.config.backbone}")
        self.config = net.config
        self.backbone = fuse_modules(net.backbones, shared_input="conv1").eval()
        self.bottleneck = copy.deepcopy(net.bottleneck).eval()
        self.linear = copy.deepcopy(net.linear).eval()

    def fused_logits(self, x: torch.Tensor) -> torch.Tensor:
        # ResNetFeatures ends in flatten(avgpool(.)): with backbone-major channels that is cat(features, dim=1)
        return self.linear(self.bottleneck(self.backbone(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fused_logits(x)


def export_grouped_onnx(checkpoint: Path | str, out: Path | str, *, opset: int = 18) -> Path:
    """The contract ONNX of ``checkpoint`` with grouped backbones (dynamic batch, FP32), with a manifest whose
    ``extra.grouped_backbones`` is True. Compared with the PyTorch FP32 model like ``lib-export to-onnx``."""
    from lib_deepfake.engines.parity import raise_for_parity
    from lib_deepfake.export.onnx_export import _finalise_graph, _torch_export, check_onnx_parity
    from lib_deepfake.manifest import Manifest, contract_io
    from lib_deepfake.model.checkpoint import load_model
    from lib_deepfake.model.inference import InferenceModel
    from lib_deepfake.model.testing import random_faces

    out = Path(out)
    net, ckpt = load_model(checkpoint)
    size = ckpt.config.input_size
    reference = InferenceModel(net, ckpt.config.preprocessing).eval()
    grouped = InferenceModel(GroupedLIB(net), ckpt.config.preprocessing).eval()  # type: ignore[arg-type]
    tmp = out.with_name(f".{out.name}.partial")
    try:
        _torch_export(grouped, random_faces(2, size), tmp, opset, None)
        _finalise_graph(tmp, {"lib_deepfake.input_size": str(size), "lib_deepfake.precision": "fp32",
                              "lib_deepfake.grouped_backbones": "true"})  # fmt: skip
        parity = check_onnx_parity(tmp, reference, size, "fp32")
        raise_for_parity(parity, f"grouped ONNX disagrees with PyTorch; {out.name} was not written")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    Manifest(format="onnx", precision="fp32", io=contract_io(size), model=ckpt.config.to_dict(),
             source_checkpoint_sha256=ckpt.sha256, source=ckpt.source,
             extra={"grouped_backbones": True, "opset": opset, "parity": parity}).save(out)  # fmt: skip
    return out
