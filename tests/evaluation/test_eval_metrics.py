"""lib-eval's metrics on hand-made scores: face folders grouped into videos (``face0``/``face1`` = identities),
mean-of-frames and identity-max video scores, accuracy at the threshold, the Markdown table and escaping. CPU.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("sklearn")

from lib_deepfake.evaluation.metrics import dataset_metrics, video_of_folder  # noqa: E402
from lib_deepfake.evaluation.report import plot_name, render_markdown  # noqa: E402
from lib_deepfake.evaluation.scoring import DatasetScores  # noqa: E402


def test_video_of_folder():
    assert video_of_folder("D/crops/a/b.mp4/face1") == ("D/crops/a/b.mp4", 1)
    assert video_of_folder("D/crops/a/b.mp4") == ("D/crops/a/b.mp4", 0)
    assert video_of_folder("face3") == ("face3", 0)  # a bare name is a video, not an identity of nothing
    assert video_of_folder("D/crops/surface12") == ("D/crops/surface12", 0)


def _scores() -> DatasetScores:
    # video r1 (real, one folder), v2 (fake: a real-looking face0 with 4 crops + a swapped face1 with 3 crops),
    # v3 (fake, one folder), r4 (real, two identities: one crop of face1 is a spurious detection)
    folders = ["D/crops/r1.mp4", "D/crops/v2.mp4/face0", "D/crops/v2.mp4/face1", "D/crops/v3.mp4",
               "D/crops/r4.mp4/face0", "D/crops/r4.mp4/face1"]  # fmt: skip
    folder_labels = np.array([0, 1, 1, 1, 0, 0])
    frame_folder = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5])
    scores = np.array([0.2, 0.3, 0.1, 0.1, 0.2, 0.1, 0.2, 0.9, 0.8, 0.7, 0.6, 0.5, 0.7, 0.3, 0.2, 0.4, 0.95])
    return DatasetScores("D", "test", folders, folder_labels, [f"f{i}.png" for i in range(17)], frame_folder,
                         folder_labels[frame_folder], scores, [("bad.png", "corrupt PNG")])  # fmt: skip


def test_video_levels_and_threshold():
    from sklearn.metrics import roc_auc_score

    result = dataset_metrics(_scores(), 0.5, min_faces=3)
    m = result.metrics
    assert result.videos == ["D/crops/r1.mp4", "D/crops/v2.mp4", "D/crops/v3.mp4", "D/crops/r4.mp4"]
    assert (m["videos"], m["videos_real"], m["videos_fake"], m["folders"], m["frames"]) == (4, 2, 2, 6, 17)
    assert m["frames_skipped"] == 1
    mean = result.video_scores["video_mean"]
    top = result.video_scores["video_identity_max"]
    np.testing.assert_allclose(mean, [0.2, (0.6 + 2.4) / 7, 0.6, (0.9 + 0.95) / 4])
    # v2: max(face0 0.15, face1 0.8); r4: face1 has one crop (< min_faces) and does not count
    np.testing.assert_allclose(top, [0.2, 0.8, 0.6, 0.3])
    labels = np.array([0, 1, 1, 0])
    assert m["video_mean"]["auc"] == pytest.approx(roc_auc_score(labels, mean))
    assert m["video_identity_max"]["auc"] == 1.0
    assert m["frame"]["auc"] == pytest.approx(roc_auc_score(_scores().labels, _scores().scores))
    at = m["video_identity_max"]["at_threshold"]
    assert (at["acc"], at["tpr"], at["fpr"], at["threshold"]) == (1.0, 1.0, 0.0, 0.5)
    assert m["video_mean"]["at_threshold"]["acc"] == 0.75  # v2's mean 0.43 falls below 0.5
    assert "acc" not in m["frame"]  # only accuracy at the named threshold is reported


def test_markdown_layout_and_escaping():
    result = dataset_metrics(_scores(), 0.5)
    rows = [{**result.metrics, "dataset": "A|<b>x</b>"}, {**result.metrics, "dataset": "CelebDF"}]
    report = {
        "model": {"path": "/m/<model>.pth", "engine": "torch fp32 eager", "input_size": 32,
                  "card": {"training_data": [{"name": "FF++_c23"}], "demo": True}},
        "threshold": {"value": 0.5, "text": "0.5 (default: the model carries no calibrated threshold)"},
        "split": "test", "frames_per_video": None, "min_faces": 3, "datasets": rows,
        "files": {"roc": {"A|<b>x</b>": plot_name("A|<b>x</b>"), "CelebDF": plot_name("CelebDF")}},
    }  # fmt: skip
    md = render_markdown(report)
    assert "<b>" not in md and "&lt;model&gt;.pth" in md and "A\\|&lt;b&gt;x&lt;/b&gt;" in md
    cross = md.split("## Cross-dataset")[1].splitlines()
    cells = [len(re.findall(r"(?<!\\)\|", line)) for line in cross[2:5]]  # unescaped cell separators
    assert cells == [5, 5, 5] and cross[4].startswith("| &lt;model&gt;.pth | FF++_c23 | ")
    assert "**Demo model**" in md and "Threshold: 0.5 (default" in md
    assert plot_name("A|<b>x</b>") == "roc_A_b_x_b.png" and plot_name("FF++_c23") == "roc_FF++_c23.png"
    assert md.count("| 4 (2 / 2) | 17 |") == 2
