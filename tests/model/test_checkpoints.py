"""Checkpoint formats: official {'state_dict','epoch'} with/without `module.`, ours, BGR contract, unsafe pickles,
mismatched keys and the offline pretrained error (CPU)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from lib_deepfake.errors import CheckpointError
from lib_deepfake.model import InferenceModel, LIBConfig, Preprocessing, create_lib, load_model, read_checkpoint
from lib_deepfake.model.checkpoint import save_checkpoint
from lib_deepfake.model.pretrained import PretrainedUnavailableError, load_pretrained
from lib_deepfake.model.testing import build_test_model, random_faces, write_test_checkpoint


@pytest.mark.parametrize("prefix", ["module.", ""])
@pytest.mark.parametrize(
    ("backbone", "kwargs"),
    [("resnet34", {"width_mult": 0.125}), ("mobilenet", {"width_mult": 0.25}), ("efficientnet-b0", {})],
)
def test_official_checkpoint_fingerprint(tmp_path: Path, prefix: str, backbone: str, kwargs: dict) -> None:
    net = create_lib(LIBConfig(backbone, num_libs=3, **kwargs))
    path = tmp_path / "model_best.pth"
    torch.save({"state_dict": {prefix + k: v for k, v in net.state_dict().items()}, "epoch": 7}, path)
    loaded, ckpt = load_model(path)
    assert ckpt.source == "official" and ckpt.epoch == 7
    assert ckpt.config.backbone == backbone and ckpt.config.num_libs == 3
    assert ckpt.config.preprocessing.channel_order == "BGR"
    assert ckpt.config.input_size == 224
    assert len(ckpt.sha256) == 64
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_efficientnet_variant_from_shapes(tmp_path: Path) -> None:
    net = create_lib(LIBConfig("efficientnet-b3", num_libs=2))
    path = tmp_path / "b3.pth"
    torch.save({"state_dict": net.state_dict(), "epoch": 1}, path)
    assert read_checkpoint(path).config.backbone == "efficientnet-b3"


def test_bare_state_dict_is_accepted(tmp_path: Path) -> None:
    net = create_lib(LIBConfig("mobilenet", num_libs=2, width_mult=0.25))
    torch.save(net.state_dict(), tmp_path / "bare.pth")
    assert read_checkpoint(tmp_path / "bare.pth").config.num_libs == 2


def test_official_bgr_contract_matches_official_preprocessing(tmp_path: Path) -> None:
    """Our RGB uint8 contract on an official checkpoint == the official dataset code (cv2 BGR, RGB constants
    applied position-wise) followed by softmax(p_y_given_z)[:, 1]."""
    path = write_test_checkpoint(tmp_path / "official.pth", official=True, backbone="mobilenet", size=32)
    net, ckpt = load_model(path, official_input_size=32)
    faces = random_faces(4, 32)
    ours = InferenceModel(net, ckpt.config.preprocessing)(faces)
    bgr = faces.numpy()[..., ::-1].astype("float32") / 255.0  # what cv2.imread gives, scaled
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    x = (torch.from_numpy(bgr.copy()) - mean) / std
    official = torch.softmax(net(x.permute(0, 3, 1, 2)).fused, dim=1)[:, 1]
    torch.testing.assert_close(ours, official, atol=1e-5, rtol=0)


def test_our_format_roundtrip_keeps_config_and_extra(tmp_path: Path) -> None:
    net, config = build_test_model("resnet34", width_mult=0.125, channel_order="RGB", size=48)
    path = save_checkpoint(tmp_path / "ours.pth", net, config, epoch=4, metrics={"val_auc": 0.9})
    ckpt = read_checkpoint(path)
    assert ckpt.source == "lib-deepfake" and ckpt.epoch == 4
    assert ckpt.config == config and ckpt.extra["metrics"] == {"val_auc": 0.9}
    loaded, _ = load_model(path)
    faces = random_faces(2, 48)
    torch.testing.assert_close(
        InferenceModel(loaded, config.preprocessing)(faces), InferenceModel(net, config.preprocessing)(faces)
    )


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_malicious_pickle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    with open(path, "wb") as fh:
        torch.save({"state_dict": {}, "payload": _Evil()}, fh)
    with pytest.raises(CheckpointError, match="refusing to load"):
        read_checkpoint(path)
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(CheckpointError):
        read_checkpoint(raw)


def test_unsafe_extra_is_refused_on_save(tmp_path: Path) -> None:
    net, config = build_test_model()
    with pytest.raises(CheckpointError, match="weights_only"):
        save_checkpoint(tmp_path / "x.pth", net, config, bad=_Evil())
    assert not (tmp_path / "x.pth").exists()


def test_mismatched_keys_are_listed(tmp_path: Path) -> None:
    net = create_lib(LIBConfig("mobilenet", num_libs=2, width_mult=0.25))
    state = net.state_dict()
    state.pop("linear.1.bias")
    state["unexpected.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pth"
    torch.save({"state_dict": state, "epoch": 1}, path)
    with pytest.raises(CheckpointError, match=r"missing keys: linear\.1\.bias.*unexpected keys: unexpected\.weight"):
        load_model(path)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all"])
def test_unreadable_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "missing.pth")


def test_pretrained_offline_error_names_url_and_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    net = create_lib(LIBConfig("resnet34", num_libs=2))
    with pytest.raises(PretrainedUnavailableError, match=r"resnet34-b627a593\.pth.*--no-pretrained"):
        load_pretrained(net)
    with pytest.raises(PretrainedUnavailableError, match="no ImageNet weights"):
        load_pretrained(create_lib(LIBConfig("mobilenet", num_libs=2)))


def test_pretrained_loads_into_every_block(monkeypatch: pytest.MonkeyPatch) -> None:
    source = create_lib(LIBConfig("resnet34", num_libs=2)).region_model1.state_dict()
    fake_imagenet = {**source, "fc.weight": torch.zeros(1000, 512), "fc.bias": torch.zeros(1000)}
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: fake_imagenet)
    net = create_lib(LIBConfig("resnet34", num_libs=2))
    load_pretrained(net)
    for block in net.backbones:
        assert torch.equal(block.conv1.weight, source["conv1.weight"])


def test_preprocessing_validation() -> None:
    with pytest.raises(Exception, match="channel_order"):
        Preprocessing(channel_order="BRG")  # type: ignore[arg-type]
