"""LIB losses and balancing against the formulas of method.md §3 on fixed tensors (CPU, no markers)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lib_deepfake.model.lib import LIBOutput
from lib_deepfake.train.balance import AutoBalance, HyperBalance, SumBalance, create_balancer
from lib_deepfake.train.losses import LIBCriterion, LossSettings, kl_calculator, sinkhorn_distance


def _out(seed: int = 0, b: int = 6, n: int = 3, requires_grad: bool = False) -> LIBOutput:
    g = torch.Generator().manual_seed(seed)
    fused = torch.randn(b, 2, generator=g).requires_grad_(requires_grad)
    concat = torch.randn(b, 2, generator=g).requires_grad_(requires_grad)
    loo = tuple(torch.randn(b, 2, generator=g).requires_grad_(requires_grad) for _ in range(n))
    return LIBOutput(fused=fused, concat=concat, leave_one_out=loo)


def _kl_rows(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per row, by hand."""
    return (p * (p.log() - q.log())).sum(1)


LABELS = torch.tensor([0, 1, 1, 0, 1, 0])


def test_kl_mean_is_half_of_batchmean_for_two_classes():
    out = _out()
    log_q = F.log_softmax(out.concat, 1)
    p = F.softmax(out.fused, 1)
    mean = kl_calculator("mean")(log_q, p)
    batchmean = kl_calculator("batchmean")(log_q, p)
    by_hand = _kl_rows(p, log_q.exp()).mean()
    assert torch.allclose(batchmean, by_hand, atol=1e-6)
    assert torch.allclose(mean, by_hand / 2, atol=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "batchmean"])
def test_terms_match_method_formulas(reduction):
    t = 1.5
    out = _out()
    terms = LIBCriterion(LossSettings(kl_reduction=reduction, temperature=t))(out, LABELS)
    assert list(terms) == ["ce", "gil", "lil"]
    ce = F.cross_entropy(out.fused, LABELS) + F.cross_entropy(out.concat, LABELS)
    ce = ce + sum(F.cross_entropy(s, LABELS) for s in out.leave_one_out)
    assert torch.allclose(terms["ce"], ce, atol=1e-6)
    div = 2.0 if reduction == "mean" else 1.0  # element mean over C = 2 classes
    p_all = F.softmax(out.concat / t, 1)
    gil = _kl_rows(F.softmax(out.fused / t, 1), p_all).mean() / div
    assert torch.allclose(terms["gil"], gil, atol=1e-6)
    k = sum(_kl_rows(F.softmax(s / t, 1), p_all).mean() / div for s in out.leave_one_out)
    assert torch.allclose(terms["lil"], torch.exp(-k), atol=1e-6)


def test_gradients_flow_into_student_not_teacher():
    out = _out(requires_grad=True)
    terms = LIBCriterion(LossSettings())(out, LABELS)
    (terms["gil"] + terms["lil"]).backward()
    assert out.concat.grad is None or torch.count_nonzero(out.concat.grad) == 0  # teacher detached
    assert out.fused.grad is not None and torch.count_nonzero(out.fused.grad) > 0  # through the KL *target*
    assert all(s.grad is not None and torch.count_nonzero(s.grad) > 0 for s in out.leave_one_out)


def test_switches_remove_terms_and_their_ce():
    out = _out()
    terms = LIBCriterion(LossSettings(gil=False, lil=False))(out, LABELS)
    assert list(terms) == ["ce"]
    assert torch.allclose(terms["ce"], F.cross_entropy(out.fused, LABELS))
    terms = LIBCriterion(LossSettings(gil=False, lil=True))(out, LABELS)
    assert list(terms) == ["ce", "lil"]


def test_distance_form():
    t = 1.5
    out = _out()
    terms = LIBCriterion(LossSettings(lil_method="distance", kl_reduction="batchmean", temperature=t))(out, LABELS)
    # distance form adds no local CE terms
    ce = F.cross_entropy(out.fused, LABELS) + F.cross_entropy(out.concat, LABELS)
    assert torch.allclose(terms["ce"], ce, atol=1e-6)
    s = out.leave_one_out
    total = sum(
        _kl_rows(F.softmax(s[j] / t, 1), F.softmax(s[i] / t, 1)).mean()
        for i in range(len(s))
        for j in range(i + 1, len(s))
    )
    assert torch.allclose(terms["lil"], 1 - total, atol=1e-6)


def test_mixup_mixes_only_ce():
    out = _out()
    perm = torch.tensor([5, 4, 3, 2, 1, 0])
    lam = 0.3
    crit = LIBCriterion(LossSettings(gil=False, lil=False))
    mixed = crit(out, LABELS, (lam, perm))["ce"]
    expected = lam * F.cross_entropy(out.fused, LABELS) + (1 - lam) * F.cross_entropy(out.fused, LABELS[perm])
    assert torch.allclose(mixed, expected, atol=1e-6)
    full = LIBCriterion(LossSettings())
    a, b = full(out, LABELS, (lam, perm)), full(out, LABELS)
    assert torch.equal(a["gil"], b["gil"]) and torch.equal(a["lil"], b["lil"])


def test_sinkhorn_official_and_stable():
    g = torch.Generator().manual_seed(1)
    x = F.softmax(torch.randn(8, 2, generator=g), 1)
    y = F.softmax(torch.randn(8, 2, generator=g), 1)
    same = sinkhorn_distance(x, x, stable=True)
    diff = sinkhorn_distance(x, y, stable=True)
    assert torch.isfinite(diff) and 0 <= float(same) < float(diff) + 1e-6
    # official: log-probs vs probs never get close (method.md §3.5: ~4.5 on random inputs)
    official = LIBCriterion(LossSettings(calculator="w", sinkhorn_stable=False))(_out(b=8), torch.zeros(8).long())
    assert torch.isfinite(official["lil"]) and float(official["lil"]) < 1e-3


def test_auto_balance_formula():
    bal = AutoBalance(("ce", "gil", "lil"))
    with torch.no_grad():
        bal.params.copy_(torch.tensor([1.0, 2.0, 0.5]))
    terms = {"ce": torch.tensor(3.0), "gil": torch.tensor(0.1), "lil": torch.tensor(0.7)}
    expected = sum(0.5 / s**2 * v + math.log(1 + s**2) for s, v in zip([1.0, 2.0, 0.5], [3.0, 0.1, 0.7]))
    assert float(bal(terms).detach()) == pytest.approx(expected, rel=1e-6)
    assert bal.weights()["gil"] == pytest.approx(0.125)


def test_hyper_scales_order_ce_gil_lil():
    terms = {"ce": torch.tensor(1.0), "gil": torch.tensor(10.0), "lil": torch.tensor(100.0)}
    bal = create_balancer("hyper", ("ce", "gil", "lil"), (1.0, 2.0, 10.0))
    assert float(bal(terms)) == pytest.approx(1 * 1 + 2 * 10 + 10 * 100)  # code order, not the README's
    no_gil = {"ce": torch.tensor(1.0), "lil": torch.tensor(100.0)}
    by_name = HyperBalance(("ce", "lil"), (1.0, 2.0, 10.0), by_position=False)
    by_pos = HyperBalance(("ce", "lil"), (1.0, 2.0, 10.0), by_position=True)
    assert float(by_name(no_gil)) == pytest.approx(1 + 10 * 100)
    assert float(by_pos(no_gil)) == pytest.approx(1 + 2 * 100)  # official: LIL takes the 2nd scale
    assert float(SumBalance(("ce", "lil"))(no_gil)) == pytest.approx(101)
