"""The attack harness: registry, backends, ε-balls, monotonicity, cross-checks,
the signed-gradient loop, black-box transfer, minimum-perturbation searches, noise and
repeatable result rows.

Digits models shrug off CIFAR budgets (8/255), so the budgets here are large (0.05-0.5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

from robustbench_lr import cli, numerics, results
from robustbench_lr.attacks import ATTACKS, resolve, rho, robust_flags, run_attack
from robustbench_lr.attacks.base import least_likely
from robustbench_lr.attacks.harness import evaluate_attack, param_text, setting_fields
from robustbench_lr.attacks.loop import (
    STEP_RULES,
    Step,
    signed_gradient_loop,
    towards_label,
    towards_least_likely,
)
from robustbench_lr.attacks.search import (
    SEARCHES,
    SearchSettings,
    accuracy_curve,
    attack_until_fooled,
    per_sample_min_eps,
    step_accuracies,
    step_curves,
    threshold_search,
)
from robustbench_lr.attacks.verify import Agreement, VerificationError, verify
from robustbench_lr.checkpoints import load_model
from robustbench_lr.target import load_target, uniform_subset

N = 120


@pytest.fixture(scope="module")
def digits(nlr_digits: Path):
    """The session's N-LR digits model and a seeded uniform test subset of N images."""
    return load_target(nlr_digits, n=N, seed=0)


@pytest.fixture(scope="module")
def other_digits(nlr_digits_seed1: Path) -> Path:
    """A second, independently seeded N-LR digits model: the black-box target."""
    return nlr_digits_seed1


def acc(model, x_adv, y) -> float:
    return 100.0 * robust_flags(model, x_adv, y).float().mean().item()


# ---- a table of cases: every attack x backend stays in [0, 1] and its ε-ball, and repeats -------

# The strong attacks run with a few steps / queries on a slice: the table checks contracts
# (bounds, repeatability), not strength.
TABLE_N = 24


@dataclass(frozen=True)
class Case:
    attack: str
    backend: str | None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        shown = ",".join(f"{k}={v:g}" for k, v in self.params.items())
        return f"{self.attack}[{self.backend or 'default'}]({shown})"


CASES = [
    Case("ifsgm", "torchattacks", {"eps": 0.1, "steps": 5}),
    Case("ifsgm", "foolbox", {"eps": 0.1, "steps": 5}),
    Case("ifsgm", "ours", {"eps": 0.1, "steps": 5}),
    Case("ifsgm", "torchattacks", {"eps": 0.3, "steps": 3, "alpha": 0.5}),
    Case("ill", "ours", {"eps": 0.2, "steps": 5}),
    Case("ill-fixed", "torchattacks", {"eps": 0.2, "steps": 5}),
    Case("ill-fixed", "ours", {"eps": 0.2, "steps": 5}),
    Case("fgsm", "torchattacks", {"eps": 0.1}),
    Case("deepfool", "ours", {}),
    Case("deepfool", "foolbox", {}),
    Case("deepfool", "torchattacks", {"steps": 3}),  # it loops over samples: slow
    Case("noise", None, {"p": 1.0, "sigma": 2.0}),
    Case("linf-noise", None, {"eps": 0.1}),
    Case("ifsgm-restarts", None, {"eps": 0.1, "steps": 3, "restarts": 2}),
    Case("apgd-ce", None, {"eps": 0.1, "steps": 5}),
    Case("apgd-dlr", None, {"eps": 0.1, "steps": 5, "restarts": 2}),
    Case("apgd-t", None, {"eps": 0.1, "steps": 5, "targets": 2}),
    Case("fab-t", None, {"eps": 0.1, "steps": 5, "targets": 2}),
    Case("square", None, {"eps": 0.1, "queries": 20}),
    Case("autoattack", None, {"eps": 0.1, "steps": 5, "targets": 2, "queries": 20}),
    Case("autoattack-standard", None, {"eps": 0.1, "steps": 5, "targets": 2, "queries": 20}),
    Case("pgd-l2", None, {"eps": 0.3, "steps": 5}),
    Case("autoattack-standard-l2", None, {"eps": 0.3, "steps": 5, "targets": 2, "queries": 20}),
    Case("l2-noise", None, {"eps": 0.3}),
    Case("pgd-l2-restarts", None, {"eps": 0.3, "steps": 3, "restarts": 2}),
    Case("apgd-ce-l2", None, {"eps": 0.3, "steps": 5}),
    Case("apgd-dlr-l2", None, {"eps": 0.3, "steps": 5, "restarts": 2}),
    Case("apgd-t-l2", None, {"eps": 0.3, "steps": 5, "targets": 2}),
    Case("fab-t-l2", None, {"eps": 0.3, "steps": 5, "targets": 2}),
    Case("square-l2", None, {"eps": 0.3, "queries": 20}),
]


