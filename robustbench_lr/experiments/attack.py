"""Attack sweeps: adversarial / noise accuracy of a target, one row per number.

Experiments in the rows:
- `attack`: per setting (eps x steps, or noise p), metrics `acc`, `clean_acc`, `rho`,
  `rho_fooled`, `success`. An eps sweep gives Fig. 4a / 9's accuracy-vs-ρ curve (`acc` against
  `rho` of the same setting); Tables 1, 2 and 4 read `acc`.
- `step-curve` (`per_step`, ifsgm / ill): `acc_instant` and `acc_cumulative` after each step k
  (the `steps` column holds k), Fig. 11 / Appendix D.4.
- `clean` (`run_clean`): metric `clean_acc` on the whole subset, and `zoo-reported` rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from robustbench_lr import results
from robustbench_lr.attacks import ATTACKS, DEFAULT_BATCH, resolve
from robustbench_lr.attacks.harness import evaluate_attack, evaluation_rows, param_text
from robustbench_lr.attacks.search import STEP_RULES, step_accuracies
from robustbench_lr.attacks.verify import verify
from robustbench_lr.evaluation import accuracy
from robustbench_lr.experiments import Outcome, Rows
from robustbench_lr.target import Target

# Hyper-parameters a sweep can list (swept) or fix (one value for every setting).
LIST_PARAMS = ("eps", "steps", "p")
SCALAR_PARAMS = (
    "alpha",
    "sigma",
    "overshoot",
    "candidates",
    "queries",
    "targets",
    "restarts",
    "seed",
)
VERIFY_N = 64


@dataclass(frozen=True)
class Sweep:
    """One attack over a grid: `lists` are swept (eps, steps, p), `fixed` apply to every
    setting; parameters the attack does not take are ignored, missing ones get its defaults."""

    attack: str
    lists: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    backend: str | None = None
    # Noise is averaged over 5 draws unless a profile or --noise-draws says otherwise.
    draws: int = 5
    batch_size: int = DEFAULT_BATCH
    per_step: bool = False
    verify: bool = False

    def __post_init__(self) -> None:
        spec = ATTACKS.get(self.attack)  # an unknown name lists the valid ones
        for params in self.settings():  # and a value no attack can mean, before any loading
            spec.resolve(self.backend, **params)

    def settings(self) -> list[dict[str, Any]]:
        """Every hyper-parameter combination to run."""
        spec = ATTACKS.get(self.attack)
        fixed = {k: v for k, v in self.fixed.items() if k in spec.defaults and v is not None}
        swept = {
            key: list(self.lists.get(key) or spec.sweep.get(key, [spec.defaults[key]]))
            for key in LIST_PARAMS
            if key in spec.defaults
        }
        combos = itertools.product(*swept.values())
        return [{**fixed, **dict(zip(swept, combo, strict=True))} for combo in combos]


def check_verifiable(attacks: Sequence[str]) -> None:
    """`verify` needs a second implementation of every attack named."""
    unverifiable = [n for n in attacks if ATTACKS.get(n).verify is None]
    if unverifiable:
        checkable = [n for n in ATTACKS if ATTACKS[n].verify is not None]
        raise ValueError(
            f"--verify needs a second implementation, which {unverifiable} lack(s); "
            f"it works for: {', '.join(checkable)}"
        )


def run_setting(target: Target, sweep: Sweep, params: dict[str, Any]) -> Outcome:
    """One setting of `sweep` on `target`: its rows (and step curves with `per_step`)."""
    name, outcome = sweep.attack, Outcome()
    if sweep.verify:
        agreement = verify(name, target.crafter, target.x[:VERIFY_N], target.y[:VERIFY_N], **params)
        outcome.lines.append(f"verified: {agreement.describe()}")
    ev = evaluate_attack(
        name,
        target.model,
        target.x,
        target.y,
        source=target.source,
        backend=sweep.backend,
        draws=sweep.draws,  # only attacks averaged over draws use them (their entry says)
        batch_size=sweep.batch_size,
        **params,
    )
    shown = " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in ev.params.items()
    )
    outcome.lines.append(
        f"{name} [{ev.backend}, {ev.box}-box] {shown}: acc {ev.acc:.2f}% (clean {ev.clean_acc:.2f}%), "
        f"rho {ev.mean_rho:.4g}, n={ev.n}"
    )
    outcome.rows += evaluation_rows(
        ev, target.columns, source=target.source_path, extra=target.subset_extra
    )
    if sweep.per_step and name in STEP_RULES:
        outcome.rows += step_rows(target, name, ev.params)
    return outcome


def run_sweep(target: Target, sweep: Sweep) -> Outcome:
    """Every setting of `sweep` on `target`."""
    outcome = Outcome()
    for params in sweep.settings():
        outcome.add(run_setting(target, sweep, params))
    return outcome


@dataclass(frozen=True)
class StepCurve:
    """The step curves of one step-rule attack at one (eps, steps) setting."""

    attack: str
    eps: float
    steps: int


def run_step_curve(target: Target, curve: StepCurve) -> Outcome:
    """Only the step curves of `curve`, from one run of the signed-gradient loop: the bench's
    Fig. 11 job, which must not re-run the attack its IFSGM grid already scored at that
    setting."""
    name, eps, steps = curve.attack, curve.eps, curve.steps
    _backend, params = resolve(name, eps=eps, steps=steps)
    rows = step_rows(target, name, params)
    return Outcome(rows, [f"step curves {name} eps={eps:.4g} steps={steps}: {len(rows)} rows"])


@dataclass(frozen=True)
class Clean:
    """Clean accuracy on the target's test subset, scored in batches of `batch_size`."""

    batch_size: int = 512


def run_clean(target: Target, settings: Clean) -> Outcome:
    """What the bench records of a model it did not train: its clean accuracy (a `clean` row),
    and for a zoo model the zoo's reported accuracies (`zoo-reported` rows, when on disk)."""
    acc = accuracy(target.model, target.x, target.y, settings.batch_size)
    base = {**target.columns, "experiment": "clean", "attack": "clean"}
    rows = [{**base, "metric": "clean_acc", "value": acc, "n": len(target.y)}]
    zoo = {**target.columns, "experiment": results.ZOO_REPORTED, "attack": "robustbench"}
    reported = target.meta.get("zoo", {})
    rows += [
        {**zoo, "metric": m, "value": v}
        for m in results.ZOO_REPORTED_METRICS
        if (v := reported.get(m)) is not None
    ]
    return Outcome(rows, [f"{target.checkpoint}: clean {acc:.2f}%"])


def step_rows(target: Target, name: str, params: Mapping[str, Any]) -> Rows:
    """Instantaneous and cumulative accuracy after every step (Fig. 11)."""
    instant, cumulative = step_accuracies(
        target.crafter,
        target.x,
        target.y,
        attack=name,
        eps=params["eps"],
        alpha=params["alpha"],
        steps=params["steps"],
        judge=target.judge,
    )
    base = {
        **target.columns,
        "experiment": "step-curve",
        "attack": name,
        "box": target.box,
        "source": target.source_path,
        "backend": "ours",
        "eps": params["eps"],
        "alpha": params["alpha"],
        "param": param_text({}, target.subset_extra),
        "n": len(target.y),
    }
    return [
        {**base, "steps": k, "metric": metric, "value": values[k].item()}
        for k in range(len(instant))
        for metric, values in (("acc_instant", instant), ("acc_cumulative", cumulative))
    ]
