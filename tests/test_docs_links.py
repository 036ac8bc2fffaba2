"""The documentation holds together: every relative link in README.md and docs/*.md resolves (files and #anchors),
every docs page is reachable from the README, the README stays a landing page (<= 20 KB, it is also the PyPI
page), and every page a command's --help epilog names exists."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from lib_deepfake.cli.docs_links import COMMAND_PAGES, docs_epilog, docs_pages

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOC_FILES = sorted((ROOT / "docs").glob("*.md"))
MAX_README_BYTES = 20 * 1024

_FENCE = re.compile(r"^([ \t]*)(```|~~~).*?^\1\2[^\n]*$", re.M | re.S)
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
# [text](target "title") and ![alt](target); the text may hold one level of brackets.
_INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.M)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.M)


def _prose(text: str) -> str:
    """The markdown without fenced code blocks and code spans, where link syntax is not a link."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def links(text: str) -> list[str]:
    """Link targets of a markdown text, in order (inline links, images and reference definitions)."""
    prose = _prose(text)
    found = [m.group(1) for m in _INLINE_LINK.finditer(prose)] + [m.group(1) for m in _REFERENCE_DEF.finditer(prose)]
    return [t[1:-1] if t.startswith("<") else t for t in found]


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: rendered text, lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images -> their text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading anchor of a markdown text; repeated headings get -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for m in _HEADING.finditer(_FENCE.sub("", text)):
        slug = github_slug(m.group(2))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """Relative links of ``path`` that point at no file, outside ``root``, or at a missing heading."""
    bad = []
    for target in links(path.read_text(encoding="utf-8")):
        if _SCHEME.match(target):
            continue  # http(s), mailto, ...: not checked (no network in tests)
        file_part, _, fragment = target.partition("#")
        dest = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not dest.is_relative_to(root):
            bad.append(f"{target} (outside the repository)")
        elif not dest.exists():
            bad.append(f"{target} (no such file)")
        elif fragment and dest.suffix == ".md" and unquote(fragment) not in anchors(dest.read_text(encoding="utf-8")):
            bad.append(f"{target} (no heading #{fragment} in {dest.relative_to(root)})")
    return bad


@pytest.mark.parametrize("page", [README, *DOC_FILES], ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    assert broken_links(page) == []


def test_readme_is_a_landing_page():
    size = len(README.read_bytes())
    assert size <= MAX_README_BYTES, f"README.md is {size} bytes; move reference material to docs/"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in links(README.read_text(encoding="utf-8"))}
    assert [p.name for p in DOC_FILES if p.resolve() not in linked] == []


def test_every_page_named_in_a_help_epilog_exists():
    pages = {page for group in COMMAND_PAGES.values() for page in group}
    assert pages, "no docs pages registered"
    assert sorted(p for p in pages if not (ROOT / p).is_file()) == []


def test_docs_paths_named_in_the_cli_sources_exist():
    # Epilogs written by hand ("Reference: docs/ray.md") must not point at a page that was renamed or removed.
    named = {
        (src.name, path)
        for src in (ROOT / "src" / "lib_deepfake" / "cli").glob("*.py")
        for path in re.findall(r"\bdocs/[\w.-]+\.md\b", src.read_text(encoding="utf-8"))
    }
    assert named, "no docs page named in the CLI sources"
    assert sorted(f"{name}: {path}" for name, path in named if not (ROOT / path).is_file()) == []


def test_every_console_script_has_a_docs_page():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = pyproject.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    scripts = re.findall(r"^([\w-]+)\s*=", section, re.M)
    assert scripts, "no [project.scripts] in pyproject.toml"
    assert sorted(s for s in scripts if s not in COMMAND_PAGES) == []


def test_docs_pages_fall_back_from_subcommand_to_group():
    assert docs_pages("lib-export   to-onnx") == COMMAND_PAGES["lib-export"]
    assert docs_pages("lib-bench gpu-check") == ("docs/gpu-check.md",)
    assert docs_epilog("lib-infer") == "Documentation: docs/infer.md, docs/ray.md (in the lib-deepfake source tree)."
    with pytest.raises(KeyError, match="lib-nothing"):
        docs_pages("lib-nothing run")


# The checker itself must see what it is meant to catch.
def test_checker_finds_broken_files_and_anchors(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("# Read me\n", encoding="utf-8")
    page = tmp_path / "docs" / "page.md"
    text = (
        "# Title `x`\n\n## Same\n\n## Same\n\n[ok](../README.md) [self](#title-x) [dup](#same-1) [web](https://x.y/z)\n"
        "[gone](missing.md) [bad anchor](../README.md#no-such-heading) [up](../../outside.md)\n"
        "[top](../README.md#read-me)\n"
        "```\n[in code](nowhere.md)\n```\n`[span](nowhere2.md)`\n"
    )
    page.write_text(text, encoding="utf-8")
    assert links(text)[:4] == ["../README.md", "#title-x", "#same-1", "https://x.y/z"]
    assert "nowhere.md" not in links(text) and "nowhere2.md" not in links(text)
    assert broken_links(page, root=tmp_path) == [
        "missing.md (no such file)",
        "../README.md#no-such-heading (no heading #no-such-heading in README.md)",
        "../../outside.md (outside the repository)",
    ]


def test_github_slugs():
    assert github_slug("INT8 for CPUs: `lib-export quantize`") == "int8-for-cpus-lib-export-quantize"
    assert github_slug("GPU paths and their status") == "gpu-paths-and-their-status"
    assert github_slug("Native face crops (C++ / CUDA, CMake)") == "native-face-crops-c--cuda-cmake"


# docs/export.md's table of parity limits is a figure users rely on: it must be the code's table.
_LIMIT_ROWS = {
    "fp32 (and an ONNX without manifest)": (None, "fp32"),
    "fp32 on TensorRT (TF32)": ("trt", "fp32"),
    "fp16": (None, "fp16"),
    "bf16": (None, "bf16"),
    "int8 (against the FP32 ONNX)": (None, "int8"),
}


def test_documented_parity_limits_are_the_defaults():
    from lib_deepfake.engines.parity import DEFAULT_TOLERANCES

    text = (ROOT / "docs" / "export.md").read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] in _LIMIT_ROWS:
            rows[cells[0]] = [None if c == "-" else float(c) for c in cells[1:]]
    assert set(rows) == set(_LIMIT_ROWS), "docs/export.md lost rows of its parity-limit table"
    for label, key in _LIMIT_ROWS.items():
        t = DEFAULT_TOLERANCES[key]
        assert rows[label] == [t.max_dlogit, t.mean_dlogit, t.max_dprob, t.agreement], label
        assert t.mean_dprob is None, f"{label}: the table has no mean |dprob| column"
    documented = set(_LIMIT_ROWS.values()) | {(None, "unknown")}  # an ONNX without manifest: the fp32 row
    assert set(DEFAULT_TOLERANCES) <= documented, "a default tolerance is missing from docs/export.md"
