"""Which engine a scan runs: ``--engine auto`` on a CPU with a checkpoint probes it and its sibling exports and
records why; explicit engines, other artifacts and GPU scans do not probe; a pinned choice (Ray workers) is used as
it is; ``load_components`` builds the chosen engine on the chosen artifact."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests.engines._artifacts import contract_onnx, tiny_checkpoint

from lib_deepfake.engines.auto import Selection
from lib_deepfake.errors import ContractError, LibDeepfakeError
from lib_deepfake.pipeline.config import ScanConfig
from lib_deepfake.pipeline.engine_choice import EngineChoice, choose_engine, pin_engine, sibling_artifacts


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("choice")
    ckpt = tiny_checkpoint(root / "tiny.pth")
    onnx = contract_onnx(ckpt, root / "tiny.onnx")
    # Beside it, files auto must not take: another model's export and a GPU (fp16) export of this one.
    contract_onnx(tiny_checkpoint(root / "other.pth", seed=5), root / "other.onnx")
    contract_onnx(ckpt, root / "tiny.fp16.onnx", precision="fp16")
    return ckpt, onnx


@pytest.fixture
def no_probe(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("probed the engines where nothing is to be chosen")

    monkeypatch.setattr("lib_deepfake.engines.auto.select_engine", refuse)


def test_siblings_are_this_checkpoints_cpu_exports(model):
    ckpt, onnx = model
    assert sibling_artifacts(ckpt) == [onnx]


def test_auto_with_a_checkpoint_on_cpu_probes_and_says_why(model):
    ckpt, onnx = model
    choice = choose_engine(ScanConfig(ckpt, batch_size=4, threads=1))
    assert choice.engine in ("torch", "onnxrt") and choice.reason.startswith("auto: ")
    assert "is the fastest candidate whose parity passed" in choice.reason
    assert choice.artifact == (ckpt if choice.engine == "torch" else onnx)
    record = choice.selection
    assert record["artifacts"] == [str(onnx)] and record["artifacts_from"] == "found beside the checkpoint"
    assert record["probe_s"] > 0  # what choosing cost the scan's start
    assert {(p["engine"], p["precision"]) for p in record["probes"]} >= {("torch", "fp32"), ("onnxrt", "fp32")}
    assert "threads" not in choice.options  # threads follow the scan, not the probe
    resolved = json.loads(json.dumps(choice.resolved()))
    assert resolved["engine"] == choice.engine and resolved["engine_selection"]["reason"]


def test_two_exports_of_one_role_need_candidate(model, tmp_path):
    ckpt, onnx = model
    local = shutil.copy(ckpt, tmp_path / "m.pth")
    for name in ("a.onnx", "b.onnx"):
        shutil.copy(onnx, tmp_path / name)
        shutil.copy(Path(f"{onnx}.json"), tmp_path / f"{name}.json")
    with pytest.raises(LibDeepfakeError, match="a.onnx and b.onnx are both fp32 .onnx exports.*--candidate"):
        choose_engine(ScanConfig(local))


def test_candidates_replace_the_siblings(model, monkeypatch):
    ckpt, onnx = model
    seen = {}

    def fake_select(artifacts, **kwargs):
        seen["artifacts"], seen["batch"] = list(artifacts), kwargs["batch"]
        return Selection("onnxrt", "fp32", onnx, {"threads": 3}, "onnxrt fp32 is the fastest ...", [], [])

    monkeypatch.setattr("lib_deepfake.engines.auto.select_engine", fake_select)
    choice = choose_engine(ScanConfig(ckpt, candidates=(str(onnx),), batch_size=8))
    assert seen == {"artifacts": [ckpt, onnx], "batch": 8}
    assert (choice.engine, choice.artifact, choice.options) == ("onnxrt", onnx, {})
    assert choice.selection["artifacts_from"] == "given with --candidate"


def test_nothing_to_choose_means_no_probe(model, no_probe):
    ckpt, onnx = model
    assert choose_engine(ScanConfig(onnx)).reason == "auto: .onnx artifacts run on onnxrt"
    assert choose_engine(ScanConfig(ckpt, engine="torch")) == EngineChoice("torch", ckpt, "explicit (--engine)")
    on_gpu = choose_engine(ScanConfig(ckpt, device="cuda"))
    assert on_gpu.engine == "torch" and "on a GPU auto does not probe" in on_gpu.reason
    with pytest.raises(ContractError, match="--candidate is for --engine auto"):
        choose_engine(ScanConfig(ckpt, engine="torch", candidates=(onnx,)))
    with pytest.raises(ContractError, match="--candidate needs --engine auto with a checkpoint"):
        choose_engine(ScanConfig(onnx, candidates=(onnx,)))


def test_a_pinned_choice_is_used_as_it_is(model, no_probe):
    ckpt, onnx = model
    pinned = EngineChoice("onnxrt", onnx, "auto: chosen by the driver", {}, {"reason": "x"})
    config = pin_engine(ScanConfig(ckpt), pinned)
    assert choose_engine(config) is pinned
    assert config.fingerprint() == ScanConfig(ckpt).fingerprint()  # resuming does not depend on the pin


def test_load_components_runs_the_chosen_engine_on_its_artifact(model, monkeypatch):
    from lib_deepfake.pipeline.components import load_components

    ckpt, onnx = model
    monkeypatch.setattr(
        "lib_deepfake.engines.auto.select_engine",
        lambda artifacts, **kw: Selection(
            "onnxrt", "fp32", onnx, {"threads": 1}, "onnxrt fp32 is the fastest ...", [{"engine": "onnxrt"}], []
        ),
    )
    components = load_components(ScanConfig(ckpt, detector="center", threads=1))
    try:
        res = components.resolved
        assert components.engine.name == "onnxrt" and res["engine_artifact"] == str(onnx)
        assert res["engine_selection"]["probes"] == [{"engine": "onnxrt"}]
        assert res["engine_choice"] == "auto: onnxrt fp32 is the fastest ..."
    finally:
        components.engine.close()


def test_the_cli_refuses_candidate_without_auto(model, tmp_path):
    from click.testing import CliRunner

    from lib_deepfake.cli.infer import main

    ckpt, onnx = model
    result = CliRunner().invoke(main, [str(tmp_path), "--model", str(ckpt), "--engine", "torch", "--candidate",
                                       str(onnx), "--out", str(tmp_path / "out")])  # fmt: skip
    assert result.exit_code != 0 and "--candidate is for --engine auto" in result.output