def test_the_case_table_covers_every_attack_and_backend():
    covered = {(c.attack, c.backend or next(iter(ATTACKS[c.attack].backends))) for c in CASES}
    registered = {(name, backend) for name in ATTACKS for backend in ATTACKS[name].backends}
    assert registered == covered


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_outputs_stay_in_box_and_ball_and_repeat(digits, case: Case):
    x, y = digits.x[:TABLE_N], digits.y[:TABLE_N]
    x_adv = run_attack(case.attack, digits.model, x, y, backend=case.backend, **case.params)
    assert x_adv.shape == x.shape
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    _, params = resolve(case.attack, case.backend, **case.params)
    if ATTACKS[case.attack].norm == "linf":
        assert (x_adv - x).abs().max() <= params["eps"] + 1e-6
    if ATTACKS[case.attack].norm == "l2" and "eps" in params:  # DeepFool is L2 but unbounded
        assert (x_adv - x).flatten(1).norm(dim=1).max() <= params["eps"] + 1e-4
    assert not torch.equal(x_adv, x)  # every case perturbs something
    # Deterministic attacks repeat; randomized ones repeat from the same seed (bit for bit under
    # the portable setting; native AVX-512 kernels were measured to differ run to run).
    again = run_attack(case.attack, digits.model, x, y, backend=case.backend, **case.params)
    if numerics.mode() == "portable":
        assert torch.equal(again, x_adv)


def test_an_unsupported_backend_lists_the_valid_ones(digits):
    with pytest.raises(ValueError, match="no backend 'foolbox'; valid choices: ours$"):
        run_attack("ill", digits.model, digits.x, digits.y, backend="foolbox")
    with pytest.raises(ValueError, match="valid choices: torchattacks$"):
        run_attack("square", digits.model, digits.x, digits.y, backend="ours")


def test_only_random_noise_is_averaged_over_draws(digits):
    averaged = {name for name in ATTACKS if ATTACKS[name].averaged_over_draws}
    assert averaged == {"noise", "linf-noise", "l2-noise"}
    x, y = digits.x[:16], digits.y[:16]
    square = evaluate_attack("square", digits.model, x, y, eps=0.1, queries=5, draws=3)
    assert square.robust.shape == (1, 16) and square.record["draws"] == 1
    corners = evaluate_attack("linf-noise", digits.model, x, y, eps=0.1, draws=3)
    assert corners.robust.shape == (3, 16) and corners.record["draws"] == 3


def test_params_are_frozen_during_attack_and_restored_after(digits):
    model = digits.model
    model.train()
    seen = []
    handle = model.register_forward_hook(
        lambda mod, inp, out: seen.append(
            (mod.training, any(p.requires_grad for p in mod.parameters()))
        )
    )
    try:
        run_attack("ifsgm", model, digits.x[:8], digits.y[:8], eps=0.1, steps=2)
    finally:
        handle.remove()
    assert seen and all(state == (False, False) for state in seen)
    assert model.training and all(p.requires_grad for p in model.parameters())
    model.eval()


def test_bad_names_list_the_valid_choices(digits):
    with pytest.raises(KeyError, match="valid choices: ifsgm, ill, ill-fixed, fgsm, deepfool"):
        run_attack("pgd", digits.model, digits.x, digits.y)
    with pytest.raises(ValueError, match="valid choices: torchattacks, foolbox"):
        run_attack("ifsgm", digits.model, digits.x, digits.y, backend="art")
    with pytest.raises(ValueError, match="takes no parameter"):
        run_attack("ifsgm", digits.model, digits.x, digits.y, overshoot=0.1)
    assert resolve("ifsgm", eps=0.1, steps=4)[1]["alpha"] == pytest.approx(2.5 * 0.1 / 4)


# ---- attack strength --------------------------------------------------------------------------


