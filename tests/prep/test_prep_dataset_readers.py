"""The dataset-layout readers on miniature copies of FaceForensics++, Celeb-DF-v2 and DFDC (placeholder bytes: the
readers only list files and read split/label files): records, labels (Celeb-DF's inverted test list), splits,
groups (a fake stays with its original), what is missing or unlisted, and one-line errors. Pure; no video decoding.
"""

from __future__ import annotations

import json

import pytest
from tests.prep.layouts import make_celebdf, make_dfdc, make_faceforensics, placeholder

from lib_deepfake.errors import DatasetError
from lib_deepfake.prep.datasets.celebdf import celebdf_group, parse_test_list, scan_celebdf
from lib_deepfake.prep.datasets.dfdc import read_test_labels, scan_dfdc
from lib_deepfake.prep.datasets.faceforensics import scan_faceforensics
from lib_deepfake.prep.datasets.records import (
    VideoRecord,
    check_groups,
    class_balance,
    count_records,
    hold_out_val,
)


def _by_name(scan):
    return {f"{r.source}/{r.path.name}": r for r in scan.records}


# ---- FaceForensics++ ---------------------------------------------------------------------------------------------


def test_ff_pairs_give_both_originals_and_both_fakes_per_method(tmp_path):
    make_faceforensics(tmp_path, placeholder, methods=("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures",
                                                       "FaceShifter"))  # fmt: skip
    scan = scan_faceforensics(tmp_path, "c23")
    recs = _by_name(scan)
    # 6 originals + 4 methods x 6 fakes; FaceShifter is on disk but not asked for
    assert len(scan.records) == 30
    assert {r.source for r in scan.records} == {"youtube", "Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"}
    assert scan.options["methods_left_out"] == ["FaceShifter"] and "FaceShifter" in scan.notes[0]
    assert recs["youtube/000.mp4"].label == 0 and recs["youtube/000.mp4"].split == "train"
    assert recs["Deepfakes/000_001.mp4"].label == 1 and recs["Deepfakes/001_000.mp4"].split == "train"
    assert recs["FaceSwap/005_004.mp4"].split == "test" and recs["youtube/003.mp4"].split == "val"
    # the pair's four videos (per method) share a group, and no group straddles splits
    assert {r.group for r in scan.records if r.path.stem in ("004", "005", "004_005", "005_004")} == {"004_005"}
    assert scan.missing == [] and scan.unlisted == []
    # masks folders are not videos
    assert not any("masks" in str(r.path) for r in scan.records)
    assert class_balance(scan.records) == {"train": 4.0, "val": 4.0, "test": 4.0}
    assert count_records(scan.records)["test"] == {"real": 2, "fake": 8}


def test_ff_methods_subset_missing_and_unlisted(tmp_path):
    make_faceforensics(tmp_path, placeholder)
    (tmp_path / "manipulated_sequences/Deepfakes/c23/videos/003_002.mp4").unlink()
    (tmp_path / "original_sequences/youtube/c23/videos/999.mp4").write_bytes(b"x")
    scan = scan_faceforensics(tmp_path, "c23", ["Deepfakes"])
    assert {r.source for r in scan.records} == {"youtube", "Deepfakes"}
    assert len(scan.records) == 6 + 5
    assert [m.path.endswith("Deepfakes/c23/videos/003_002.mp4") for m in scan.missing] == [True]
    assert "val.json" in scan.missing[0].reason
    assert [u.path.endswith("999.mp4") for u in scan.unlisted] == [True]
    assert sorted(scan.options["methods_left_out"]) == ["Face2Face", "FaceSwap", "NeuralTextures"]
    assert class_balance(scan.records)["val"] == 0.5


def test_ff_missing_method_or_compression_folder_names_the_path(tmp_path):
    make_faceforensics(tmp_path, placeholder, methods=("Deepfakes",))
    with pytest.raises(DatasetError, match=r"manipulated_sequences/FaceSwap/c23/videos"):
        scan_faceforensics(tmp_path, "c23", ["Deepfakes", "FaceSwap"])
    with pytest.raises(DatasetError, match=r"original_sequences/youtube/c40/videos"):
        scan_faceforensics(tmp_path, "c40", ["Deepfakes"])
    with pytest.raises(DatasetError, match="compression must be one of"):
        scan_faceforensics(tmp_path, "c99", ["Deepfakes"])


@pytest.mark.parametrize("where", ["root", "splits", "explicit"])
def test_ff_split_files_are_found(tmp_path, where):
    make_faceforensics(tmp_path / "FF", placeholder, methods=("Deepfakes",), splits_in="root" if where == "root"
                       else "splits")  # fmt: skip
    splits_dir = None
    if where == "explicit":
        splits_dir = tmp_path / "elsewhere"
        (tmp_path / "FF" / "splits").rename(splits_dir)
    scan = scan_faceforensics(tmp_path / "FF", "c23", ["Deepfakes"], splits_dir)
    assert len(scan.records) == 12


