"""The one normalisation code path: the model's :class:`~lib_deepfake.model.inference.FaceNormalizer`.

Training feeds the network exactly what inference and export feed it (channel flip for BGR weights, /255,
mean/std of the preprocessing contract) by calling the same module, not a restatement of the constants.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lib_deepfake.model.config import Preprocessing
from lib_deepfake.model.inference import FaceNormalizer
from lib_deepfake.model.lib import LIBNet


def make_normalizer(
    net: LIBNet, preprocessing: Preprocessing, device: torch.device
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``faces uint8 [N, S, S, 3] RGB on device -> float32 [N, 3, S, S]`` in the weights' channel order, normalised.

    ``net`` is not touched (kept for call-site symmetry with the model it feeds).
    """
    del net
    return FaceNormalizer(preprocessing).to(device)
