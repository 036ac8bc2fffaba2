"""lib-bench scale on a tiny collection (CPU, the centre-box detector): the copies are found, the report opens in the
browser when Chromium is there, and the result names the machine and the load. No markers."""

from __future__ import annotations

import json

from click.testing import CliRunner

from lib_deepfake.cli.bench import main


def test_scale_bench_tiny(tmp_path):
    res = CliRunner().invoke(main, ["scale", "--videos", "8,12", "--duplicate-share", "0.25", "--frames", "2",
                                    "--detector", "center", "--work-dir", str(tmp_path / "w"), "--out",
                                    str(tmp_path / "r"), "--allow-noisy", "--quiet-wait-s", "0"])  # fmt: skip
    assert res.exit_code == 0, res.output
    (json_path,) = (tmp_path / "r").glob("scale-*.json")
    result = json.loads(json_path.read_text())
    assert [r["videos"] for r in result["rows"]] == [8, 12]
    for r in result["rows"]:
        assert r["copies"] == r["copies_made"] == round(r["videos"] * 0.25)
        assert sum(r["status"].values()) == r["videos"] and r["peak_rss_mib"] > 50 and r["resume_wall_s"] > 0
    assert "protocol" in result and result["machine"]["cpu"]
    assert "| 12 |" in (tmp_path / "r" / json_path.name.replace(".json", ".md")).read_text()


def test_browser_gets_an_absolute_uri_for_a_relative_report(tmp_path, monkeypatch):
    """The default --work-dir is relative (bench/clips/scale): the report's URI must still be a file:// URI."""
    import subprocess
    from types import SimpleNamespace

    from lib_deepfake.bench import scale

    seen = []

    def fake_run(cmd, **kwargs):
        seen.append(cmd)
        return SimpleNamespace(stdout='<body data-load-ms="12" data-matches="50">', stderr="", returncode=0)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(scale.shutil, "which", lambda name: "/usr/bin/chromium")
    monkeypatch.setattr(subprocess, "run", fake_run)
    (tmp_path / "scan").mkdir()
    (tmp_path / "scan" / "report.html").write_text("<html></html>")
    got = scale.browser_load_ms(scale.Path("scan/report.html"))
    assert seen[0][-1] == (tmp_path / "scan" / "report.html").as_uri()
    assert got["load_ms"] == 12 and got["rows_in_page"] == 50