def test_ff_split_file_errors(tmp_path):
    make_faceforensics(tmp_path, placeholder, methods=("Deepfakes",), splits_in="none")
    with pytest.raises(DatasetError, match="--splits-dir"):
        scan_faceforensics(tmp_path, "c23", ["Deepfakes"])
    for name in ("train", "val", "test"):
        (tmp_path / f"{name}.json").write_text("[]")
    (tmp_path / "val.json").write_text(json.dumps([["000", "001", "002"]]))
    with pytest.raises(DatasetError, match="val.json: entry 0"):
        scan_faceforensics(tmp_path, "c23", ["Deepfakes"])
    (tmp_path / "val.json").write_text("{not json")
    with pytest.raises(DatasetError, match="cannot read FF\\+\\+ split file"):
        scan_faceforensics(tmp_path, "c23", ["Deepfakes"])
    (tmp_path / "train.json").write_text(json.dumps([["000", "001"]]))
    (tmp_path / "val.json").write_text(json.dumps([["001", "002"]]))
    with pytest.raises(DatasetError, match="id 001 is in train.json"):
        scan_faceforensics(tmp_path, "c23", ["Deepfakes"])


# ---- Celeb-DF ----------------------------------------------------------------------------------------------------


def test_celebdf_test_list_labels_are_inverted(tmp_path):
    make_celebdf(tmp_path, placeholder)
    assert parse_test_list(tmp_path / "List_of_testing_videos.txt") == [
        (0, "YouTube-real/00001.mp4"),  # Celeb-DF's 1 = real -> our 0
        (1, "Celeb-synthesis/id1_id0_0000.mp4"),  # Celeb-DF's 0 = fake -> our 1
    ]
    scan = scan_celebdf(tmp_path)
    recs = _by_name(scan)
    assert (recs["YouTube-real/00001.mp4"].label, recs["YouTube-real/00001.mp4"].split) == (0, "test")
    assert (recs["Celeb-synthesis/id1_id0_0000.mp4"].label, recs["Celeb-synthesis/id1_id0_0000.mp4"].split) == (
        1,
        "test",
    )
    # every other video is train, labelled by its folder
    assert count_records(scan.records) == {
        "train": {"real": 4, "fake": 2},
        "val": {"real": 0, "fake": 0},
        "test": {"real": 1, "fake": 1},
    }
    assert recs["Celeb-real/id0_0000.mp4"].label == 0 and recs["Celeb-synthesis/id0_id1_0000.mp4"].label == 1


def test_celebdf_label_that_contradicts_the_folder_is_refused(tmp_path):
    # A list written in our convention (1 = fake) instead of Celeb-DF's would mark reals as fake: refused.
    make_celebdf(tmp_path, placeholder, test=["0 YouTube-real/00001.mp4", "1 Celeb-synthesis/id1_id0_0000.mp4"])
    with pytest.raises(DatasetError, match="YouTube-real/00001.mp4 is marked fake"):
        scan_celebdf(tmp_path)


def test_celebdf_missing_pieces(tmp_path):
    make_celebdf(tmp_path, placeholder, test=["1 YouTube-real/00001.mp4", "0 Celeb-synthesis/id9_id8_0000.mp4"])
    scan = scan_celebdf(tmp_path)
    assert [m.path.endswith("id9_id8_0000.mp4") for m in scan.missing] == [True]
    (tmp_path / "List_of_testing_videos.txt").write_text("1 YouTube-real/00001.mp4 extra\n")
    with pytest.raises(DatasetError, match="List_of_testing_videos.txt:1"):
        scan_celebdf(tmp_path)
    (tmp_path / "List_of_testing_videos.txt").unlink()
    with pytest.raises(DatasetError, match="List_of_testing_videos.txt"):
        scan_celebdf(tmp_path)
    (tmp_path / "YouTube-real").rename(tmp_path / "Youtube-real")
    with pytest.raises(DatasetError, match=r"missing: .*YouTube-real"):
        scan_celebdf(tmp_path)


def test_celebdf_val_hold_out_keeps_synthesis_with_its_real_video(tmp_path):
    assert celebdf_group("Celeb-synthesis/id0_id1_0001.mp4") == "Celeb-real/id0_0001.mp4"
    assert celebdf_group("YouTube-real/00000.mp4") == "YouTube-real/00000.mp4"
    make_celebdf(tmp_path, placeholder)
    scan = scan_celebdf(tmp_path, val_fraction=0.5)
    train_val = [r for r in scan.records if r.split != "test"]
    check_groups(train_val)
    assert {r.split for r in train_val} == {"train", "val"}  # the hash sends some groups each way at 0.5
    assert scan_celebdf(tmp_path, val_fraction=0.5).records == scan.records  # deterministic


# ---- DFDC ----------------------------------------------------------------------------------------------------------


