"""The synthetic corpus (plan, determinism, labels.csv, decodability) and the self-blending primitives.
CPU; needs av, cv2, scikit-image and matplotlib (the portraits).
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

pytest.importorskip("cv2")
pytest.importorskip("skimage")

from lib_deepfake.errors import ContractError  # noqa: E402
from lib_deepfake.prep.blend import face_mask, sample_blend_params, self_blend  # noqa: E402
from lib_deepfake.prep.portraits import PORTRAIT_NAMES, flip_landmarks, load_portrait  # noqa: E402
from lib_deepfake.prep.synth import SynthConfig, plan_clips  # noqa: E402


def test_portraits_load_with_geometry():
    for name in PORTRAIT_NAMES:
        p = load_portrait(name)
        assert p.image.dtype == np.uint8 and p.image.ndim == 3 and p.image.shape[2] == 3
        x1, y1, x2, y2 = p.box
        assert (p.landmarks[:, 0] > x1).all() and (p.landmarks[:, 0] < x2).all()
        assert (p.landmarks[:, 1] > y1).all() and (p.landmarks[:, 1] < y2).all()
    flipped = flip_landmarks(load_portrait("astronaut").landmarks, 512)
    assert flipped[0, 0] < flipped[1, 0]  # left eye stays the left one in the mirrored image


def test_plan_is_deterministic_and_balanced():
    cfg = SynthConfig(videos=16, seed=5)
    a, b = plan_clips(cfg), plan_clips(cfg)
    assert a == b and a != plan_clips(SynthConfig(videos=16, seed=6))
    for label in (0, 1):
        splits = [s.split for s in a if s.label == label]
        assert len(splits) == 8 and {"train", "val", "test"} == set(splits)
    assert all((s.blend is None) == (s.label == 0) for s in a)
    with pytest.raises(ContractError):
        SynthConfig(width=321)


def test_face_mask_covers_the_face():
    p = load_portrait("astronaut")
    mask = face_mask(p.image.shape[:2], p.landmarks, blur_frac=0.0)
    for x, y in p.landmarks:
        assert mask[int(y), int(x)] == pytest.approx(1.0)
    assert mask[5, 5] == 0 and mask[500, 500] == 0
    area = (mask > 0.5).sum()
    box_area = (p.box[2] - p.box[0]) * (p.box[3] - p.box[1])
    assert 0.5 * box_area < area < 1.5 * box_area


def test_self_blend_changes_only_the_face_region():
    p = load_portrait("grace_hopper")
    rng = np.random.default_rng(0)
    for _ in range(5):
        params = sample_blend_params(rng)
        out, mask = self_blend(p.image, p.landmarks, params)
        assert out.shape == p.image.shape and out.dtype == np.uint8
        diff = np.abs(out.astype(int) - p.image.astype(int)).max(-1)
        inside, outside = mask > 0.9 * mask.max(), mask == 0
        if params.copy_is_source:  # the transformed copy is pasted into the face; the rest is untouched
            assert diff[inside].mean() > 2 and diff[outside].max() <= 1
        else:  # the original face is pasted onto the transformed copy
            assert diff[outside].mean() > 2 and diff[inside].mean() < diff[outside].mean()
    again, _ = self_blend(p.image, p.landmarks, sample_blend_params(np.random.default_rng(7)))
    same, _ = self_blend(p.image, p.landmarks, sample_blend_params(np.random.default_rng(7)))
    assert np.array_equal(again, same)


def test_corpus_files(synth_corpus):
    av = pytest.importorskip("av")
    with open(synth_corpus / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and {r["label"] for r in rows} == {"0", "1"}
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    truth = json.loads((synth_corpus / "ground_truth.json").read_text())
    for r in rows:
        with av.open(str(synth_corpus / r["path"])) as c:
            s = c.streams.video[0]
            assert s.codec_context.name == "h264" and (s.width, s.height) == (224, 160)
            n = sum(1 for _ in c.decode(video=0))
        assert n == 10 == len(truth[r["path"]]["boxes"])


def test_corpus_is_deterministic(synth_corpus, tmp_path):
    from lib_deepfake.prep.synth import build_synth_corpus

    build_synth_corpus(tmp_path, SynthConfig(videos=6, seconds=1.0, fps=10, width=224, height=160, seed=3))
    for name in ("real_000.mp4", "fake_002.mp4"):
        assert (tmp_path / "videos" / name).read_bytes() == (synth_corpus / "videos" / name).read_bytes()
    assert (tmp_path / "labels.csv").read_text() == (synth_corpus / "labels.csv").read_text()
