"""Threshold selection on validation scores (eer, youden, target-fpr:F): the ROC cuts against scikit-learn's, each
rule against a brute-force search over every cut, margins that survive tiny score changes, and where a threshold
came from. CPU, pure NumPy (scikit-learn only as the reference).
"""

from __future__ import annotations

import numpy as np
import pytest

from lib_deepfake.errors import ContractError
from lib_deepfake.model.threshold import (
    ThresholdChoice,
    ThresholdRule,
    choose_threshold,
    metrics_at_threshold,
    resolve_threshold,
    roc_cuts,
)


def _scores(seed: int, n: int = 300, ties: bool = True):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.35).astype(int)
    scores = np.clip(rng.normal(0.35 + 0.3 * labels, 0.18), 0, 1)
    if ties:
        scores = np.round(scores, 2)  # many tied scores, as with few distinct video means
    return labels, scores


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("top", [1.0, 0.9])
def test_cuts_are_sklearns_roc_points_and_thresholds_reproduce_them(seed, top):
    from sklearn.metrics import roc_curve

    labels, scores = _scores(seed)
    scores = np.round(scores * top, 3)
    scores[np.argmax(scores)] = top  # with and without a score of exactly 1.0
    thr, fpr, tpr = roc_cuts(labels, scores)
    ref_fpr, ref_tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    if scores.max() == 1.0:  # no threshold in [0, 1] calls a score of 1.0 real: sklearn's (0, 0) point has no cut
        ref_fpr, ref_tpr = ref_fpr[1:], ref_tpr[1:]
    np.testing.assert_allclose(fpr, ref_fpr)
    np.testing.assert_allclose(tpr, ref_tpr)
    assert np.all(np.diff(thr) < 0) and thr.min() >= 0 and thr.max() <= 1
    for t, f, p in zip(thr, fpr, tpr):
        m = metrics_at_threshold(labels, scores, t)
        assert m["fpr"] == pytest.approx(f) and m["tpr"] == pytest.approx(p)


@pytest.mark.parametrize("seed", [3, 4])
@pytest.mark.parametrize("rule", ["eer", "youden", "target-fpr:0.05", "target-fpr:0"])
def test_each_rule_finds_the_best_cut(seed, rule):
    labels, scores = _scores(seed)
    choice = choose_threshold(labels, scores, rule, datasets=["A"])
    # brute force over every threshold that separates distinct scores
    uniq = np.unique(scores)
    candidates = np.concatenate([[uniq[0] / 2], (uniq[:-1] + uniq[1:]) / 2, [(uniq[-1] + 1) / 2]])
    rates = [metrics_at_threshold(labels, scores, t) for t in candidates]
    chosen = metrics_at_threshold(labels, scores, choice.value)
    if rule == "eer":
        best = min(abs(r["fnr"] - r["fpr"]) for r in rates)
        assert abs(chosen["fnr"] - chosen["fpr"]) == pytest.approx(best)
        assert choice.metrics["eer"] == pytest.approx((chosen["fnr"] + chosen["fpr"]) / 2)
    elif rule == "youden":
        assert chosen["tpr"] - chosen["fpr"] == pytest.approx(max(r["tpr"] - r["fpr"] for r in rates))
    else:
        target = float(rule.split(":")[1])
        assert chosen["fpr"] <= target and choice.metrics["target_met"] is True
        assert chosen["tpr"] == pytest.approx(max(r["tpr"] for r in rates if r["fpr"] <= target))
    assert choice.rule == str(ThresholdRule.parse(rule)) and choice.datasets == ["A"] and choice.level == "video"
    assert choice.metrics["acc"] == pytest.approx(chosen["acc"])


def test_threshold_sits_between_scores_so_small_changes_keep_the_verdicts():
    labels, scores = _scores(5, ties=False)
    choice = choose_threshold(labels, scores, "eer")
    gap = np.min(np.abs(scores - choice.value))
    assert gap > 0
    before = scores >= choice.value
    for eps in (-0.99 * gap, 0.99 * gap):
        assert np.array_equal(scores + eps >= choice.value, before)


def test_separable_scores_and_scores_of_exactly_one():
    labels = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 1.0])
    for rule in ("eer", "youden", "target-fpr:0.0"):
        c = choose_threshold(labels, scores, rule)
        assert c.value == pytest.approx(0.5) and c.metrics["acc"] == 1.0
    thr, fpr, tpr = roc_cuts(labels, scores)
    assert thr.max() <= 1.0 and (fpr[0], tpr[0]) == (0.0, 1 / 3)  # no "nothing fake" cut below a score of 1.0
    # everything fake is still a cut, at half the lowest score
    assert thr[-1] == pytest.approx(0.05) and (fpr[-1], tpr[-1]) == (1.0, 1.0)


def test_unreachable_target_is_reported():
    labels = np.array([0, 1, 1])
    scores = np.array([1.0, 1.0, 0.2])  # a real video at 1.0: every cut in [0, 1] flags it
    c = choose_threshold(labels, scores, "target-fpr:0.01")
    assert c.metrics["target_met"] is False and c.metrics["fpr"] == 1.0


def test_metrics_at_threshold_by_hand():
    m = metrics_at_threshold([0, 0, 1, 1, 1], [0.1, 0.6, 0.6, 0.4, 0.9], 0.6)
    # verdict fake when score >= 0.6: fp = 1 (0.6), tp = 2 (0.6, 0.9), fn = 1 (0.4), tn = 1
    assert (m["tpr"], m["fpr"], m["acc"]) == (pytest.approx(2 / 3), 0.5, 0.6)
    assert m["precision"] == pytest.approx(2 / 3) and m["balanced_acc"] == pytest.approx((2 / 3 + 0.5) / 2)
    assert metrics_at_threshold([1, 1], [0.2, 0.9], 0.5)["fpr"] is None


def test_errors_are_contract_errors():
    with pytest.raises(ContractError, match="real and fake"):
        choose_threshold([1, 1], [0.2, 0.3])
    with pytest.raises(ContractError, match="in \\[0, 1\\]"):
        choose_threshold([0, 1], [-0.2, 3.0])
    with pytest.raises(ContractError, match="unknown threshold rule"):
        ThresholdRule.parse("f1")
    with pytest.raises(ContractError, match="target-fpr needs"):
        ThresholdRule.parse("target-fpr:2")
    assert str(ThresholdRule.parse(" Target-FPR:0.010 ")) == "target-fpr:0.01"


def test_resolve_says_where_the_threshold_came_from():
    choice = ThresholdChoice(0.4213, "eer", "video", "val", ["FF++_c23"], {"acc": 0.9})
    assert ThresholdChoice.from_dict(choice.to_dict()) == choice
    r = resolve_threshold(choice)
    assert (r.value, r.origin, r.rule) == (0.4213, "model", "eer")
    assert r.text == "0.4213 (eer on val videos of FF++_c23), from the model card"
    assert resolve_threshold(choice, 0.7).origin == "option"
    d = resolve_threshold(None)
    assert (d.value, d.origin) == (0.5, "default") and "no calibrated threshold" in d.text
