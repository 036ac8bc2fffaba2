"""lib-bench decode: the result structure on tiny clips (the real numbers live in bench/results/)."""

from __future__ import annotations

import json

from lib_deepfake.bench.decode import BenchClip, format_markdown, make_bench_clips, run_decode_bench, write_results


def test_run_decode_bench_structure(tmp_path):
    clips = (BenchClip("tiny-gop10", seconds=1, gop=10, size=(64, 48)),)
    res = run_decode_bench(tmp_path / "clips", plans=("uniform:4", "gop:4", "keyframes"), repeats=1, clips=clips)
    json.dumps(res)  # JSON-serialisable
    assert res["machine"]["cpu_cores"] >= 1 and "av" in res["machine"]["versions"]
    rows = {r["plan"]: r for r in res["rows"]}
    assert set(rows) == {"full", "uniform:4", "gop:4", "keyframes"}
    assert rows["full"]["frames_decoded"] == rows["full"]["frames_converted"] == 30
    assert rows["keyframes"]["frames_decoded"] == rows["keyframes"]["frames_returned"] == 3
    assert rows["uniform:4"]["frames_converted"] == 4 and rows["uniform:4"]["max_pick_shift"] == 0
    assert rows["gop:4"]["max_pick_shift"] >= 0
    for r in res["rows"]:
        assert r["wall_s"] > 0 and r["speedup_vs_full"] > 0
    md = format_markdown(res)
    assert "| tiny-gop10 | keyframes | 3 |" in md
    jp, mp = write_results(res, tmp_path / "out", "decode-test")
    assert json.loads(jp.read_text())["rows"] and mp.read_text() == md
    # clips are reused when present
    mtime = (tmp_path / "clips" / "tiny-gop10.mp4").stat().st_mtime_ns
    make_bench_clips(tmp_path / "clips", clips)
    assert (tmp_path / "clips" / "tiny-gop10.mp4").stat().st_mtime_ns == mtime
