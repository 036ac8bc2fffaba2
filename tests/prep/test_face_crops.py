"""The bundled face-crop set that parity checks run on: what it holds, that it is made of faces found by our own
detector and cut by our own crop path, deterministic, cached per size; and the user's crops (--crops)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lib_deepfake.errors import LibDeepfakeError
from lib_deepfake.faces.crop import crop_faces
from lib_deepfake.prep import face_crops
from lib_deepfake.prep.face_crops import load_face_crop_set, parity_crops
from lib_deepfake.prep.portraits import load_portrait


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("face-crop-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(face_crops.CACHE_ENV, str(folder))
        yield folder


def test_what_the_set_holds(cache):
    crops = load_face_crop_set(32)
    assert crops.crops.shape == (66, 32, 32, 3) and crops.crops.dtype == np.uint8
    assert int((crops.labels == 0).sum()) == 48 and int((crops.labels == 1).sum()) == 18
    assert set(crops.labels[:13]) == {0, 1}  # any prefix of 13 or more holds both classes
    assert len(set(crops.names)) == 66 and {n.split("/")[0] for n in crops.names[:6]} == {
        "astronaut", "grace_hopper", "camera"}  # fmt: skip
    flat = crops.crops.reshape(66, -1).astype(np.int16)
    assert min(np.abs(flat[i] - flat[j]).mean() for i in range(66) for j in range(i)) > 0  # all distinct
    assert "66 face crops" in crops.describe() and crops.sha256[:12] in crops.describe()


def test_the_crops_are_the_detected_faces_cut_by_the_crop_path(cache):
    """The first crop is the astronaut's face as CenterFace finds it: it matches a crop at the box measured once
    with CenterFace (prep/portraits.py) closely, and one shifted by a quarter of the face clearly less."""
    crop = load_face_crop_set(32).crops[0].astype(np.float32)
    portrait = load_portrait("astronaut")
    frames = torch.from_numpy(portrait.image[None])

    def cut(dx: float) -> np.ndarray:
        box = portrait.box + np.float32([dx, 0, dx, 0])
        return crop_faces(frames, torch.tensor([[0, *box]]), 32, backend="torch")[0].numpy().astype(np.float32)

    width = float(portrait.box[2] - portrait.box[0])
    assert np.abs(crop - cut(0)).mean() < 8 < np.abs(crop - cut(width / 4)).mean()


def test_deterministic_and_cached_per_size(cache):
    first = load_face_crop_set(32)
    files = list(cache.glob("face-crops-s*.npz"))
    assert [f.name.split("-")[2] for f in files] == ["s32"]
    assert load_face_crop_set(32).sha256 == first.sha256  # read back from the cache
    assert load_face_crop_set(32, cache=False).sha256 == first.sha256  # built again: the same bytes
    assert load_face_crop_set(32, 20).crops.shape[0] == 20 and np.array_equal(load_face_crop_set(32, 20).crops,
                                                                                first.crops[:20])  # fmt: skip
    files[0].write_bytes(b"not an npz")  # a damaged cache is rebuilt, not trusted
    assert load_face_crop_set(32).sha256 == first.sha256


@pytest.mark.parametrize(("size", "n", "match"), [(8, None, "size"), (32, 0, "n must"), (32, 67, "n must")])
def test_bad_arguments(cache, size, n, match):
    with pytest.raises(LibDeepfakeError, match=match):
        load_face_crop_set(size, n)


def test_parity_crops_prefer_the_users_folder(cache, tmp_path):  # the cached set: no build
    folder = tmp_path / "mine" / "video"
    folder.mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.full((40, 40, 3), 60 * i, np.uint8)).save(folder / f"{i}.png")
    (folder / "notes.txt").write_text("not an image")
    name, crops, description = parity_crops(32, tmp_path / "mine", limit=3)
    assert name == "crops" and crops.shape == (3, 32, 32, 3) and str(tmp_path / "mine") in description
    name, crops, description = parity_crops(32, None, limit=10)
    assert name == "faces" and crops.shape == (10, 32, 32, 3) and "face crops" in description
