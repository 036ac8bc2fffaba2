"""Dataset lists, frame sampling, oversampling, loading and bad inputs (official layout, CPU, generated data)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from lib_deepfake.errors import DatasetError
from lib_deepfake.model import InferenceModel, LIBConfig, Preprocessing, create_lib
from lib_deepfake.train.data import FrameDataset, collate, make_loader
from lib_deepfake.train.lists import (
    build_samples,
    official_real_ratio,
    pick_frames,
    read_split,
    require_both_classes,
)
from lib_deepfake.train.normalize import make_normalizer


def _png(path: Path, value: int = 100, size: int = 8) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((size, size, 3), value, np.uint8)
    img[..., 2] = 255 - value  # distinct channels, to see the channel order
    cv2.imwrite(str(path), img)


def _layout(root: Path, name: str = "D", frames: int = 3, extra: dict[str, str] | None = None) -> Path:
    """Each split: one real and one fake video, `frames` PNGs each."""
    for split in ("train", "val", "test"):
        for label, cls in ((0, "real"), (1, "fake")):
            rel = f"{name}/{split}/{cls}/vid.mp4"
            for f in range(frames):
                _png(root / rel / f"{f:03d}.png", 40 + 50 * label)
            text = (extra or {}).get(f"{split}_{cls}", f"{label},{rel},{frames}\n")
            (root / name / f"{split}_{cls}.txt").write_text(text)
    return root


def test_read_split_keys_and_labels(tmp_path):
    root = _layout(tmp_path)
    videos = read_split(root, ["D"], "train")
    assert [v.label for v in videos] == [0, 1]
    assert videos[0].key == "D/train/real/vid.mp4"  # full relative path, never just the folder name
    assert len(videos[0].frames) == 3 and videos[0].frames == tuple(sorted(videos[0].frames))


def test_lines_tolerate_whitespace_and_absolute_paths(tmp_path):
    root = _layout(tmp_path)
    absolute = (root / "D/val/real/vid.mp4").resolve()
    (root / "D" / "val_real.txt").write_text(f"\n  0 , {absolute} , 3 \n# comment\n")
    videos = read_split(root, ["D"], "val")
    assert videos[0].key == "D/val/real/vid.mp4"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("2,D/train/real/vid.mp4,3\n", "label must be 0 (real) or 1 (fake)"),
        ("0,D/train/real/missing.mp4,3\n", "does not exist"),
        ("0,../outside,3\n", "points outside the dataset root"),
        ("\n\n", "lists no folder with PNG frames"),
        ("0\n", "expected 'label,dir,frames'"),
    ],
)
def test_bad_list_lines(tmp_path, line, message):
    root = _layout(tmp_path / "root", extra={"train_real": line})
    (tmp_path / "outside").mkdir()
    with pytest.raises(DatasetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_split(root, ["D"], "train")


def test_missing_root_dataset_and_list(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        read_split(tmp_path / "nope", ["D"], "train")
    with pytest.raises(DatasetError, match="dataset folder"):
        read_split(tmp_path, ["D"], "train")
    root = _layout(tmp_path)
    (root / "D" / "test_fake.txt").unlink()
    with pytest.raises(DatasetError, match="missing list file"):
        read_split(root, ["D"], "test")


def test_non_png_files_are_ignored_with_a_warning(tmp_path, caplog):
    root = _layout(tmp_path)
    (root / "D/train/real/vid.mp4/notes.txt").write_text("x")
    (root / "D/train/real/vid.mp4/frame.jpg").write_bytes(b"\xff\xd8")
    with caplog.at_level(logging.WARNING):
        videos = read_split(root, ["D"], "train")
    assert len(videos[0].frames) == 3
    assert "ignored 2 files that are not .png" in caplog.text


def test_single_class_validation_is_a_clear_error(tmp_path):
    root = _layout(tmp_path)
    videos = [v for v in read_split(root, ["D"], "val") if v.label == 1]
    with pytest.raises(DatasetError, match="only fake videos: AUC .* is undefined"):
        require_both_classes(videos, "val")


def test_pick_frames():
    assert pick_frames(10, None).tolist() == list(range(10))
    assert pick_frames(3, 32).tolist() == [0, 1, 2]
    assert pick_frames(10, 5).tolist() == [1, 3, 5, 7, 9]  # segment centres
    rng = np.random.default_rng(0)
    drawn = pick_frames(100, 4, rng)
    assert all(25 * k <= i < 25 * (k + 1) for k, i in enumerate(drawn))  # one per segment


def test_oversampling_ratios(tmp_path):
    assert [official_real_ratio(n) for n in ("FF++", "DFDC-Preview", "Celeb-DF-v2", "DFDC", "Celeb-DF-v1")] == [
        4,
        4,
        6,
        5,
        1,
    ]
    root = _layout(tmp_path, name="FF++")
    videos = read_split(root, ["FF++"], "train")
    official = build_samples(videos, None, oversample="official")
    assert sum(s.label == 0 for s in official) == 4 * 3 and sum(s.label == 1 for s in official) == 3
    assert len(build_samples(videos, None, oversample="none")) == 6
    assert sum(s.label == 0 for s in build_samples(videos, 2, oversample=3)) == 6


def test_broken_images_are_skipped_and_counted(tmp_path):
    root = _layout(tmp_path)
    folder = root / "D/train/fake/vid.mp4"
    (folder / "001.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage")  # truncated PNG
    (folder / "002.png").write_bytes(b"\xff\xd8\xff\xe0 not a png")  # a JPEG named .png
    samples = build_samples(read_split(root, ["D"], "train"), None)
    ds = FrameDataset(samples, 16, "RGB")
    batch = collate([ds[i] for i in range(len(ds))])
    assert batch.faces.shape == (4, 16, 16, 3) and batch.faces.dtype == torch.uint8
    assert sorted(reason for _, reason in batch.skipped) == ["corrupt PNG", "not a PNG file"]
    loader = make_loader(ds, 2, shuffle=True, drop_last=False, workers=0, pin_memory=False, seed=0, epoch=0)
    assert sum(len(b.skipped) for b in loader) == 2


def test_dataset_gives_rgb_and_normalize_is_the_inference_path(tmp_path):
    root = _layout(tmp_path)
    samples = build_samples(read_split(root, ["D"], "train"), None)
    face = FrameDataset(samples, 8, "RGB")[0][0]
    assert face[0, 0].tolist() == [215, 40, 40]  # written as BGR (40, 40, 215) -> RGB
    net = create_lib(LIBConfig("mobilenet", num_libs=2, width_mult=0.25, preprocessing=Preprocessing(32)))
    net.train()
    for order in ("RGB", "BGR"):
        prep = Preprocessing(input_size=32, channel_order=order)
        faces = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)
        ours = make_normalizer(net, prep, torch.device("cpu"))(faces)
        ref = InferenceModel(create_lib(LIBConfig("mobilenet", 2, width_mult=0.25)), prep).normalize(faces)
        assert torch.equal(ours, ref)
    assert net.training  # building the normaliser leaves the training mode alone


def test_augment_is_deterministic_per_seed_and_epoch(tmp_path):
    from lib_deepfake.train.augment import build_official_augment

    root = _layout(tmp_path, frames=4)
    samples = build_samples(read_split(root, ["D"], "train"), None)
    aug = build_official_augment(32)

    def faces(epoch: int) -> torch.Tensor:
        ds = FrameDataset(samples, 32, "BGR", aug, seed=1, epoch=epoch)
        return torch.stack([ds[i][0] for i in range(len(ds))])

    assert torch.equal(faces(1), faces(1))
    assert not torch.equal(faces(1), faces(2))