def test_deepfool_fools_nearly_all_correct_inputs(digits):
    correct = robust_flags(digits.model, digits.x, digits.y)
    x, y = digits.x[correct], digits.y[correct]
    x_adv = run_attack("deepfool", digits.model, x, y)
    fooled = ~robust_flags(digits.model, x_adv, y)
    assert fooled.float().mean() >= 0.99
    per = rho(x_adv, x)
    assert (per > 0).all() and per.mean() < 0.5  # minimal: far smaller than the image itself


@pytest.mark.portable
def test_deepfool_in_memory_halves_gives_each_sample_its_own_result(digits):
    """From 64 standing rows DeepFool splits its graph in two; a sample's path must not care."""
    model, x, y = digits.model, digits.x, digits.y
    assert len(x) >= 64
    whole = run_attack("deepfool", model, x, y)  # split into halves
    alone = torch.cat(
        [run_attack("deepfool", model, x[i : i + 16], y[i : i + 16]) for i in range(0, len(x), 16)]
    )
    assert (whole - alone).abs().max() <= 1e-4
    assert torch.equal(robust_flags(model, whole, y), robust_flags(model, alone, y))


def test_accuracy_falls_with_eps_and_steps_and_vanishes_at_half(digits):
    model, x, y = digits.model, digits.x, digits.y
    budgets = [0.05, 0.1, 0.2, 0.5]
    by_steps = {
        steps: [
            acc(model, run_attack("ifsgm", model, x, y, eps=e, steps=steps), y) for e in budgets
        ]
        for steps in (7, 20)
    }
    for curve in by_steps.values():
        assert all(b <= a for a, b in zip(curve, curve[1:], strict=False)), curve
    for seven, twenty in zip(by_steps[7], by_steps[20], strict=True):
        assert twenty <= seven + 1.0
    assert by_steps[7][-1] <= 5.0 and by_steps[20][-1] <= 5.0
    assert by_steps[7][0] > by_steps[7][-1] + 50  # the sweep spans real robustness


# ---- cross-checks between backends --------------------------------------------------------------


def test_torchattacks_and_foolbox_ifsgm_agree(digits):
    kw = {"eps": 0.1, "steps": 7}
    a = run_attack("ifsgm", digits.model, digits.x, digits.y, backend="torchattacks", **kw)
    b = run_attack("ifsgm", digits.model, digits.x, digits.y, backend="foolbox", **kw)
    assert abs(acc(digits.model, a, digits.y) - acc(digits.model, b, digits.y)) <= 1.0
    assert (a - b).abs().max() <= 1e-6


def test_ill_fixed_matches_torchattacks_least_likely(digits):
    kw = {"eps": 0.2, "steps": 7}
    lib = run_attack("ill-fixed", digits.model, digits.x, digits.y, backend="torchattacks", **kw)
    ours = run_attack("ill-fixed", digits.model, digits.x, digits.y, backend="ours", **kw)
    assert abs(acc(digits.model, lib, digits.y) - acc(digits.model, ours, digits.y)) <= 1.0
    assert (lib - ours).abs().max() <= 1e-6


