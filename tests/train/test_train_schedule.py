"""LR schedules, the halving rule and optimiser groups of both recipes (method.md §4.2, §5.7). CPU only."""

from __future__ import annotations

import pytest
import torch

from lib_deepfake.model import LIBConfig, Preprocessing, create_lib
from lib_deepfake.train.balance import AutoBalance
from lib_deepfake.train.schedule import (
    HalvingRule,
    build_optimizer,
    halve_base_lr,
    official_cosine_factor,
    warmup_cosine_factor,
)


def test_official_cosine_matches_torch_and_is_periodic():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=1.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=150, eta_min=0)
    seen = []
    for it in range(601):
        seen.append(opt.param_groups[0]["lr"])
        assert official_cosine_factor(it) == pytest.approx(seen[-1], abs=1e-9)
        opt.step()
        sched.step()
    assert seen[150] == pytest.approx(0.0, abs=1e-12) and seen[450] == pytest.approx(0.0, abs=1e-12)
    assert seen[300] == pytest.approx(1.0) and seen[600] == pytest.approx(1.0)


def test_warmup_cosine_shape():
    total, warm = 100, 10
    f = [warmup_cosine_factor(s, total, warm) for s in range(total)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))  # monotone decay after warm-up
    assert f[-1] < 0.01
    assert warmup_cosine_factor(0, 10, 0) == pytest.approx(1.0)


def test_halving_rule():
    rule = HalvingRule()
    for v in [5, 4, 3, 2]:
        rule.observe(v)
        assert not rule.should_halve()
    rule.observe(1)
    assert not rule.should_halve()  # five strictly decreasing losses: keep
    rule.observe(1.5)
    assert rule.should_halve() and rule.history == []  # a rise among the last five: halve and forget
    assert not rule.should_halve()


def _tiny():
    return create_lib(LIBConfig("mobilenet", num_libs=2, width_mult=0.25, preprocessing=Preprocessing(32)))


def test_official_optimizer_groups():
    net, bal = _tiny(), AutoBalance(("ce", "gil", "lil"))
    opt = build_optimizer("official", net, bal, lr=5e-4, weight_decay=1e-6)
    assert type(opt) is torch.optim.Adam
    roles = {g["role"]: g for g in opt.param_groups}
    assert roles["net"]["lr"] == 5e-4 and roles["net"]["weight_decay"] == 1e-6
    assert roles["sigma"]["lr"] == 1e-3  # Adam's default, not --lr
    halve_base_lr(opt)
    assert roles["net"]["base_lr"] == 2.5e-4 and roles["sigma"]["base_lr"] == 1e-3


def test_default_optimizer_groups():
    net, bal = _tiny(), AutoBalance(("ce", "gil", "lil"))
    opt = build_optimizer("default", net, bal, lr=1e-3, weight_decay=0.01)
    assert type(opt) is torch.optim.AdamW
    roles = {g["role"]: g for g in opt.param_groups}
    assert all(p.ndim >= 2 for p in roles["net"]["params"]) and roles["net"]["weight_decay"] == 0.01
    assert all(p.ndim <= 1 for p in roles["net_no_decay"]["params"]) and roles["net_no_decay"]["weight_decay"] == 0
    assert roles["sigma"]["weight_decay"] == 0 and roles["sigma"]["params"][0] is bal.params
