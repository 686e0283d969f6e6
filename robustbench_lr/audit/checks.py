"""The audit's sanity checks: one table of entries, each a claim, its meaning and a function.

The checks of Carlini et al. 2019 ("On Evaluating Adversarial Robustness", §5), Athalye et al.
2018 ("Obfuscated Gradients") and AutoAttack's flags. Each reads the `Battery` and returns the
two numbers it compared and a verdict, pass / warn / fail / skip; the entry adds its name and
what a failure usually means.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

from robustbench_lr.audit.battery import Battery, percent
from robustbench_lr.registry import Registry

TOLERANCE_PP = 1.0  # Carlini et al.'s "more steps never help", with 1 pp of noise (issue 8)
WARN_PP = 3.0  # beyond the tolerance but within this: warn, not fail
CHANCE_MARGIN_PP = 5.0  # accuracy at ε = 0.5 must reach chance + 5 pp
DEEPFOOL_PASS, DEEPFOOL_WARN = 99.0, 95.0  # success (%) of the unbounded DeepFool
ZERO_GRAD_WARN = 5.0  # share (%) of correct inputs with an exactly-zero gradient still a warn


@dataclass(frozen=True)
class Measured:
    """What a check function found: its verdict, the two numbers compared (a vs b), and the
    count behind a per-example comparison."""

    status: str
    a_label: str
    a: float
    b_label: str
    b: float
    detail: str
    count: int | None = None


@dataclass(frozen=True, kw_only=True)
class CheckResult(Measured):
    """One check's verdict as reported: what it measured, under its name and failure meaning."""

    name: str
    meaning: str


@dataclass(frozen=True)
class Check:
    """A check: its title (the claim it tests), what a failure means, and what it measures."""

    name: str
    title: str
    meaning: str
    measure: Callable[[Battery], Measured]
    transfer: bool = False  # reads the transfer run: its result rows name the source model

    def run(self, battery: Battery) -> CheckResult:
        return CheckResult(name=self.name, meaning=self.meaning, **asdict(self.measure(battery)))


def _graded(excess: float) -> str:
    """pass within the tolerance, warn within the warn band, fail beyond (both in pp)."""
    if excess <= TOLERANCE_PP + 1e-9:
        return "pass"
    return "warn" if excess <= WARN_PP + 1e-9 else "fail"


def not_above(stronger: str, weaker: str) -> Callable[[Battery], Measured]:
    """acc(stronger) ≤ acc(weaker) + tolerance: an attack that should win does."""

    def measure(b: Battery) -> Measured:
        a, w = b.acc(stronger), b.acc(weaker)
        detail = f"{stronger} {a:.1f}% vs {weaker} {w:.1f}% (allowed +{TOLERANCE_PP:g} pp)"
        return Measured(_graded(a - w), stronger, a, weaker, w, detail)

    return measure


def beaten_by_gradients(weaker: str) -> Callable[[Battery], Measured]:
    """Examples a weaker (gradient-free) attack fools but no gradient attack does."""

    def measure(b: Battery) -> Measured:
        if weaker not in b.evaluations:
            detail = "no source model given (--source)"
            return Measured("skip", "white-box", math.nan, weaker, math.nan, detail)
        white, other = b.whitebox, b.flags(weaker)
        count = int((white & ~other).sum())
        share = 100.0 * count / len(white) if len(white) else 0.0
        detail = (
            f"{count} of {len(white)} examples fooled by {weaker} but by no gradient attack "
            f"(allowed {TOLERANCE_PP:g}%)"
        )
        return Measured(
            _graded(share), "white-box", percent(white), weaker, b.acc(weaker), detail, count
        )

    return measure


def to_chance(b: Battery) -> Measured:
    """IFSGM at the top of the ε-sweep must bring accuracy to chance (+ a margin)."""
    last = [label for label, run in b.runs.items() if run.label.startswith("sweep-")]
    label = last[-1] if last else "ifsgm-20"
    a, chance, eps = b.acc(label), 100.0 / b.num_classes, b.runs[label].params["eps"]
    excess = a - chance - CHANCE_MARGIN_PP
    status = "pass" if excess <= 0 else "warn" if excess <= CHANCE_MARGIN_PP else "fail"
    detail = (
        f"accuracy {a:.1f}% at eps {eps:.4g}; chance {chance:.1f}% "
        f"(+{CHANCE_MARGIN_PP:g} pp allowed)"
    )
    return Measured(status, f"ifsgm-20 at eps={eps:.4g}", a, "chance", chance, detail)


