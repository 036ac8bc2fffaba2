"""Sampling plans: pure NumPy logic, no video needed."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from lib_deepfake.video import PlanError, VideoIndex, every_kth, explicit, gop_aware, keyframes, parse_plan, per_second
from lib_deepfake.video import uniform as uniform_plan
from lib_deepfake.video.pyav_source import plan_segments
from lib_deepfake.video.sampling import gop_snap, per_second_picks, uniform_targets


def make_index(n: int, gop: int | None = None, times: np.ndarray | None = None) -> VideoIndex:
    pts = np.arange(n, dtype=np.int64) * 100
    is_key = np.zeros(n, bool)
    if gop:
        is_key[::gop] = True
    else:
        is_key[:] = True
    t = times if times is not None else np.arange(n) / 30.0
    return VideoIndex(pts=pts, times_s=np.asarray(t, np.float64), is_key=is_key, time_base=Fraction(1, 3000))


def test_uniform_is_the_linspace_protocol():
    idx = make_index(300)
    rp = uniform_plan(32).resolve(idx)
    np.testing.assert_array_equal(rp.indices, np.linspace(0, 299, 32).astype(int))
    assert rp.max_shift == 0 and rp.indices[0] == 0 and rp.indices[-1] == 299


def test_uniform_on_short_videos_returns_each_frame_once():
    assert uniform_plan(32).resolve(make_index(5)).indices.tolist() == [0, 1, 2, 3, 4]
    assert uniform_plan(32).resolve(make_index(1)).indices.tolist() == [0]
    assert len(uniform_plan(32).resolve(make_index(0))) == 0


def test_gop_aware_snaps_to_cheap_frames_and_reports_the_shift():
    idx = make_index(1800, gop=60)
    rp = gop_aware(32, max_after=2).resolve(idx)
    targets = uniform_targets(1800, 32)
    assert len(rp) == 32
    offsets = rp.indices % 60
    assert np.all(offsets <= 2), "every pick is a keyframe or at most 2 frames after one"
    assert len(np.unique(rp.indices)) == len(rp.indices)
    np.testing.assert_array_equal(np.sort(rp.targets), targets)
    np.testing.assert_array_equal(rp.shifts, rp.indices - rp.targets)
    assert rp.max_shift == int(np.abs(rp.indices - rp.targets).max()) <= 60  # at most one GOP


def test_gop_aware_runs_out_of_cheap_frames_on_long_gops():
    idx = make_index(300, gop=250)
    rp = gop_aware(32, max_after=2).resolve(idx)
    assert set(rp.indices.tolist()) <= {0, 1, 2, 250, 251, 252}
    # max_shift turns far targets into exact picks instead.
    rp2 = gop_aware(32, max_after=2, max_shift=10).resolve(idx)
    assert len(rp2) == 32 and rp2.max_shift <= 10


def test_gop_snap_ties_go_to_the_earlier_frame():
    picks, tg = gop_snap(np.array([5]), np.array([0, 10]), 20, 0, None)
    assert picks.tolist() == [0] and tg.tolist() == [5]


def test_every_kth_and_all():
    assert every_kth(7).resolve(make_index(20)).indices.tolist() == [0, 7, 14]
    assert len(parse_plan("all").resolve(make_index(20))) == 20


def test_per_second_uses_timestamps_for_vfr():
    times = np.array([0.0, 0.02, 0.06, 0.093, 0.153, 0.173, 0.5, 1.0, 1.2])
    picks = per_second_picks(times, 10)  # t = 0, 0.1, ..., 1.2
    # at t=0.1 the frame on screen is the one shown at 0.093; at 0.2..0.4 the one at 0.173; at 1.0 the one at 1.0
    assert picks.tolist() == [0, 3, 5, 6, 7, 8]
    assert per_second(10).resolve(make_index(9, times=times)).indices.tolist() == picks.tolist()


def test_keyframes_and_cap():
    idx = make_index(600, gop=60)
    assert keyframes().resolve(idx).indices.tolist() == list(range(0, 600, 60))
    capped = keyframes(3).resolve(idx).indices
    assert len(capped) == 3 and set(capped.tolist()) <= set(range(0, 600, 60))
    assert parse_plan("keyframes").keyframes_only


def test_explicit_sorts_dedups_and_clamps_overshoot(caplog):
    rp = explicit([9, 3, 3, 500]).resolve(make_index(10))
    assert rp.indices.tolist() == [3, 9]  # 500 clamps to the last frame (9)
    assert "clamped" in caplog.text
    with pytest.raises(PlanError):
        explicit([-1])


@pytest.mark.parametrize(
    "spec", ["uniform:32", "gop:32:2", "gop:16:1:5", "every:3", "fps:2", "keyframes", "keyframes:4", "indices:1,5"]
)
def test_parse_plan_round_trips(spec):
    assert str(parse_plan(spec)) == spec


@pytest.mark.parametrize("spec", ["", "uniform:x", "every", "fps:0", "nope:3", "uniform:0", "gop:4:-1"])
def test_parse_plan_rejects_bad_specs(spec):
    with pytest.raises(PlanError):
        parse_plan(spec)


def test_index_helpers():
    idx = make_index(100, gop=25)
    assert idx.keyframe_before(0) == 0 and idx.keyframe_before(24) == 0 and idx.keyframe_before(25) == 25
    assert idx.index_of_pts(500) == 5 and idx.index_of_pts(520) == 5 and idx.index_of_pts(10**9) == 99


def test_plan_segments_share_a_seek_only_within_a_gop():
    idx = make_index(100, gop=25)
    assert plan_segments([1, 5, 20, 30, 31, 80], idx) == [[1, 5, 20], [30, 31], [80]]
    # A wanted frame right after the previous one continues even across a keyframe.
    assert plan_segments([24, 26], idx) == [[24, 26]]
