"""The inference sub-graph with the engine contract: faces uint8 [N, S, S, 3] RGB -> prob_fake float32 [N].

This module is what the torch engine runs and what ONNX export traces, so channel order and normalisation are
defined in exactly one place.
"""

from __future__ import annotations

import torch
from torch import nn

from lib_deepfake.model.config import Preprocessing
from lib_deepfake.model.lib import LIBNet


class FaceNormalizer(nn.Module):
    """faces uint8 [N, S, S, 3] RGB (any device) -> float32 [N, 3, S, S] in the weights' channel order, normalised.

    The one implementation of the preprocessing contract: training, the torch engine and ONNX export all call it.
    """

    def __init__(self, preprocessing: Preprocessing) -> None:
        super().__init__()
        self.preprocessing = preprocessing
        mean = torch.tensor(preprocessing.mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(preprocessing.std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
        self.register_buffer("mean255", mean, persistent=False)
        self.register_buffer("inv_std255", 1.0 / std, persistent=False)
        self.flip_to_bgr = preprocessing.channel_order == "BGR"

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        # Cast before the permute (TensorRT prefers a float Transpose) and return contiguous NCHW: a strided
        # channels-last view made every convolution copy its input first (~16 % of CPU time at batch 1).
        x = faces.float().permute(0, 3, 1, 2)
        if self.flip_to_bgr:
            x = x.flip(1)
        return ((x - self.mean255) * self.inv_std255).contiguous()


class InferenceModel(nn.Module):
    """Wraps a :class:`LIBNet` (put in eval mode) with preprocessing and the softmax.

    Args:
        net: the LIB network.
        preprocessing: its input contract (channel order, mean/std, size).
        compute_dtype: ``torch.float32`` or ``torch.float16``; the network runs in it, while the uint8 input,
            normalisation and the final softmax stay in float32 (calibration of P(fake) matters).
    """

    def __init__(self, net: LIBNet, preprocessing: Preprocessing, compute_dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.net = net.eval()
        self.preprocessing = preprocessing
        self.compute_dtype = compute_dtype
        self.normalizer = FaceNormalizer(preprocessing)
        if compute_dtype != torch.float32:
            self.net.to(compute_dtype)

    def normalize(self, faces: torch.Tensor) -> torch.Tensor:
        """faces: uint8 [N, S, S, 3] RGB -> float32 [N, 3, S, S] in the weights' channel order, normalised."""
        return self.normalizer(faces)

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        x = self.normalize(faces).to(self.compute_dtype)
        logits = self.net.fused_logits(x).float()
        return torch.softmax(logits, dim=1)[:, 1]
