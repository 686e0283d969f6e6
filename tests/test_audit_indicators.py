"""Pintor et al.'s indicators of attack failure, the cross-attack check and attack optimality.

Each new check of the audit meets a model built to fail it and an honest one it must pass:
a sinusoidal logit whose fixed-step path crosses the boundary and comes back (silent
success), a two-step budget (incomplete optimization), a randomized and a quantized model
(unstable predictions), a softmax saturated so that cross-entropy gradients vanish while
DeepFool still finds the boundary inside the ball (consistency). Models are analytic and
tiny (a few pixels), so the whole file runs in seconds.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from torch import nn

from robustbench_lr.attacks import robust_flags, run_attack
from robustbench_lr.attacks.harness import Evaluation
from robustbench_lr.attacks.loop import PathRecorder, observing
from robustbench_lr.audit import CHECKS, AuditOptions
from robustbench_lr.audit.battery import Battery, Run
from robustbench_lr.audit.markdown import render_markdown
from robustbench_lr.audit.optimality import optimality
from robustbench_lr.audit.probes import GradientProbe
from robustbench_lr.audit.report import AuditReport
from robustbench_lr.audit.rows import report_rows
from robustbench_lr.audit.runner import run_battery

EPS = 0.1


class Sine(nn.Module):
    """Two classes, z0 = 2·sin(4π·x₀), z1 = 0: correct (class 0) where the sine is positive.

    IFSGM's sign step of 0.275 (1.1 half-periods) from x₀ ∈ (0.13, 0.2) jumps into the
    negative half-wave (fooled) and straight back (correct): the path re-crosses the boundary
    at every step.
    """

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(2.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z0 = self.scale * torch.sin(4 * math.pi * x.flatten(1)[:, :1])
        return torch.cat([z0, torch.zeros_like(z0)], 1)


class Halves(nn.Module):
    """Two classes split at mean pixel 0.5, logits ±k·(0.5 − mean): honest and smooth (k = 10),
    its softmax saturated (k = 1000: cross-entropy gradients underflow to exactly zero),
    randomized (fresh logit noise at every call) or quantized (pixels rounded to quarters).
    `pixel0`: the decision reads pixel 0 only, so DeepFool's ‖r‖₂ is its ‖r‖∞."""

    def __init__(
        self, k: float = 10.0, noise: float = 0.0, quantize: bool = False, pixel0: bool = False
    ) -> None:
        super().__init__()
        self.k = nn.Parameter(torch.tensor(float(k)))
        self.noise, self.quantize, self.pixel0 = noise, quantize, pixel0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        if self.quantize:
            x = torch.round(4 * x) / 4
        m = x[:, :1] if self.pixel0 else x.mean(1, keepdim=True)
        z = self.k * torch.cat([0.5 - m, m - 0.5], 1)
        return z + self.noise * torch.randn_like(z) if self.noise else z