class _Recorder(torch.nn.Module):
    """Pass-through model that keeps every forward's logits (to read ill's per-step targets)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.logits: list[torch.Tensor] = []

    def forward(self, x):
        out = self.model(x)
        self.logits.append(out.detach())
        return out


def test_ill_differs_from_ill_fixed_exactly_where_the_target_changes(digits):
    x, y = digits.x, digits.y
    recorder = _Recorder(digits.model)
    kw = {"eps": 0.3, "steps": 10, "alpha": 0.05}
    per_step = signed_gradient_loop(recorder, x, y, rule=towards_least_likely, **kw)
    with torch.no_grad():
        target = least_likely(digits.model(x), y)
    fixed = signed_gradient_loop(digits.model, x, y, rule=towards_label, labels=target, **kw)
    # One forward per update, then one that only judges the final iterate.
    masked = [lg.scatter(1, y[:, None], math.inf) for lg in recorder.logits[: kw["steps"]]]
    targets = torch.stack([m.argmin(1) for m in masked])  # (steps, N): target used at each step
    changed = (targets != targets[0]).any(0)
    differs = (per_step.final - fixed.final).flatten(1).abs().amax(1) > 0
    assert changed.sum() >= 3, "the case must exercise a changing least-likely class"
    # Every example whose target changed takes another path. One whose target stayed may
    # still part by rounding: the two rules compute the same loss by different ops, and a
    # gradient component near 0 can flip its sign (1 of 450 on an AVX2-only EPYC, 0 here).
    assert not (changed & ~differs).any()
    assert (differs & ~changed).sum() <= max(1, len(y) // 100)
    assert torch.equal(run_attack("ill", digits.model, x, y, **kw), per_step.best)
    assert torch.equal(
        run_attack("ill-fixed", digits.model, x, y, backend="ours", **kw), fixed.final
    )


# ---- the signed-gradient loop: best iterates, per-step callback -------------------------------


def test_the_loop_returns_each_samples_latest_fooling_iterate(digits):
    model, x, y = digits.model, digits.x, digits.y
    seen: list[Step] = []
    run = signed_gradient_loop(
        model, x, y, rule=STEP_RULES["ill"], eps=0.3, alpha=0.05, steps=10, on_step=seen.append
    )
    assert [s.step for s in seen] == list(range(11))
    assert all(torch.equal(s.index, torch.arange(len(x))) for s in seen)  # nobody stops
    assert (run.steps == 10).all() and torch.equal(seen[-1].x_adv, run.final)
    fooled = torch.stack([s.logits.argmax(1) != y for s in seen])  # (steps + 1, N)
    iterates = torch.stack([s.x_adv for s in seen])
    assert torch.equal(run.fooled, fooled.any(0))
    latest = (fooled * torch.arange(11)[:, None]).argmax(0)  # last step that fooled
    expected = torch.where(
        run.fooled.view(-1, 1, 1, 1), iterates[latest, torch.arange(len(x))], run.final
    )
    assert torch.equal(run.best, expected)
    recovered = run.fooled & ~fooled[-1]
    assert recovered.sum() >= 3, "the case must exercise a sample that is fooled, then not"
    assert not robust_flags(model, run.best, y)[run.fooled].any()
    assert torch.equal(run.best[fooled[-1]], run.final[fooled[-1]])


def test_ifsgm_ours_is_torchattacks_where_its_final_iterate_fools_and_never_weaker(digits):
    model, x, y = digits.model, digits.x, digits.y
    kw = {"eps": 0.1, "steps": 7}
    lib = run_attack("ifsgm", model, x, y, backend="torchattacks", **kw)
    ours = run_attack("ifsgm", model, x, y, backend="ours", **kw)
    lib_fooled = ~robust_flags(model, lib, y)
    assert lib_fooled.any() and (ours[lib_fooled] - lib[lib_fooled]).abs().max() <= 1e-6
    assert not robust_flags(model, ours, y)[lib_fooled].any()
    assert acc(model, ours, y) <= acc(model, lib, y)
    _, params = resolve("ifsgm", **kw)
    run = signed_gradient_loop(model, x, y, rule=STEP_RULES["ifsgm"], **params)
    assert (run.final - lib).abs().max() <= 1e-6  # the update itself is torchattacks' PGD


def test_the_step_curve_comes_from_the_same_run_as_the_examples(digits):
    model, x, y = digits.model, digits.x, digits.y
    kw = {"eps": 0.3, "alpha": 0.03, "steps": 12}
    predictions: list[torch.Tensor] = []
    run = signed_gradient_loop(
        model,
        x,
        y,
        rule=STEP_RULES["ifsgm"],
        on_step=lambda step: predictions.append(step.logits.argmax(1)),
        **kw,
    )
    instant, cumulative = step_curves(torch.stack(predictions))
    again = step_accuracies(model, x, y, attack="ifsgm", **kw)
    assert torch.equal(instant, again[0]) and torch.equal(cumulative, again[1])
    assert torch.equal(run.best, run_attack("ifsgm", model, x, y, backend="ours", **kw))


def test_verify_passes_on_agreement_and_fails_loudly_otherwise(digits, monkeypatch):
    good = verify("ifsgm", digits.model, digits.x[:32], digits.y[:32], eps=0.1, steps=3)
    assert good.ok and good.backends == ("torchattacks", "foolbox")
    assert verify("ill", digits.model, digits.x[:32], digits.y[:32], eps=0.2).ok
    agreed = verify("deepfool", digits.model, digits.x[:32], digits.y[:32])
    assert agreed.backends == ("ours", "foolbox") and agreed.acc[0] == agreed.acc[1]
    bad = Agreement("ifsgm", ("torchattacks", "foolbox"), (50.0, 52.0), (0.1, 0.1), 32)
    assert not bad.ok
    monkeypatch.setattr("robustbench_lr.attacks.verify.cross_check", lambda *a, **k: bad)
    with pytest.raises(VerificationError, match="50.00% .* 52.00%"):
        verify("ifsgm", digits.model, digits.x[:32], digits.y[:32], eps=0.1, steps=3)


# ---- black-box transfer -----------------------------------------------------------------------


def test_black_box_is_weaker_than_white_box_and_equal_for_the_same_model(
    digits, nlr_digits, other_digits
):
    target, _ = load_model(other_digits)
    x, y = digits.x, digits.y
    kw = {"eps": 0.15, "steps": 7}
    white = evaluate_attack("ifsgm", target, x, y, **kw)
    black = evaluate_attack("ifsgm", target, x, y, source=digits.model, **kw)
    assert black.box == "black" and white.box == "white"
    assert black.acc >= white.acc + 5  # transfer loses strength on an independent model
    same_source, _ = load_model(nlr_digits)
    self_transfer = evaluate_attack("ifsgm", digits.model, x, y, source=same_source, **kw)
    self_white = evaluate_attack("ifsgm", digits.model, x, y, **kw)
    assert self_transfer.acc == self_white.acc
    assert torch.equal(self_transfer.robust, self_white.robust)


# ---- minimum-perturbation searches ------------------------------------------------------------

SEARCH = {"attack": "ifsgm", "alpha": 0.02, "max_steps": 20, "tol": 0.02, "eps_max": 0.5}


def test_early_stopped_search_stays_in_ball_and_matches_pgd_when_not_stopped(digits):
    model, x, y = digits.model, digits.x, digits.y
    eps = torch.linspace(0.0, 0.2, len(x))
    x_adv, steps = attack_until_fooled(
        model, x, y, attack="ifsgm", eps=eps, alpha=0.02, max_steps=6
    )
    assert ((x_adv - x).abs().flatten(1).amax(1) <= eps + 1e-6).all()
    standing = robust_flags(model, x_adv, y)
    assert (steps[standing] == 6).all() and (steps[~standing] < 6).any()
    fooled_at = ~robust_flags(model, x_adv, y)
    assert fooled_at[steps < 6].all()  # a sample stops only when it is misclassified
    flat, _ = attack_until_fooled(model, x, y, attack="ifsgm", eps=0.1, alpha=0.02, max_steps=6)
    pgd = run_attack("ifsgm", model, x, y, eps=0.1, steps=6, alpha=0.02)
    never = robust_flags(model, flat, y)
    assert never.any() and (flat[never] - pgd[never]).abs().max() <= 1e-6


@pytest.mark.portable
def test_threshold_search_reports_the_smallest_grid_eps_over_99_percent(digits):
    model, x, y = digits.model, digits.x, digits.y
    found = threshold_search(model, x, y, rate=0.99, **SEARCH)
    assert not math.isnan(found.eps) and found.misclassified > 0.99
    tol = SEARCH["tol"]
    evaluated = {round(e / tol): share for e, share in found.evaluations}
    k = round(found.eps / tol)
    assert evaluated[k] > 0.99 and evaluated[k - 1] <= 0.99  # ε − tol was run and falls short
    kw = {key: v for key, v in SEARCH.items() if key not in ("tol", "eps_max")}
    for eps, over in ((found.eps, True), (found.eps - tol, False)):
        x_adv, _ = attack_until_fooled(model, x, y, eps=eps, **kw)
        assert (1 - robust_flags(model, x_adv, y).float().mean().item() > 0.99) is over
    assert 0 < found.rho < 1 and found.rho_fooled >= found.rho * 0.9


@pytest.mark.parametrize("hint", ["implied", "too small", "too large", "unreachable"])
def test_a_hinted_threshold_keeps_the_bisections_guarantee(digits, hint: str):
    from robustbench_lr.attacks.search import EpsSearch

    model, x, y = digits.model, digits.x[:40], digits.y[:40]
    search = EpsSearch("ifsgm", SEARCH["alpha"], SEARCH["max_steps"], SEARCH["tol"], 0.5)
    direct = search.threshold(model, x, y, 0.9)
    min_eps = search.min_eps(model, x, y)
    wrong = {"too small": min_eps * 0 + 0.02, "too large": min_eps * 0 + 0.4}
    given = {**wrong, "implied": min_eps, "unreachable": min_eps * 0 + math.inf}[hint]
    hinted = search.threshold(model, x, y, 0.9, given)
    assert hinted.eps == direct.eps and hinted.rho == direct.rho
    evaluated = {round(e / SEARCH["tol"]): share for e, share in hinted.evaluations}
    k = round(hinted.eps / SEARCH["tol"])
    assert evaluated[k] > 0.9 and evaluated[k - 1] <= 0.9
    if hint == "implied":
        assert len(hinted.evaluations) == 2 < len(direct.evaluations)


def test_per_sample_min_eps_is_tight_and_gives_a_falling_curve(digits):
    model, x, y = digits.model, digits.x[:40], digits.y[:40]
    min_eps = per_sample_min_eps(model, x, y, **SEARCH)
    assert min_eps.shape == (40,)
    clean_wrong = ~robust_flags(model, x, y)
    assert (min_eps[clean_wrong] == 0).all()
    finite = torch.isfinite(min_eps) & (min_eps > 0)
    assert finite.sum() >= 30
    kw = {k: v for k, v in SEARCH.items() if k not in ("tol", "eps_max")}
    at, _ = attack_until_fooled(model, x[finite], y[finite], eps=min_eps[finite].float(), **kw)
    before, _ = attack_until_fooled(
        model, x[finite], y[finite], eps=(min_eps[finite] - SEARCH["tol"]).float(), **kw
    )
    assert not robust_flags(model, at, y[finite]).any()
    assert robust_flags(model, before, y[finite]).all()
    grid = torch.arange(0, 26, dtype=torch.float64) * SEARCH["tol"]
    curve = accuracy_curve(min_eps, grid)
    assert curve[0] == pytest.approx(100 * (1 - clean_wrong.float().mean().item()))
    assert (curve[1:] <= curve[:-1]).all() and curve[-1] < curve[0]


@pytest.mark.portable
def test_every_search_is_a_registry_entry_deepfool_included(digits):
    model, x, y = digits.model, digits.x[:30], digits.y[:30]
    assert SEARCHES.names() == ["ifsgm", "ill", "deepfool"]
    # eps_max 1 reaches the 99 % target on any machine's rounding of the model (at 0.5 one
    # AVX2-only CPU's model stopped at 96.7 %), so both searches return a number to compare.
    settings = SearchSettings(alpha=0.02, max_steps=20, tol=0.02, eps_max=1.0, per_sample=True)
    found = {name: SEARCHES[name].find(model, x, y, settings, None) for name in SEARCHES}
    for name, result in found.items():
        assert result.attack == name
        assert {"rho", "rho_fooled", "misclassified"} <= set(result.metrics)
    direct = threshold_search(model, x, y, rate=0.99, **{**SEARCH, "eps_max": 1.0})
    assert not math.isnan(direct.eps)
    ifsgm = found["ifsgm"]
    assert ifsgm.backend == "ours" and ifsgm.metrics["eps"] == direct.eps
    # The per-sample minima hint the threshold: fewer runs, each one the bisection also ran.
    direct_runs = {e: 100.0 * share for e, share in direct.evaluations}
    assert set(ifsgm.bisection) <= set(direct_runs.items())
    assert len(ifsgm.bisection) < len(direct.evaluations)
    assert len(ifsgm.curve) == 51 and "median_eps" in ifsgm.metrics
    assert param_text(ifsgm.params) == "eps_max=1;rate=0.99;tol=0.02"
    deepfool, ev = found["deepfool"], evaluate_attack("deepfool", model, x, y)
    assert deepfool.backend == "ours" and deepfool.metrics["rho"] == ev.mean_rho
    assert deepfool.bisection == deepfool.curve == () and "eps" not in deepfool.metrics


def test_a_search_that_misses_its_target_says_so_with_nan_and_the_share_it_reached(digits):
    model, x, y = digits.model, digits.x[:30], digits.y[:30]
    missed = threshold_search(model, x, y, rate=0.99, **{**SEARCH, "eps_max": 0.02})
    assert math.isnan(missed.eps) and math.isnan(missed.rho) and math.isnan(missed.rho_fooled)
    assert 0 <= missed.misclassified <= 0.99  # the share at eps_max, short of the target
    assert dict(missed.evaluations)[max(dict(missed.evaluations))] == missed.misclassified
    assert max(eps for eps, _ in missed.evaluations) == pytest.approx(0.02)


@pytest.mark.portable
def test_matched_examples_push_on_until_the_other_model_is_fooled(digits, other_digits):
    judge, _ = load_model(other_digits)
    model, x, y = digits.model, digits.x[:30], digits.y[:30]
    for name in SEARCHES:
        backend, params = resolve(name, **({} if name == "deepfool" else {"eps": 0.5, "steps": 20}))
        x_adv = SEARCHES[name].matched(model, judge, x, y, backend, params)
        assert x_adv.shape == x.shape and 0 <= x_adv.min() and x_adv.max() <= 1
        assert acc(judge, x_adv, y) <= 20.0, name
        if name != "deepfool":
            assert (x_adv - x).abs().max() <= params["eps"] + 1e-6


def test_step_curves_cumulative_never_rises_and_starts_at_100(digits):
    instant, cumulative = step_accuracies(
        digits.model, digits.x, digits.y, attack="ill", eps=0.3, alpha=0.03, steps=12
    )
    assert instant.shape == cumulative.shape == (13,)
    assert instant[0] == cumulative[0] == 100.0
    assert (cumulative[1:] <= cumulative[:-1]).all()
    assert (instant >= cumulative).all() and cumulative[-1] < 50


# ---- noise --------------------------------------------------------------------------------------


def test_noise_p0_is_identity_and_seeds_repeat(digits):
    model, x, y = digits.model, digits.x, digits.y
    clean = evaluate_attack("noise", model, x, y, p=0.0, draws=2)
    assert clean.acc == clean.clean_acc and clean.mean_rho == 0.0
    first = evaluate_attack("noise", model, x, y, p=0.8, seed=3, draws=3)
    again = evaluate_attack("noise", model, x, y, p=0.8, seed=3, draws=3)
    other = evaluate_attack("noise", model, x, y, p=0.8, seed=4, draws=3)
    assert torch.equal(first.robust, again.robust) and torch.equal(first.rho, again.rho)
    assert not torch.equal(first.rho, other.rho)
    assert first.acc < clean.acc
    assert setting_fields(first.params, first.record) == {
        "p": 0.8,
        "param": "draws=3;mask=pixel;seed=3;sigma=0.501961;sigma_is=std",
    }


def test_uniform_subset_is_seeded_sorted_and_capped():
    a, b = uniform_subset(450, 100, seed=2), uniform_subset(450, 100, seed=2)
    assert torch.equal(a, b) and len(set(a.tolist())) == 100 and torch.equal(a, a.sort().values)
    assert not torch.equal(a, uniform_subset(450, 100, seed=3))
    assert torch.equal(uniform_subset(50, 500), torch.arange(50))


# ---- the commands ------------------------------------------------------------------------------


def test_attack_command_rows_are_byte_identical_on_rerun(nlr_digits, tmp_path):
    argv = [
        "attack",
        "--checkpoint",
        str(nlr_digits),
        "--attack",
        "ifsgm,noise",
        "--eps",
        "0.1,0.2",
        "--steps",
        "3",
        "--p",
        "0,0.5",
        "--noise-draws",
        "2",
        "--n",
        "40",
        "--device",
        "cpu",
        "--per-step",
    ]
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    assert cli.main([*argv, "--out", str(first)]) == 0
    assert cli.main([*argv, "--out", str(second)]) == 0
    assert first.read_bytes() == second.read_bytes()
    assert cli.main([*argv, "--out", str(first)]) == 0  # re-run into the same file replaces
    frame = results.read(first)
    assert len(frame) == len(results.read(second)) == 2 * 5 + 2 * 5 + 2 * 4 * 2
    ifsgm = frame[
        (frame.experiment == "attack") & (frame.attack == "ifsgm") & (frame.metric == "acc")
    ]
    assert sorted(ifsgm.eps.round(6)) == [0.1, 0.2] and set(ifsgm.box) == {"white"}
    assert set(ifsgm.alpha.round(6)) == {round(2.5 * 0.1 / 3, 6), round(2.5 * 0.2 / 3, 6)}
    noise = frame[(frame.attack == "noise") & (frame.metric == "acc")]
    assert set(zip(noise.p, noise.param, strict=True)) == {
        (p, "draws=2;mask=pixel;seed=0;sigma=0.501961;sigma_is=std") for p in (0.0, 0.5)
    }


def test_attack_command_black_box_and_errors(nlr_digits, other_digits, tmp_path, capsys):
    out = tmp_path / "r.csv"
    argv = [
        "attack",
        "--checkpoint",
        str(other_digits),
        "--source",
        str(nlr_digits),
        "--attack",
        "ifsgm",
        "--eps",
        "0.15",
        "--steps",
        "3",
        "--n",
        "30",
        "--device",
        "cpu",
        "--verify",
        "--out",
        str(out),
    ]
    assert cli.main(argv) == 0
    assert "verified: ifsgm" in capsys.readouterr().out
    frame = results.read(out)
    assert set(frame.box) == {"black"} and set(frame.source) == {str(nlr_digits)}
    assert (
        cli.main(["attack", "--checkpoint", str(nlr_digits), "--attack", "pgd", "--out", str(out)])
        == 2
    )
    assert "valid choices: ifsgm, ill" in capsys.readouterr().err
    assert (
        cli.main(
            [
                "attack",
                "--checkpoint",
                str(nlr_digits),
                "--attack",
                "noise",
                "--verify",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "it works for: ifsgm" in capsys.readouterr().err


@pytest.mark.portable
def test_minrho_command_writes_threshold_bisection_and_curve_rows(nlr_digits, tmp_path):
    out = tmp_path / "m.csv"
    argv = [
        "minrho",
        "--checkpoint",
        str(nlr_digits),
        "--attack",
        "ifsgm,deepfool",
        "--n",
        "30",
        "--alpha",
        "0.02",
        "--max-steps",
        "20",
        "--tol",
        "0.02",
        "--eps-max",
        "1",
        "--per-sample",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    assert cli.main(argv) == 0
    frame = results.read(out)
    minrho = frame[frame.experiment == "minrho"].set_index(["attack", "metric"]).value
    assert minrho[("ifsgm", "misclassified")] > 99 and 0 < minrho[("ifsgm", "eps")] <= 1
    assert minrho[("deepfool", "misclassified")] > 90 and minrho[("deepfool", "rho")] > 0
    curve = frame[frame.experiment == "minrho-curve"].sort_values("eps").value.to_numpy()
    assert len(curve) == 51 and (curve[1:] <= curve[:-1]).all()
    # The threshold the per-sample minima imply, and the grid point below it: two runs.
    bisection = frame[frame.experiment == "minrho-bisection"].sort_values("eps").value.to_numpy()
    assert len(bisection) >= 2 and bisection[-1] > 99 >= bisection[-2]


def test_attack_command_passes_strong_attack_flags_and_runs_them_once(
    nlr_digits: Path, tmp_path: Path
):
    # --queries/--targets/--restarts reach the attacks; only noise is averaged over draws.
    out = tmp_path / "r.csv"
    base = ["attack", "--checkpoint", str(nlr_digits), "--eps", "32/255", "--n", "20"]
    flags = ["--queries", "20", "--restarts", "2", "--device", "cpu", "--out", str(out)]
    assert cli.main([*base, "--attack", "square,ifsgm-restarts", *flags]) == 0
    params = dict(zip(*[results.read(out)[c] for c in ("attack", "param")], strict=False))
    assert params["square"] == "draws=1;queries=20;seed=0"
    assert "restarts=2" in params["ifsgm-restarts"] and "draws=1" in params["ifsgm-restarts"]


def test_exactly_99_percent_is_not_more_than_99_percent():
    # 99 of 100 samples can be fooled, one cannot: the > 99 % threshold is never reached
    # (a float32 mean would call 99/100 "0.99000001" and report an ε).
    class Margin(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            s = self.w * x.flatten(1).sum(1)
            return torch.stack([1 - s, s], 1)  # class 1 once the pixel passes 0.5

    x = torch.full((100, 1, 1, 1), 0.45)
    x[0] = 0.0  # needs ε > 0.5: out of reach at eps_max 0.3
    y = torch.zeros(100, dtype=torch.long)
    search = {"attack": "ifsgm", "alpha": 0.05, "max_steps": 10, "tol": 0.05, "eps_max": 0.3}
    found = threshold_search(Margin(), x, y, rate=0.99, **search)
    assert math.isnan(found.eps) and found.misclassified == 0.99
    assert threshold_search(Margin(), x[1:], y[1:], rate=0.99, **search).eps == pytest.approx(0.1)
