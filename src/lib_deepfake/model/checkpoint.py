"""Reading and writing LIB checkpoints: ours and those written by the official training code.

Official files are ``{'state_dict', 'epoch'}`` (method.md §2.1), usually with DataParallel's ``module.`` prefix,
and carry no configuration: backbone family, EfficientNet variant and N are inferred from key names and shapes
(§2.4), and the BGR input contract is recorded (§4.5). Our files add the model config, its preprocessing contract
and whatever training needs to resume. Everything is read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lib_deepfake.errors import CheckpointError
from lib_deepfake.model.config import OFFICIAL_PREPROCESSING, LIBConfig, Preprocessing

FORMAT_TAG = "lib-deepfake-checkpoint"
FORMAT_VERSION = 1

_EFFICIENTNET_FINGERPRINTS = {
    # (stem channels, number of blocks, feature dim) -> variant (lukemelas round_filters/round_repeats)
    (32, 16, 1280): "efficientnet-b0",
    (32, 23, 1280): "efficientnet-b1",
    (32, 23, 1408): "efficientnet-b2",
    (40, 26, 1536): "efficientnet-b3",
    (48, 32, 1792): "efficientnet-b4",
    (48, 39, 2048): "efficientnet-b5",
    (56, 45, 2304): "efficientnet-b6",
    (64, 55, 2560): "efficientnet-b7",
}


@dataclass
class LoadedCheckpoint:
    """A checkpoint read from disk.

    Attributes:
        config: the architecture and preprocessing contract (inferred for official files).
        state_dict: model weights, ``module.`` prefix removed.
        source: ``"official"`` (written by the official LIB code, or a bare state_dict) or ``"lib-deepfake"``.
        epoch: the epoch stored in the file, if any.
        extra: everything else our format stores (training state for resume, metrics, ...).
        sha256: hash of the file bytes (recorded in export manifests).
        path: where it was read from.
    """

    config: LIBConfig
    state_dict: dict[str, torch.Tensor]
    source: str
    epoch: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    path: Path | None = None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def safe_torch_load(path: Path | str) -> Any:
    """``torch.load(weights_only=True)`` with user-facing errors. A pickle that would run code is refused."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint is empty (0 bytes): {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not _is_zip_or_pickle(path):
            raise CheckpointError(f"cannot read checkpoint {path}: not a PyTorch checkpoint file") from exc
        raise CheckpointError(
            f"refusing to load {path}: it holds pickled Python objects beyond tensors and plain data, which could run "
            f"code when loaded (weights_only=True). Re-save only its state_dict if you trust it. ({first})"
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"cannot read checkpoint {path}: {first}") from exc


