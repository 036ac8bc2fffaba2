"""The LIB model: backbones, the multi-block network, checkpoints and the inference wrapper (pure PyTorch)."""

from __future__ import annotations

from lib_deepfake.model.checkpoint import (
    LoadedCheckpoint,
    load_model,
    read_checkpoint,
    save_checkpoint,
)
from lib_deepfake.model.config import IMAGENET_MEAN, IMAGENET_STD, OFFICIAL_PREPROCESSING, LIBConfig, Preprocessing
from lib_deepfake.model.inference import FaceNormalizer, InferenceModel
from lib_deepfake.model.lib import LIBNet, LIBOutput, create_lib
from lib_deepfake.model.registry import backbone_spec, list_backbones

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "OFFICIAL_PREPROCESSING",
    "FaceNormalizer",
    "InferenceModel",
    "LIBConfig",
    "LIBNet",
    "LIBOutput",
    "LoadedCheckpoint",
    "Preprocessing",
    "backbone_spec",
    "create_lib",
    "list_backbones",
    "load_model",
    "read_checkpoint",
    "save_checkpoint",
]
