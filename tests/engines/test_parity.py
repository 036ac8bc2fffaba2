"""The parity figures and limits themselves (engines/parity.py): log-odds from P(fake), the float32 clip and
saturation, every metric, each limit failing on its own, NaN, sets, overrides and their parsing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lib_deepfake.engines.parity import (
    DEFAULT_TOLERANCES,
    LOGIT_LIMIT,
    Tolerance,
    compare_outputs,
    compare_sets,
    default_tolerance,
    log_odds,
    parse_tolerance,
    raise_for_parity,
    resolve_tolerance,
    run_batched,
)
from lib_deepfake.errors import LibDeepfakeError, ParityError

NONE = Tolerance()


def test_log_odds_is_the_logit_difference_and_clips_at_the_float32_limit():
    z = np.array([-3.0, -0.5, 0.0, 2.0, 7.0])
    p = torch.softmax(torch.tensor(np.stack([np.zeros_like(z), z], 1)), dim=1)[:, 1].numpy()
    np.testing.assert_allclose(log_odds(p), z, atol=1e-12)
    assert log_odds(np.array([0.0, 1.0])).tolist() == pytest.approx([-LOGIT_LIMIT, LOGIT_LIMIT])
    assert pytest.approx(math.log(1e4), rel=1e-3) == LOGIT_LIMIT


def test_every_figure():
    ref = np.array([0.1, 0.5, 0.9, 1.0])
    got = torch.tensor([0.2, 0.45, 0.9, 1.0])  # numpy and torch mix
    rep = compare_outputs(ref, got, "fp16", tolerance=NONE)
    dlogit = np.abs(log_odds(ref) - log_odds(got.numpy()))
    assert rep.samples == 4 and rep.max_abs_dlogit == pytest.approx(dlogit.max())
    assert rep.mean_abs_dlogit == pytest.approx(dlogit.mean())
    assert rep.max_abs_diff == pytest.approx(0.1, abs=1e-6) and rep.mean_abs_diff == pytest.approx(0.0375, abs=1e-6)
    assert rep.agreement == 0.75  # 0.5 -> 0.45 crosses the threshold
    assert rep.saturated == 0.25 and rep.passed is None and rep.failures == []


@pytest.mark.parametrize(
    ("limit", "broken"),
    [
        (Tolerance(max_dlogit=0.5), "max |dlogit|"),
        (Tolerance(mean_dlogit=0.1), "mean |dlogit|"),
        (Tolerance(max_dprob=0.05), "max |dprob|"),
        (Tolerance(mean_dprob=0.01), "mean |dprob|"),
        (Tolerance(agreement=0.9), "decision agreement"),
    ],
)
def test_each_limit_fails_on_its_own(limit, broken):
    ref, got = np.array([0.1, 0.5, 0.9]), np.array([0.2, 0.45, 0.9])
    rep = compare_outputs(ref, got, "fp16", tolerance=limit)
    assert rep.passed is False and len(rep.failures) == 1 and rep.failures[0].startswith(broken)
    assert compare_outputs(ref, ref, "fp16", tolerance=limit).passed is True


def test_nan_or_inf_fails_every_limit():
    rep = compare_outputs(np.array([0.2, 0.3]), np.array([0.2, np.nan]), "fp32")
    assert rep.passed is False and math.isinf(rep.max_abs_dlogit) and rep.agreement == 0.0


def test_shapes_must_match():
    with pytest.raises(ValueError, match="3 reference outputs with 2"):
        compare_outputs(np.zeros(3), np.zeros(2), "fp32")


def test_sets_pass_only_when_every_set_passes():
    ref = {"faces": np.array([0.2, 0.7]), "held_out": np.array([0.3, 0.6])}
    got = {"faces": np.array([0.2, 0.7]), "held_out": np.array([0.3, 0.9])}
    result = compare_sets(ref, got, "fp32", inputs={"faces": "two crops"})
    assert result["passed"] is False and result["sets"]["faces"]["passed"] is True
    assert result["failures"][0].startswith("held_out: max |dlogit|") and result["overall"]["samples"] == 4
    assert result["tolerance"] == DEFAULT_TOLERANCES[(None, "fp32")].to_dict() and result["inputs"]["faces"]
    with pytest.raises(ParityError, match=r"^damaged: held_out: max \|dlogit\| .*limits max \|dlogit\| <= 0\.001"):
        raise_for_parity(result, "damaged")
    raise_for_parity(compare_sets(ref, ref, "fp32"), "healthy")  # no error


def test_defaults_by_engine_and_precision():
    assert default_tolerance("fp32", "trt") is DEFAULT_TOLERANCES[("trt", "fp32")]
    assert default_tolerance("fp32", "onnxrt") is DEFAULT_TOLERANCES[(None, "fp32")]
    for precision in ("fp16", "bf16", "int8"):  # rounding is judged on the mean, with a looser max
        tol = default_tolerance(precision)
        assert tol.mean_dlogit is not None and tol.max_dlogit > tol.mean_dlogit
    with pytest.raises(LibDeepfakeError, match="--parity-tol"):
        default_tolerance("fp8")


def test_overrides_keep_the_other_defaults_and_are_recorded():
    tol, text = resolve_tolerance("fp16", "mean_dlogit=0.3, agreement=none")
    assert text == "mean_dlogit=0.3, agreement=none" and tol.mean_dlogit == 0.3 and tol.agreement is None
    assert tol.max_dlogit == DEFAULT_TOLERANCES[(None, "fp16")].max_dlogit
    assert resolve_tolerance("fp16") == (DEFAULT_TOLERANCES[(None, "fp16")], None)
    assert resolve_tolerance("fp8", "max_dprob=0.1")[0] == Tolerance(max_dprob=0.1)  # unknown precision, explicit
    explicit = Tolerance(max_dprob=0.2)
    assert resolve_tolerance("fp32", explicit) == (explicit, "max |dprob| <= 0.2")


@pytest.mark.parametrize("text", ["0.05", "max_dlogits=1", "max_dlogit=-1", "max_dlogit=abc", "agreement"])
def test_bad_overrides_are_refused(text):
    with pytest.raises(LibDeepfakeError, match="parity tolerance"):
        parse_tolerance(text)


def test_a_bare_number_is_refused():
    with pytest.raises(LibDeepfakeError, match="bare number"):
        resolve_tolerance("int8", 0.05)  # type: ignore[arg-type]


def test_run_batched_copies_reused_output_buffers():
    buffer = torch.zeros(2)

    def engine(faces: torch.Tensor) -> torch.Tensor:  # returns its one output buffer, as CUDA engines may
        buffer[: len(faces)] = faces[:, 0, 0, 0].float()
        return buffer[: len(faces)]

    faces = torch.arange(5, dtype=torch.uint8).view(5, 1, 1, 1).expand(5, 2, 2, 3).contiguous()
    assert run_batched(engine, faces, 2).tolist() == [0, 1, 2, 3, 4]
