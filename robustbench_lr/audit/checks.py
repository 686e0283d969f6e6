"""The audit's sanity checks: one table of entries, each a claim, its meaning and a function.

The checks of Carlini et al. 2019, Athalye et al. 2018, AutoAttack's flags and Pintor et al.
2022's indicators of attack failure (`indicators.py`). A check compares runs by the part they
play (`threats.PARTS`: "the 20-step iterative attack"), so it reads the L∞ and the L2 battery
alike; one that cannot apply to a threat is skipped (`Check.threats`), rather than report a
number measured on something else.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field

from robustbench_lr.audit.battery import Battery, percent
from robustbench_lr.audit.indicators import (
    consistent_across_attacks,
    incomplete_optimization,
    silent_success,
    unstable_predictions,
)
from robustbench_lr.audit.verdict import TOLERANCE_PP, Flagged, Measured, graded
from robustbench_lr.registry import Registry

CHANCE_MARGIN_PP = 5.0  # accuracy at ε = 0.5 must reach chance + 5 pp
DEEPFOOL_PASS, DEEPFOOL_WARN = 99.0, 95.0  # success (%) of the unbounded DeepFool
ZERO_GRAD_WARN = 5.0  # share (%) of correct inputs with an exactly-zero gradient still a warn

CARLINI = "Carlini et al. 2019, On Evaluating Adversarial Robustness, §5"
ATHALYE = "Athalye et al. 2018, Obfuscated Gradients"
PINTOR = "Pintor et al. 2022, Indicators of Attack Failure (NeurIPS)"
# Why the path indicators skip outside L∞: only the signed-gradient loop records a path.
PATHLESS = (
    "it reads the attack's recorded path, which only the signed-gradient loop (L∞ IFSGM) "
    "records; the L2 battery's PGD-L2 is torchattacks' and records none"
)


@dataclass(frozen=True, kw_only=True)
class CheckResult(Measured):
    """One check's verdict as reported: what it measured, under its name and failure meaning."""

    name: str
    meaning: str


@dataclass(frozen=True)
class Check:
    """A check: its title (the claim it tests; `titles`: in another threat's words, by threat,
    as the L2 battery's attacks have other names), what a failure means, what it measures and
    its paper. `threats`: those it applies to (empty: all); under another it is skipped with
    `inapplicable`, the reason."""

    name: str
    title: str
    meaning: str
    measure: Callable[[Battery], Measured]
    transfer: bool = False  # reads the transfer run: its result rows name the source model
    source: str = ""
    titles: Mapping[str, str] = field(default_factory=dict)
    threats: tuple[str, ...] = ()
    inapplicable: str = ""

    def title_for(self, threat: str) -> str:
        return self.titles.get(threat, self.title)

    def run(self, battery: Battery) -> CheckResult:
        if self.threats and battery.threat not in self.threats:
            detail = f"does not apply to an {battery.threat} audit: {self.inapplicable}"
            found = Measured("skip", "", math.nan, "", math.nan, detail)
        else:
            found = self.measure(battery)
        return CheckResult(name=self.name, meaning=self.meaning, **asdict(found))


def _missing(b: Battery, labels: tuple[str, ...]) -> str:
    """Why a check cannot compare `labels` (a hand-built battery without some), or ""."""
    absent = [label for label in labels if label not in b.evaluations]
    return f"the battery ran no {', '.join(absent)}" if absent else ""


def not_above(stronger: str, weaker: str) -> Callable[[Battery], Measured]:
    """acc(stronger) ≤ acc(weaker) + tolerance: an attack that should win does (both parts)."""

    def measure(b: Battery) -> Measured:
        s, w = b.part(stronger), b.part(weaker)
        if missing := _missing(b, (s, w)):
            return Measured("skip", s, math.nan, w, math.nan, missing)
        a, wa = b.acc(s), b.acc(w)
        detail = f"{s} {a:.1f}% vs {w} {wa:.1f}% (allowed +{TOLERANCE_PP:g} pp)"
        return Measured(graded(a - wa), s, a, w, wa, detail)

    return measure


def beaten_by_gradients(part: str, absent: str = "") -> Callable[[Battery], Measured]:
    """Examples a weaker (gradient-free) attack, the run playing `part`, fools but no gradient
    attack does; skipped with `absent` (or "the battery ran no ...") where that run is not."""

    def measure(b: Battery) -> Measured:
        weaker = b.part(part)
        if weaker not in b.evaluations:
            detail = absent or _missing(b, (weaker,))
            return Measured("skip", "white-box", math.nan, weaker, math.nan, detail)
        white, other = b.whitebox, b.flags(weaker)
        found = Flagged.of(white & ~other)
        detail = (
            f"{found.count} of {len(white)} examples fooled by {weaker} but by no gradient "
            f"attack (allowed {TOLERANCE_PP:g}%)"
        )
        return found.measured(
            graded(found.share), "white-box", percent(white), weaker, b.acc(weaker), detail
        )

    return measure