def test_dfdc_parts_and_test_set(tmp_path):
    make_dfdc(tmp_path, placeholder)
    scan = scan_dfdc(tmp_path, val_fraction=0.0)
    recs = {r.path.name: r for r in scan.records}
    assert len(recs) == 8
    assert (recs["ccc.mp4"].label, recs["ccc.mp4"].group, recs["ccc.mp4"].source) == (1, "aaa.mp4", "dfdc_train_part_0")
    assert (recs["aaa.mp4"].label, recs["aaa.mp4"].group) == (0, "aaa.mp4")
    assert (recs["t_fake.mp4"].label, recs["t_fake.mp4"].split) == (1, "test")
    assert (recs["t_real.mp4"].label, recs["t_real.mp4"].split) == (0, "test")
    assert class_balance(scan.records) == {"train": 1.0, "test": 1.0}


def test_dfdc_fakes_stay_with_their_originals(tmp_path):
    parts = {f"dfdc_train_part_{k}": {} for k in range(3)}
    for i in range(40):
        part = parts[f"dfdc_train_part_{i % 3}"]
        part[f"r{i:03d}.mp4"] = None
        for j in range(2):  # fakes may sit in another part than their original
            parts[f"dfdc_train_part_{(i + j + 1) % 3}"][f"f{i:03d}_{j}.mp4"] = f"r{i:03d}.mp4"
    make_dfdc(tmp_path, placeholder, parts=parts, test={}, under="train")
    scan = scan_dfdc(tmp_path, val_fraction=0.3)
    split_of = {r.path.name: r.split for r in scan.records}
    assert len(split_of) == 120 and {"train", "val"} == set(split_of.values())
    for i in range(40):
        assert split_of[f"f{i:03d}_0.mp4"] == split_of[f"f{i:03d}_1.mp4"] == split_of[f"r{i:03d}.mp4"]
    n_val = sum(s == "val" for s in split_of.values())
    assert 0.1 < n_val / 120 < 0.5


def test_dfdc_missing_unlisted_and_errors(tmp_path):
    make_dfdc(tmp_path, placeholder)
    (tmp_path / "dfdc_train_part_0" / "ddd.mp4").unlink()
    (tmp_path / "dfdc_train_part_1" / "zzz.mp4").write_bytes(b"x")
    (tmp_path / "dfdc_train_part_7").mkdir()
    (tmp_path / "test" / "t_real.mp4").unlink()
    scan = scan_dfdc(tmp_path)
    reasons = sorted((p.path.rsplit("/", 1)[-1], p.reason.split(":")[0]) for p in scan.missing)
    assert reasons == [
        ("ddd.mp4", "in metadata.json but not on disk"),
        ("metadata.json", "part folder without metadata.json"),
        ("t_real.mp4", "in the test labels.csv but not on disk"),
    ]
    assert [u.path.endswith("zzz.mp4") for u in scan.unlisted] == [True]
    # the same video in two parts
    meta = json.loads((tmp_path / "dfdc_train_part_1" / "metadata.json").read_text())
    meta["aaa.mp4"] = {"label": "REAL", "split": "train"}
    (tmp_path / "dfdc_train_part_1" / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="aaa.mp4 is listed in"):
        scan_dfdc(tmp_path)
    meta.pop("aaa.mp4")
    meta["fff.mp4"] = {"label": "FAKE", "split": "train"}
    (tmp_path / "dfdc_train_part_1" / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="name no original"):
        scan_dfdc(tmp_path)
    meta["fff.mp4"] = {"label": "fake?"}
    (tmp_path / "dfdc_train_part_1" / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="expected REAL or FAKE"):
        scan_dfdc(tmp_path)
    with pytest.raises(DatasetError, match="no dfdc_train_part_"):
        scan_dfdc(tmp_path / "dfdc_train_part_7")


def test_dfdc_test_labels_file(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("filename,label\na.mp4,1\nb.mp4,0.0\n")
    assert read_test_labels(path) == [("a.mp4", 1), ("b.mp4", 0)]
    path.write_text("filename,label\na.mp4,FAKE\n")
    with pytest.raises(DatasetError, match="labels.csv:2: label must be 0"):
        read_test_labels(path)
    path.write_text("name,label\na.mp4,1\n")
    with pytest.raises(DatasetError, match="filename,label"):
        read_test_labels(path)
    (tmp_path / "a.mp4").write_bytes(b"x")
    path.write_text("filename,label\na.mp4,1\n")
    scan = scan_dfdc(tmp_path, test_labels=path)  # a test set alone, labels.csv given explicitly
    assert [(r.path.name, r.label, r.split) for r in scan.records] == [("a.mp4", 1, "test")]


# ---- shared steps ------------------------------------------------------------------------------------------------


def test_hold_out_and_group_check(tmp_path):
    recs = [VideoRecord(tmp_path / f"{i}.mp4", i % 2, "train", f"g{i // 2}", "s") for i in range(200)]
    held = hold_out_val(recs, 0.25)
    assert hold_out_val(recs, 0.25) == held and hold_out_val(recs, 0.0) == recs
    check_groups(held)
    assert 0.15 < sum(r.split == "val" for r in held) / 200 < 0.35
    torn = [*held[:1], VideoRecord(tmp_path / "x.mp4", 1, "test", held[0].group, "s")]
    with pytest.raises(DatasetError, match="span several splits"):
        check_groups(torn)
    with pytest.raises(DatasetError, match="val fraction"):
        hold_out_val(recs, 1.0)
