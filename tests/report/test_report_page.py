"""report.html for scans of any size (lib_deepfake.report): escaping, compact data, sidecar details, streaming
memory, and - in a real headless Chromium (Debian's package; .ci/run installs it) - load time, size, sorting,
filtering and on-demand details on a 100,000-row results folder. CPU only; no markers."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import tracemalloc
from pathlib import Path

import pytest
from tests.helpers.results import HOSTILE_NAME, run_payload, write_results_folder

from lib_deepfake.report import REPORT_FILES, write_report
from lib_deepfake.report.writer import iter_jsonl

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt-get install chromium)")


def _block(page: str, block_id: str):
    m = re.search(rf'<script type="application/json" id="{block_id}">(.*?)</script>', page, re.S)
    assert m, block_id
    return json.loads(m.group(1))


def _write(tmp_path: Path, n: int, **kw) -> tuple[Path, dict]:
    counts = write_results_folder(tmp_path, n)
    summary = {"files": n, "status": counts, "verdicts": {}}
    page = write_report(tmp_path / "report.html", results=tmp_path / "results.jsonl",
                        report_data=tmp_path / "report_data.jsonl", run=run_payload(), summary=summary,
                        **kw)  # fmt: skip
    return page, counts


def test_hostile_names_never_reach_markup_or_script(tmp_path):
    page, _ = _write(tmp_path, 20)
    text = page.read_text()
    assert "<img src=x" not in text
    assert "</script><b>bad" not in text
    assert "&lt;b&gt;model&lt;/b&gt;" in text  # header text escaped
    rows = _block(text, "rows-data")
    meta = _block(text, "meta-data")
    names = [r[1] for r in rows]
    assert HOSTILE_NAME in names  # the data still says what the file is called
    # the script builds the table with textContent only
    script = text.rsplit("<script>", 1)[1]
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script and "document.write" not in script
    assert meta["dirs"] == ["/data/collection/batch_000/"]


def test_rows_are_compact_and_complete(tmp_path):
    page, counts = _write(tmp_path, 500)
    rows = _block(page.read_text(), "rows-data")
    meta = _block(page.read_text(), "meta-data")
    assert len(rows) == 500
    keys = [c["key"] for c in meta["columns"]]
    statuses = [r[keys.index("status")] for r in rows]
    assert {s: statuses.count(s) for s in counts} == counts
    ok = [r for r in rows if r[keys.index("status")] == "ok"]
    assert all(0 <= r[keys.index("score")] <= 1 for r in ok)
    # trailing empty cells are dropped: an ok row ends before the error column
    assert all(len(r) <= keys.index("error") for r in ok)


def test_details_only_for_the_most_suspicious_in_sidecar_chunks(tmp_path):
    page, _ = _write(tmp_path, 400, details=30, chunk=8)
    text = page.read_text()
    meta = _block(text, "meta-data")
    rows = _block(text, "rows-data")
    keys = [c["key"] for c in meta["columns"]]
    assert len(meta["details"]) == 30
    scores = sorted((r[keys.index("score")] for r in rows if r[keys.index("status")] == "ok"), reverse=True)
    kept = sorted((rows[int(i)][keys.index("score")] for i in meta["details"]), reverse=True)
    assert kept == scores[:30]
    files = sorted(p.name for p in (tmp_path / REPORT_FILES).iterdir())
    assert files == meta["chunk_files"] and len(files) == 4  # 30 videos, 8 per chunk
    chunk = (tmp_path / REPORT_FILES / files[0]).read_text()
    assert chunk.startswith("LIBREPORT_CHUNK(0,") and "<" not in chunk
    assert "base64,/9j/" not in text  # no JPEG inline in the page


def test_rewrite_replaces_sidecar_atomically(tmp_path):
    _write(tmp_path, 100, details=10, chunk=5)
    stale = tmp_path / REPORT_FILES / "details-09999.js"
    stale.write_text("old")
    _write(tmp_path, 100, details=4, chunk=5)
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp left


def test_torn_and_damaged_lines_are_skipped(tmp_path):
    (tmp_path / "results.jsonl").write_text('{"path": "/a.mp4", "status": "ok", "score": 0.7}\nnot json\n{"path": "/b')
    assert [r["path"] for r in iter_jsonl(tmp_path / "results.jsonl")] == ["/a.mp4"]


def test_memory_does_not_grow_with_rows(tmp_path):
    def peak(n: int) -> int:
        d = tmp_path / str(n)
        write_results_folder(d, n, details_every=7)
        tracemalloc.start()
        write_report(d / "report.html", results=d / "results.jsonl", report_data=d / "report_data.jsonl",
                     run=run_payload(), summary={"files": n}, details=200)  # fmt: skip
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, large = peak(2_000), peak(40_000)
    assert large < small * 1.5 + 2_000_000, (small, large)


def _chromium_dom(page: Path, fragment: str, tmp_path: Path, budget_ms: int = 3000) -> tuple[str, float]:
    profile = tmp_path / f"profile-{time.monotonic_ns()}"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", "--dump-dom",
           page.as_uri() + fragment]  # fmt: skip
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - t0
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout, wall


def _body_attr(dom: str, name: str) -> str:
    m = re.search(rf'<body[^>]*\s{name}="([^"]*)"', dom)
    assert m, f"{name} missing: the page script did not finish"
    return m.group(1)


@pytest.fixture(scope="module")
def big_report(tmp_path_factory):
    d = tmp_path_factory.mktemp("report100k")
    counts = write_results_folder(d, 100_000, details_every=3)
    page = write_report(d / "report.html", results=d / "results.jsonl", report_data=d / "report_data.jsonl",
                        run=run_payload(), summary={"files": 100_000, "status": counts}, details=1000)  # fmt: skip
    return page, counts


@needs_chromium
def test_100k_rows_open_fast_and_small(big_report, tmp_path):
    page, counts = big_report
    size_mb = page.stat().st_size / 1e6
    assert size_mb < 20, size_mb
    dom, wall = _chromium_dom(page, "", tmp_path)
    load_ms = int(_body_attr(dom, "data-load-ms"))
    assert load_ms < 3000, load_ms
    assert _body_attr(dom, "data-matches") == "100000"
    assert _body_attr(dom, "data-page-rows") == "100"  # one page of DOM rows, not 100,000
    assert "<img src=x" not in dom


@needs_chromium
def test_sorting_and_filtering_in_the_browser(big_report, tmp_path):
    page, counts = big_report
    dom, _ = _chromium_dom(page, "#status=error&sort=path&dir=asc&size=50", tmp_path)
    assert _body_attr(dom, "data-matches") == str(counts["error"])
    body = dom.split('<tbody id="rows">', 1)[1].split("</tbody>", 1)[0]
    assert body.count("<tr") == 50
    assert "ok</td>" not in body and "no_face</td>" not in body
    dom, _ = _chromium_dom(page, "#status=ok&min=0.9&sort=score&dir=desc", tmp_path)
    body = dom.split('<tbody id="rows">', 1)[1].split("</tbody>", 1)[0]
    first_col_scores = re.findall(r'<td class="(?:fake|real)">[a-z]+</td><td class="num">([0-9.]+)</td>', body)
    as_float = [float(s) for s in first_col_scores]
    assert as_float == sorted(as_float, reverse=True) and len(as_float) == 100
    assert all(s >= 0.9 for s in as_float)
    dom, _ = _chromium_dom(page, "#q=clip_000123", tmp_path)
    assert _body_attr(dom, "data-matches") == "1"


@needs_chromium
def test_details_load_on_demand_from_the_sidecar(big_report, tmp_path):
    page, _ = big_report
    dom, _ = _chromium_dom(page, "#sort=score&dir=desc&open=top", tmp_path, budget_ms=5000)
    detail = dom.split('class="detail"', 1)
    assert len(detail) == 2, "no detail row opened"
    assert "data:image/jpeg;base64," in detail[1].split("</tr>", 1)[0]
    assert "<svg" in detail[1].split("</tr>", 1)[0]