def to_chance(b: Battery) -> Measured:
    """IFSGM at the top of the ε-sweep must bring accuracy to chance (+ a margin).

    Flagged: the correct inputs the unbounded attack leaves standing (Pintor et al. 2022's
    unconstrained-attack failure, per example); the verdict stays on accuracy vs chance.
    """
    iterative = b.part("steps-20")
    label = next((k for k in reversed(b.runs) if k.startswith("sweep-")), iterative)
    if missing := _missing(b, (label,)):
        return Measured("skip", label, math.nan, "chance", 100.0 / b.num_classes, missing)
    a, chance, eps = b.acc(label), 100.0 / b.num_classes, b.runs[label].params["eps"]
    excess = a - chance - CHANCE_MARGIN_PP
    status = "pass" if excess <= 0 else "warn" if excess <= CHANCE_MARGIN_PP else "fail"
    detail = (
        f"accuracy {a:.1f}% at eps {eps:.4g}; chance {chance:.1f}% "
        f"(+{CHANCE_MARGIN_PP:g} pp allowed)"
    )
    found = Flagged.of(b.clean & b.flags(label))
    return found.measured(status, f"{iterative} at eps={eps:.4g}", a, "chance", chance, detail)


def deepfool_success(b: Battery) -> Measured:
    """The unbounded DeepFool must misclassify (nearly) every correct input; flagged: those it
    does not (an unconstrained-attack failure per example)."""
    rate = b.evaluations["deepfool"].success
    rate = 0.0 if math.isnan(rate) else rate
    status = "pass" if rate >= DEEPFOOL_PASS else "warn" if rate >= DEEPFOOL_WARN else "fail"
    detail = f"DeepFool misclassifies {rate:.1f}% of correct inputs (needs {DEEPFOOL_PASS:g}%)"
    found = Flagged.of(b.clean & b.flags("deepfool"))
    return found.measured(status, "deepfool success", rate, "required", DEEPFOOL_PASS, detail)


def usable_gradients(b: Battery) -> Measured:
    """No non-finite input gradient; a few exactly-zero ones warn, many fail."""
    g = b.gradients
    failed = g.nonfinite or g.zero_share > ZERO_GRAD_WARN
    status = "fail" if failed else "warn" if g.zero else "pass"
    detail = (
        f"{g.zero} of {g.correct} correct inputs have an all-zero gradient, "
        f"{g.nonfinite} a non-finite one"
    )
    found = g.zero + g.nonfinite
    return Measured(
        status, "zero-gradient share", g.zero_share, "non-finite", float(g.nonfinite), detail, found
    )


def deterministic(b: Battery) -> Measured:
    """Repeated eval-mode forward passes must agree exactly."""
    diff = b.nondeterminism
    detail = f"repeated eval-mode forward passes differ by up to {diff:.3g}"
    return Measured("fail" if diff else "pass", "max |Δ output|", diff, "required", 0.0, detail)


def ordering(name: str, stronger: str, weaker: str, titles: tuple[str, str], meaning: str) -> Check:
    """One of Carlini et al.'s orderings (`not_above`): the part `stronger` does not leave more
    accuracy than `weaker`; `titles`: the claim in L∞ and in L2 words."""
    linf, l2 = titles
    measure = not_above(stronger, weaker)
    return Check(name, linf, meaning, measure, source=CARLINI, titles={"L2": l2})