def halves_data(n: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-0 images (2×2) of mean 0.1..0.48: the ones below 0.4 stay correct at ε = 0.1."""
    gen = torch.Generator().manual_seed(seed)
    means = torch.linspace(0.1, 0.48, n)
    x = (means[:, None] + 0.02 * (torch.rand(n, 4, generator=gen) - 0.5)).view(n, 1, 2, 2)
    return x, torch.zeros(n, dtype=torch.long)


OPTIONS = AuditOptions(eps=EPS, n=24, batch_size=16)  # two chunks: the paths join across them


def ifsgm(label: str, steps: int, eps: float = EPS, **params) -> Run:
    return Run(label, "ifsgm", {"eps": eps, "steps": steps, **params}, "gradient", backend="ours")


def check(model: nn.Module, x, y, runs: list[Run], name: str, options=OPTIONS):
    b, _ = run_battery(model.eval(), x, y, options, runs)
    return CHECKS[name].run(b), b


# ---- silent success ---------------------------------------------------------------------------


def sine_data() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.linspace(0.135, 0.195, 12).view(12, 1, 1, 1)
    return x, torch.zeros(12, dtype=torch.long)


SINE = {"eps": 0.3, "steps": 2, "alpha": 0.275}
SINE_OPTIONS = AuditOptions(eps=0.3, n=12)


def test_silent_success_flags_an_attack_that_returns_its_last_iterate():
    model, (x, y) = Sine().eval(), sine_data()
    # the library's PGD ends where it started, correct, although step 1 fooled every input
    library = run_attack("ifsgm", model, x, y, backend="torchattacks", **SINE)
    assert robust_flags(model, library, y).all()
    with observing(PathRecorder(y)) as recorder:
        run_attack("ifsgm", model, x, y, backend="ours", **SINE)
    path = recorder.record()
    assert path.fooled.tolist() == [[False] * 12, [True] * 12, [False] * 12]
    # `ill-fixed` on the loop returns its final iterate, as the library does: flagged
    last = Run("ill-fixed", "ill-fixed", SINE, "gradient", backend="ours")
    result, _ = check(model, x, y, [last], "silent-success", SINE_OPTIONS)
    assert (result.status, result.count, result.share) == ("fail", 12, 100.0)
    assert result.flagged == tuple(range(12))
    # the loop's IFSGM returns its best iterate: the same path, nothing dropped
    best = Run("ifsgm", "ifsgm", SINE, "gradient", backend="ours")
    result, b = check(model, x, y, [best], "silent-success", SINE_OPTIONS)
    assert (result.status, result.count) == ("pass", 0) and b.acc("ifsgm") == 0.0


def test_silent_success_is_skipped_without_a_recorded_path():
    model, (x, y) = Sine().eval(), sine_data()
    library = Run("ifsgm", "ifsgm", SINE, "gradient", backend="torchattacks")
    result, b = check(model, x, y, [library], "silent-success", SINE_OPTIONS)
    assert result.status == "skip" and not b.paths


# ---- incomplete optimization ------------------------------------------------------------------


def test_two_steps_are_an_incomplete_optimization_and_fifty_are_not():
    model, (x, y) = Halves(), halves_data()
    short, b = check(model, x, y, [ifsgm("ifsgm-2", 2, alpha=EPS / 10)], "incomplete-optimization")
    standing = b.flags("ifsgm-2")
    assert standing.sum() >= 16  # two small steps leave most inputs correct ...
    assert short.status == "fail" and short.count == int(standing.sum())  # ... all unconverged
    assert b.paths["ifsgm-2"].loss.shape == (3, 24)
    full, b = check(model, x, y, [ifsgm("ifsgm-50", 50)], "incomplete-optimization")
    assert 8 <= b.flags("ifsgm-50").sum() < standing.sum()
    assert (full.status, full.count) == ("pass", 0)


# ---- unstable predictions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (Halves(noise=3.0), halves_data()),
        # pixels just below a quarter-step: noise of ±ε/8 rounds them up or down
        (Halves(k=8.0, quantize=True), (torch.full((24, 1, 2, 2), 0.12), torch.zeros(24).long())),
    ],
    ids=["randomized", "quantized"],
)
def test_unstable_predictions_flag_randomized_and_quantized_models(model, data):
    x, y = data
    torch.manual_seed(0)
    result, b = check(model, x, y, [ifsgm("ifsgm-5", 5)], "unstable-predictions")
    assert result.status == "fail" and result.share >= 50.0, b.instability
    honest, b = check(Halves(), *halves_data(), [ifsgm("ifsgm-5", 5)], "unstable-predictions")
    assert (honest.status, honest.count) == ("pass", 0) and b.instability.max() < 0.5


# ---- consistency across attacks ---------------------------------------------------------------

CONSISTENCY_RUNS = [
    Run("fgsm", "fgsm", {"eps": 0.3}, "gradient"),
    ifsgm("ifsgm-10", 10, eps=0.3),
    Run("deepfool", "deepfool", {"steps": 10}, "unbounded"),
]


def pixel0_data() -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel 0 at 0.25..0.4 (DeepFool's boundary 0.1..0.25 away), the rest at random."""
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(16, 1, 2, 2, generator=gen)
    x[:, 0, 0, 0] = torch.linspace(0.25, 0.4, 16)
    return x, torch.zeros(16, dtype=torch.long)


def test_deepfool_inside_the_ball_exposes_saturated_gradients():
    x, y = pixel0_data()
    options = AuditOptions(eps=0.3, n=16)
    saturated = Halves(k=1000.0, pixel0=True)
    result, b = check(saturated, x, y, CONSISTENCY_RUNS, "consistent-across-attacks", options)
    assert b.acc("ifsgm-10") == 100.0 and b.acc("deepfool") == 0.0
    assert (result.status, result.count, result.flagged) == ("fail", 16, tuple(range(16)))
    report = AuditReport(b, (result,), optimality=optimality(b))
    assert "- consistent-across-attacks: 0, 1, 2," in render_markdown(report, "saturated")
    honest, b = check(
        Halves(pixel0=True), x, y, CONSISTENCY_RUNS, "consistent-across-attacks", options
    )
    assert b.acc("ifsgm-10") == 0.0 and (honest.status, honest.count) == ("pass", 0)


# ---- the honest model passes every new check --------------------------------------------------

NEW_CHECKS = (
    "silent-success",
    "incomplete-optimization",
    "unstable-predictions",
    "consistent-across-attacks",
)


def test_honest_model_passes_every_new_check():
    x, y = halves_data()
    runs = [
        Run("fgsm", "fgsm", {"eps": EPS}, "gradient"),
        ifsgm("ifsgm-50", 50),
        Run("deepfool", "deepfool", {"steps": 10}, "unbounded"),
        Run("sweep-0.5", "ifsgm", {"eps": 0.5, "steps": 50}, "unbounded", backend="ours"),
    ]
    b, _ = run_battery(Halves().eval(), x, y, OPTIONS, runs)
    results = {name: CHECKS[name].run(b) for name in NEW_CHECKS}
    assert {n: r.status for n, r in results.items()} == dict.fromkeys(NEW_CHECKS, "pass")
    assert set(b.paths) == {"ifsgm-50", "sweep-0.5"}
    # the unbounded checks report per example too: everything falls at ε = 0.5
    chance = CHECKS["unbounded-to-chance"].run(b)
    assert (chance.count, chance.share) == (0, 0.0)


# ---- attack optimality ------------------------------------------------------------------------


def toy_battery() -> Battery:
    """Four correct examples, hand-made outcomes: IFSGM at 0.1 and 0.2, FGSM at 0.1, DeepFool
    with ‖r‖₂ = 0.05, 0.15, 0.5, 0.25."""

    def ev(attack: str, fooled: list[int], rho: list[float] | None = None) -> Evaluation:
        robust = torch.ones(1, 4, dtype=torch.bool)
        robust[0, fooled] = False
        rhos = torch.tensor([rho or [0.0] * 4])
        return Evaluation(
            attack, "ours", {}, "white", torch.ones(4, dtype=torch.bool), robust, rhos
        )

    runs = [
        Run("ifsgm-20", "ifsgm", {"eps": 0.1, "steps": 20}, "gradient", backend="ours"),
        Run("fgsm", "fgsm", {"eps": 0.1}, "gradient"),
        Run("deepfool", "deepfool", {"steps": 50}, "unbounded"),
        Run("sweep-0.2", "ifsgm", {"eps": 0.2, "steps": 20}, "unbounded", backend="ours"),
    ]
    evaluations = {
        "ifsgm-20": ev("ifsgm", [0]),
        "fgsm": ev("fgsm", [0, 1]),
        "deepfool": ev("deepfool", [0, 1, 2, 3], [0.05, 0.15, 0.5, 0.25]),
        "sweep-0.2": ev("ifsgm", [0, 1, 2]),
    }
    return Battery(
        AuditOptions(eps=0.1),
        {r.label: r for r in runs},
        evaluations,
        GradientProbe(4, 0, 0),
        0.0,
        2,
        torch.ones(4, dtype=torch.bool),
        input_norms=torch.ones(4),
    )


def test_optimality_is_the_normalized_area_to_the_per_example_best():
    b = toy_battery()
    found = optimality(b)
    # the sweep joins IFSGM-20's curve; the reference is 50% at 0.1, 25% at 0.2
    assert list(found) == ["ifsgm-20", "fgsm", "deepfool"]
    assert found["ifsgm-20"].grid == pytest.approx((0.1, 0.2))
    assert found["ifsgm-20"].reference == pytest.approx((50.0, 25.0))
    assert found["ifsgm-20"].acc == pytest.approx((75.0, 25.0))
    # 1 − ((75 − 50) + (25 − 25)) / ((100 − 50) + (100 − 25))
    assert found["ifsgm-20"].value == pytest.approx(0.8)
    assert found["fgsm"].grid == pytest.approx((0.1,)) and found["fgsm"].value == 1.0
    # DeepFool is scored at every grid ε: 75% and 50% robust
    assert found["deepfool"].value == pytest.approx(1 - 50 / 125)
    report = AuditReport(b, (), optimality=found)
    rows = [r for r in report_rows(report, {"dataset": "toy"}) if r["metric"] == "optimality"]
    assert {r["attack"]: r["value"] for r in rows} == pytest.approx(
        {"ifsgm-20": 0.8, "fgsm": 1.0, "deepfool": 0.6}
    )
    assert all(r["experiment"] == "audit" and r["eps"] == 0.1 for r in rows)
    assert "## Attack optimality" in render_markdown(report, "toy")


def test_consistency_reads_deepfool_sizes_against_the_worst_case():
    """DeepFool's ‖r‖₂ = 0.05 (example 0) proves a miss once no attack at ε = 0.1 fools it;
    0.15 (example 1) is outside the ball and proves nothing."""
    b = toy_battery()
    assert CHECKS["consistent-across-attacks"].run(b).count == 0  # IFSGM fooled example 0
    standing = {
        label: replace(ev, robust=torch.ones(1, 4, dtype=torch.bool))
        for label, ev in b.evaluations.items()
        if b.runs[label].at_eps
    }
    missed = CHECKS["consistent-across-attacks"].run(
        replace(b, evaluations={**b.evaluations, **standing})
    )
    assert (missed.status, missed.count, missed.flagged) == ("fail", 1, (0,))
    assert missed.share == 25.0