def _is_zip_or_pickle(path: Path) -> bool:
    """torch.save writes a zip archive (or, in legacy mode, a pickle starting with the PROTO opcode)."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def strip_module_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove DataParallel/DDP's ``module.`` prefix when every key has it."""
    keys = list(state_dict)
    if keys and all(k.startswith("module.") for k in keys):
        return {k[len("module.") :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def infer_official_config(
    state_dict: Mapping[str, torch.Tensor], preprocessing: Preprocessing = OFFICIAL_PREPROCESSING
) -> LIBConfig:
    """Infer backbone, EfficientNet variant, N and width from an official-layout state_dict (method.md §2.4)."""
    regions = {int(m.group(1)) for k in state_dict if (m := re.match(r"region_model(\d+)\.", k))}
    if not regions:
        raise CheckpointError("no 'region_model<i>.' keys: this is not a LIB checkpoint")
    n = max(regions)
    if regions != set(range(1, n + 1)):
        raise CheckpointError(f"region_model indices are not 1..{n}: {sorted(regions)}")
    if "linear.1.weight" not in state_dict:
        raise CheckpointError("missing 'linear.1.weight': not a LIB checkpoint (or a truncated one)")
    d = int(state_dict["linear.1.weight"].shape[1])
    if "region_model1.layer1.0.conv1.weight" in state_dict:
        width = int(state_dict["region_model1.conv1.weight"].shape[0]) / 64
        return LIBConfig("resnet34", num_libs=n, width_mult=width, preprocessing=preprocessing)
    if "region_model1.model.1.3.weight" in state_dict:
        width = int(state_dict["region_model1.model.0.0.weight"].shape[0]) / 32
        return LIBConfig("mobilenet", num_libs=n, width_mult=width, preprocessing=preprocessing)
    if "region_model1._conv_stem.weight" in state_dict:
        stem = int(state_dict["region_model1._conv_stem.weight"].shape[0])
        blocks = {int(m.group(1)) for k in state_dict if (m := re.match(r"region_model1\._blocks\.(\d+)\.", k))}
        variant = _EFFICIENTNET_FINGERPRINTS.get((stem, len(blocks), d))
        if variant is None:
            raise CheckpointError(
                f"EfficientNet checkpoint with stem {stem}, {len(blocks)} blocks and feature size {d} matches no "
                "variant b0..b7"
            )
        return LIBConfig(variant, num_libs=n, preprocessing=preprocessing)
    raise CheckpointError("unknown backbone family: expected ResNet-34, MobileNetV1 or EfficientNet keys")


def read_checkpoint(path: Path | str, *, official_input_size: int | None = None) -> LoadedCheckpoint:
    """Read any supported checkpoint without building the model.

    Args:
        path: the file.
        official_input_size: crop size for official checkpoints, which do not record it (default 224).
    """
    path = Path(path)
    raw = safe_torch_load(path)
    sha = file_sha256(path)
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"{path}: expected a dict in the checkpoint, found {type(raw).__name__}")
    if raw.get("format") == FORMAT_TAG:
        version = int(raw.get("format_version", 0))
        if version > FORMAT_VERSION:
            raise CheckpointError(f"{path} uses checkpoint format {version}; this lib-deepfake reads up to "
                                  f"{FORMAT_VERSION}: upgrade lib-deepfake")  # fmt: skip
        try:
            config = LIBConfig.from_dict(raw["config"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: malformed model config ({exc})") from exc
        extra = {k: v for k, v in raw.items() if k not in ("format", "format_version", "config", "state_dict", "epoch")}
        state = strip_module_prefix(raw["state_dict"])
        return LoadedCheckpoint(config, state, "lib-deepfake", raw.get("epoch"), extra, sha, path)
    state = raw.get("state_dict", raw)
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: no state_dict of tensors found (keys: {', '.join(map(str, list(raw)[:8]))})")
    state = strip_module_prefix(state)
    size = official_input_size or OFFICIAL_PREPROCESSING.input_size
    config = infer_official_config(state, Preprocessing(input_size=size, channel_order="BGR"))
    epoch = raw.get("epoch") if "state_dict" in raw else None
    return LoadedCheckpoint(config, state, "official", epoch, {}, sha, path)


def load_state_dict_strict(net: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], origin: str) -> None:
    """Strict load with an error that lists missing, unexpected and mis-shaped keys."""
    own = net.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = sorted(
        f"{k} {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state_dict)
        if tuple(own[k].shape) != tuple(state_dict[k].shape)
    )
    if missing or unexpected or shapes:

        def head(items: list[str]) -> str:
            return ", ".join(items[:6]) + (f" (+{len(items) - 6} more)" if len(items) > 6 else "")

        parts = []
        if missing:
            parts.append(f"missing keys: {head(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {head(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches: {head(shapes)}")
        raise CheckpointError(f"{origin} does not match the model: " + "; ".join(parts))
    net.load_state_dict(state_dict, strict=True)


def load_model(path: Path | str, *, official_input_size: int | None = None):
    """Build the network described by a checkpoint and load its weights (eval mode).

    Returns:
        (LIBNet, LoadedCheckpoint)
    """
    from lib_deepfake.model.lib import LIBNet

    ckpt = read_checkpoint(path, official_input_size=official_input_size)
    net = LIBNet(ckpt.config)
    load_state_dict_strict(net, ckpt.state_dict, str(path))
    return net.eval(), ckpt


def save_checkpoint(
    path: Path | str,
    net: torch.nn.Module,
    config: LIBConfig,
    *,
    epoch: int | None = None,
    **extra: Any,
) -> Path:
    """Write our checkpoint format atomically. ``extra`` must be weights_only-safe (tensors, numbers, str,
    lists/dicts of them) - it is checked by reading the bytes back before the file is replaced."""
    from lib_deepfake.atomic import write_bytes_atomic

    module = getattr(net, "module", net)  # unwrap DDP
    payload = {
        "format": FORMAT_TAG,
        "format_version": FORMAT_VERSION,
        "config": config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
        "epoch": epoch,
        **extra,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    try:
        torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"refusing to write {path}: extra fields are not weights_only-safe ({exc})") from exc
    path = Path(path)
    write_bytes_atomic(path, data)
    return path