CHECKS: Registry[Check] = Registry("audit check")
for _check in (
    ordering(
        "iterative-beats-single-step",
        "steps-20",
        "single-step",
        (
            "IFSGM (20 steps) accuracy ≤ FGSM accuracy",
            "PGD-L2 (20 steps) accuracy ≤ one-step PGD-L2 (fast gradient) accuracy",
        ),
        "a single step beats many: the loss surface is locally misleading (gradient masking by "
        "a non-smooth or saturated model) or the iterative attack is misconfigured",
    ),
    ordering(
        "more-steps-7-20",
        "steps-20",
        "steps-7",
        ("IFSGM 20 steps ≤ 7 steps + 1 pp", "PGD-L2 20 steps ≤ 7 steps + 1 pp"),
        "more iterations help the defender: the attack follows gradients that do not lead to "
        "the boundary (masking), or the step size is wrong",
    ),
    ordering(
        "more-steps-20-100",
        "steps-100",
        "steps-20",
        ("IFSGM 100 steps ≤ 20 steps + 1 pp", "PGD-L2 100 steps ≤ 20 steps + 1 pp"),
        "more iterations help the defender: the attack has not converged or oscillates on an "
        "obfuscated loss surface",
    ),
    ordering(
        "restarts",
        "restarts",
        "steps-20",
        (
            "IFSGM with random restarts ≤ without + 1 pp",
            "PGD-L2 with random restarts ≤ without + 1 pp",
        ),
        "random starts make the attack weaker: the gradient is only informative at the data "
        "points themselves (masking around the inputs) or the attack is broken",
    ),
    Check(
        "unbounded-to-chance",
        "IFSGM accuracy ≤ chance + 5 pp as eps grows to 0.5",
        "an attack with an unbounded budget must always succeed; if it does not, the gradients "
        "lead nowhere (masking) or the attack is buggy",
        to_chance,
        source=f"{CARLINI}; {PINTOR} (unconstrained attack failure)",
        titles={"L2": "PGD-L2 accuracy ≤ chance + 5 pp as eps grows to 0.5·√d (input size d)"},
    ),
    Check(
        "deepfool-succeeds",
        "DeepFool (unbounded L2) misclassifies ≥ 99% of correct inputs",
        "the linearized boundary search finds no boundary: zero, vanishing or misleading gradients",
        deepfool_success,
        source=f"{CARLINI}; {PINTOR} (unconstrained attack failure)",
    ),
    Check(
        "whitebox-beats-transfer",
        "no example fooled by transfer from N-LR but by no gradient attack",
        "examples crafted on another model fool this one where its own gradients cannot: "
        "obfuscated gradients (Athalye et al. 2018)",
        beaten_by_gradients("transfer", "no source model given (--source)"),
        transfer=True,
        source=f"{ATHALYE}; {PINTOR} (transfer failure)",
    ),
    Check(
        "whitebox-beats-square",
        "no example fooled by Square but by no gradient attack",
        "a gradient-free, score-based search beats every gradient attack: the gradients are "
        "masked, shattered or saturated",
        beaten_by_gradients("square"),
        titles={"L2": "no example fooled by Square (L2) but by no gradient attack"},
        source=CARLINI,
    ),
    Check(
        "whitebox-beats-noise",
        "no example fooled by random noise of the same L-inf size but by no gradient attack",
        "blind noise beats the gradient attacks: the gradients point nowhere useful",
        beaten_by_gradients("noise"),
        source=CARLINI,
        titles={
            "L2": "no example fooled by random noise of the same L2 size but by no gradient attack"
        },
    ),
    Check(
        "gradients-nonzero-finite",
        "input gradients are non-zero and finite on correct inputs",
        "a saturated softmax, non-differentiable layers or numerical overflow hide the "
        "gradient (shattered or vanishing gradients)",
        usable_gradients,
        source=ATHALYE,
    ),
    Check(
        "deterministic",
        "repeated eval-mode forward passes are identical",
        "the model is randomized at test time: single-run attacks under-estimate it; attack "
        "the expectation (EOT)",
        deterministic,
        source=f"{ATHALYE}, §4.2",
    ),
    Check(
        "silent-success",
        "no correct input fooled on an attack's path but not by the point it returns",
        "the attack found an adversarial example and returned another point: it reports its "
        "last iterate, not its best, and the robust accuracy counts its misses",
        silent_success,
        source=PINTOR,
        threats=("Linf",),
        inapplicable=PATHLESS,
    ),
    Check(
        "incomplete-optimization",
        "the longest IFSGM run's loss has stopped rising on the inputs it leaves standing",
        "the attack ran out of steps while still making progress: the budget is too small "
        "and more iterations would lower the robust accuracy",
        incomplete_optimization,
        source=PINTOR,
        threats=("Linf",),
        inapplicable=PATHLESS,
    ),
    Check(
        "unstable-predictions",
        "the loss of correct inputs barely moves under noise far inside the ball",
        "a shattered or stochastic loss surface (quantized inputs, randomness at test time): "
        "gradients are locally meaningless and attacks that follow them are misled",
        unstable_predictions,
        source=PINTOR,
    ),
    Check(
        "consistent-across-attacks",
        "no example DeepFool fools within eps is called robust by every attack at eps",
        "the bounded attacks miss adversarial examples a minimum-norm attack finds inside "
        "their own ball: the robust accuracy is over-estimated by exactly these examples",
        consistent_across_attacks,
        source=f"{CARLINI} (attacks must agree); {PINTOR}",
    ),
):
    CHECKS.add(_check.name, _check)