def deepfool_success(b: Battery) -> Measured:
    """The unbounded DeepFool must misclassify (nearly) every correct input."""
    rate = b.evaluations["deepfool"].success
    rate = 0.0 if math.isnan(rate) else rate
    status = "pass" if rate >= DEEPFOOL_PASS else "warn" if rate >= DEEPFOOL_WARN else "fail"
    detail = f"DeepFool misclassifies {rate:.1f}% of correct inputs (needs {DEEPFOOL_PASS:g}%)"
    return Measured(status, "deepfool success", rate, "required", DEEPFOOL_PASS, detail)


def usable_gradients(b: Battery) -> Measured:
    """No non-finite input gradient; a few exactly-zero ones warn, many fail."""
    g = b.gradients
    if g.nonfinite:
        status = "fail"
    elif g.zero == 0:
        status = "pass"
    else:
        status = "warn" if g.zero_share <= ZERO_GRAD_WARN else "fail"
    detail = (
        f"{g.zero} of {g.correct} correct inputs have an all-zero gradient, "
        f"{g.nonfinite} a non-finite one"
    )
    return Measured(
        status,
        "zero-gradient share",
        g.zero_share,
        "non-finite",
        float(g.nonfinite),
        detail,
        g.zero + g.nonfinite,
    )


def deterministic(b: Battery) -> Measured:
    """Repeated eval-mode forward passes must agree exactly."""
    diff = b.nondeterminism
    detail = f"repeated eval-mode forward passes differ by up to {diff:.3g}"
    return Measured(
        "pass" if diff == 0 else "fail", "max |Δ output|", diff, "required", 0.0, detail
    )


CHECKS: Registry[Check] = Registry("audit check")
for _check in (
    Check(
        "iterative-beats-single-step",
        "IFSGM (20 steps) accuracy ≤ FGSM accuracy",
        "a single step beats many: the loss surface is locally misleading (gradient masking by "
        "a non-smooth or saturated model) or the iterative attack is misconfigured",
        not_above("ifsgm-20", "fgsm"),
    ),
    Check(
        "more-steps-7-20",
        "IFSGM 20 steps ≤ 7 steps + 1 pp",
        "more iterations help the defender: the attack follows gradients that do not lead to "
        "the boundary (masking), or the step size is wrong",
        not_above("ifsgm-20", "ifsgm-7"),
    ),
    Check(
        "more-steps-20-100",
        "IFSGM 100 steps ≤ 20 steps + 1 pp",
        "more iterations help the defender: the attack has not converged or oscillates on an "
        "obfuscated loss surface",
        not_above("ifsgm-100", "ifsgm-20"),
    ),
    Check(
        "restarts",
        "IFSGM with random restarts ≤ without + 1 pp",
        "random starts make the attack weaker: the gradient is only informative at the data "
        "points themselves (masking around the inputs) or the attack is broken",
        not_above("ifsgm-restarts", "ifsgm-20"),
    ),
    Check(
        "unbounded-to-chance",
        "IFSGM accuracy ≤ chance + 5 pp as eps grows to 0.5",
        "an attack with an unbounded budget must always succeed; if it does not, the gradients "
        "lead nowhere (masking) or the attack is buggy",
        to_chance,
    ),
    Check(
        "deepfool-succeeds",
        "DeepFool (unbounded L2) misclassifies ≥ 99% of correct inputs",
        "the linearized boundary search finds no boundary: zero, vanishing or misleading gradients",
        deepfool_success,
    ),
    Check(
        "whitebox-beats-transfer",
        "no example fooled by transfer from N-LR but by no gradient attack",
        "examples crafted on another model fool this one where its own gradients cannot: "
        "obfuscated gradients (Athalye et al. 2018)",
        beaten_by_gradients("transfer"),
        transfer=True,
    ),
    Check(
        "whitebox-beats-square",
        "no example fooled by Square but by no gradient attack",
        "a gradient-free, score-based search beats every gradient attack: the gradients are "
        "masked, shattered or saturated",
        beaten_by_gradients("square"),
    ),
    Check(
        "whitebox-beats-noise",
        "no example fooled by random noise of the same L-inf size but by no gradient attack",
        "blind noise beats the gradient attacks: the gradients point nowhere useful",
        beaten_by_gradients("linf-noise"),
    ),
    Check(
        "gradients-nonzero-finite",
        "input gradients are non-zero and finite on correct inputs",
        "a saturated softmax, non-differentiable layers or numerical overflow hide the "
        "gradient (shattered or vanishing gradients)",
        usable_gradients,
    ),
    Check(
        "deterministic",
        "repeated eval-mode forward passes are identical",
        "the model is randomized at test time: single-run attacks under-estimate it; attack "
        "the expectation (EOT)",
        deterministic,
    ),
):
    CHECKS.add(_check.name, _check)
