"""The authors' standard AutoAttack (`autoattack-standard`) beside torchattacks' port.

A linear model on the digits is the fixture: its worst case in the L-inf ball and [0, 1] box
has a closed form, so "the attack is strong" is checked against the truth, not another attack.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from robustbench_lr.attacks import ATTACKS, resolve, robust_flags, run_attack
from robustbench_lr.attacks.strong import standard_adversary
from robustbench_lr.audit.standard import agreement, standard_autoattack
from robustbench_lr.data import load

N = 32
EPS = 0.1  # the linear model keeps ~30% of these examples at this budget
CHEAP = {"steps": 10, "targets": 3, "queries": 100}


@pytest.fixture(autouse=True)
def _one_thread():
    """These models are tiny: a second thread only adds synchronization (conftest restores it)."""
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def linear():
    """A softmax regression on the 8x8 digits (~97% clean) and N test images."""
    data = load("digits")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # set up before `_one_thread`
    try:
        for _ in range(200):
            opt.zero_grad()
            nn.functional.cross_entropy(model(data.x_train), data.y_train).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval(), data.x_test[:N], data.y_test[:N]


def exact_robust(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor, eps: float):
    """Per example: no point of the ε-ball ∩ [0, 1] changes the linear model's prediction.

    For each wrong class j the margin (w_y − w_j)·x' + b_y − b_j is minimized coordinate by
    coordinate at the box bound its coefficient points away from.
    """
    w, b = model[1].weight.detach(), model[1].bias.detach()
    flat = x.flatten(1)
    low, high = torch.clamp(-flat, min=-eps), torch.clamp(1 - flat, max=eps)
    robust = robust_flags(model, x, y)
    for i in range(len(x)):
        coef = w[y[i]] - w  # (classes, 64)
        delta = torch.where(coef > 0, low[i], high[i])
        margin = (coef * (flat[i] + delta)).sum(1) + b[y[i]] - b
        margin[y[i]] = math.inf
        robust[i] &= bool((margin > 0).all())
    return robust


def test_defaults_are_the_authors_standard_version(linear):
    from pyautoattack import AutoAttack

    model, x, _ = linear
    backend, params = resolve("autoattack-standard")
    assert backend == "pyautoattack" and ATTACKS["autoattack-standard"].norm == "linf"
    ours = standard_adversary(model, x, **params)
    theirs = AutoAttack(model, norm="Linf", eps=params["eps"], version="standard", seed=0)
    assert ours.attacks_to_run == theirs.attacks_to_run == ["apgd-ce", "apgd-t", "fab-t", "square"]
    settings = {
        "apgd": ("n_iter", "n_iter_2", "n_iter_min", "size_decr", "n_restarts"),
        "apgd_targeted": ("n_iter", "n_iter_2", "n_target_classes", "n_restarts"),
        "fab": ("n_iter", "n_target_classes", "n_restarts"),
        "square": ("n_queries", "n_restarts", "p_init"),
    }
    for part, names in settings.items():
        for name in names:
            assert getattr(getattr(ours, part), name) == getattr(getattr(theirs, part), name)
    assert ours.verbose is False


def test_a_cheaper_budget_keeps_the_apgd_schedule_consistent(linear):
    from pyautoattack.autopgd_base import APGDAttack

    model, x, _ = linear
    cheap = standard_adversary(model, x, eps=EPS, seed=0, **CHEAP)
    fresh = APGDAttack(model, n_iter=CHEAP["steps"], eps=EPS)
    for name in ("n_iter", "n_iter_orig", "n_iter_2", "n_iter_min", "size_decr"):
        assert getattr(cheap.apgd, name) == getattr(fresh, name)
    assert cheap.fab.n_iter == 10 and cheap.square.n_queries == 100
    assert cheap.apgd_targeted.n_target_classes == cheap.fab.n_target_classes == 3


def test_stays_in_ball_and_box_and_finds_the_exact_worst_case(linear):
    """At the authors' full standard settings, on a model whose worst case is known."""
    model, x, y = linear
    x_adv = run_attack("autoattack-standard", model, x, y, eps=EPS)
    assert x_adv.shape == x.shape and x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv - x).abs().max() <= EPS + 1e-6
    found, truth = robust_flags(model, x_adv, y), exact_robust(model, x, y, EPS)
    assert not (truth & ~found).any()  # it never "breaks" what cannot be broken
    assert torch.equal(found, truth), (found.sum(), truth.sum())
    assert 0 < truth.sum() < robust_flags(model, x, y).sum()  # the budget is informative


def test_at_most_the_ports_apgd_ce_and_agrees_with_its_autoattack(linear):
    import torchattacks

    model, x, y = linear
    standard = standard_autoattack(model, x, y, EPS, seed=0, batch_size=N, **CHEAP)
    ce = robust_flags(
        model, run_attack("apgd-ce", model, x, y, eps=EPS, steps=CHEAP["steps"], seed=0), y
    )
    assert standard.float().mean() <= ce.float().mean() + 1 / N
    port = torchattacks.AutoAttack(model, norm="Linf", eps=EPS, version="standard", seed=0)
    port_flags = robust_flags(model, port(x, y), y)
    result = agreement(standard, port_flags)
    assert result["n"] == N
    assert result["both_robust"] + result["both_broken"] == round(result["agreement"] * N / 100)
    assert result["agreement"] >= 90.0, result


def test_same_seed_same_flags_and_the_callers_rng_untouched(linear):
    model, x, y = linear
    state = torch.get_rng_state()
    first = run_attack("autoattack-standard", model, x, y, eps=EPS, seed=7, **CHEAP)
    assert torch.equal(torch.get_rng_state(), state)
    again = run_attack("autoattack-standard", model, x, y, eps=EPS, seed=7, **CHEAP)
    assert torch.equal(first, again)
    flags = standard_autoattack(model, x, y, EPS, seed=7, **CHEAP)
    assert torch.equal(flags, robust_flags(model, first, y))


def test_zero_gradient_model_gets_a_valid_result(linear):
    """Constant logits: no gradient, no score change; every example keeps its clean verdict."""
    _, x, y = linear
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    nn.init.zeros_(model[1].weight)
    with torch.no_grad():
        model[1].bias.copy_(torch.arange(10.0))  # always class 9
    x_adv = run_attack("autoattack-standard", model, x, y, eps=EPS, **CHEAP)
    assert torch.isfinite(x_adv).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1 and (x_adv - x).abs().max() <= EPS + 1e-6
    assert torch.equal(robust_flags(model, x_adv, y), y == 9)


def test_too_few_classes_is_a_clear_error(linear):
    _, x, y = linear
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    with pytest.raises(ValueError, match="at least 4 classes"):
        run_attack("autoattack-standard", model, x, y % 3, eps=EPS, **CHEAP)


def test_agreement_counts_each_kind():
    standard = torch.tensor([True, True, False, False, False])
    port = torch.tensor([True, False, True, False, False])
    assert agreement(standard, port) == {
        "agreement": 60.0,
        "n": 5,
        "both_robust": 1,
        "both_broken": 2,
        "only_standard_broke": 1,
        "only_port_broke": 1,
    }
    assert math.isnan(agreement(standard[:0], port[:0])["agreement"])
    with pytest.raises(ValueError, match="not the same set"):
        agreement(standard, port[:4])
