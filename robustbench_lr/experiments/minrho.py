"""Minimum-perturbation searches: the smallest budget for > 99 % misclassification (Tables 3, 10).

Each search is an entry of `attacks.search.SEARCHES` (IFSGM and ILL bisect ε over their
early-stopped update, DeepFool finds its own minimum); this turns what they find into rows:
- `minrho`: metrics `eps` (the smallest grid ε with more than `rate` misclassified, Table 10;
  step-rule searches), `rho` and `rho_fooled` (Table 3), `misclassified` (%), with
  `per_sample` also `median_eps`. The settings sit in `alpha`, `steps` (= max_steps) and
  `param` (tol, eps_max, rate).
- `minrho-bisection`: `misclassified` (%) at every ε the bisection evaluated (`eps` column).
- `minrho-curve` (`per_sample`): `acc` (%) at every grid ε, from each sample's minimal ε.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from robustbench_lr.attacks.harness import setting_fields
from robustbench_lr.attacks.search import SEARCHES, SearchSettings
from robustbench_lr.experiments import Outcome
from robustbench_lr.target import Target


@dataclass(frozen=True)
class MinRho:
    """Which searches to run (`SEARCHES` names) and their settings."""

    attacks: Sequence[str] = tuple(SEARCHES.names())
    settings: SearchSettings = field(default_factory=SearchSettings)

    def __post_init__(self) -> None:
        for name in self.attacks:
            SEARCHES.get(name)  # an unknown one lists the valid choices


def run_search(target: Target, plan: MinRho) -> Outcome:
    """Every search of `plan` on `target`, white-box or crafted on its source."""
    outcome = Outcome()
    for name in plan.attacks:
        found = SEARCHES.get(name).find(
            target.model, target.x, target.y, plan.settings, target.source
        )
        base = {
            **target.columns,
            "experiment": "minrho",
            "attack": name,
            "box": target.box,
            "source": target.source_path,
            "backend": found.backend,
            "n": len(target.y),
            **setting_fields(found.params, target.subset_extra),
        }
        bisection = {**base, "experiment": "minrho-bisection", "metric": "misclassified"}
        curve = {**base, "experiment": "minrho-curve", "metric": "acc"}
        outcome.rows += [{**bisection, "eps": e, "value": v} for e, v in found.bisection]
        outcome.rows += [{**curve, "eps": e, "value": v} for e, v in found.curve]
        outcome.rows += [{**base, "metric": m, "value": v} for m, v in found.metrics.items()]
        shown = ", ".join(f"{m} {v:.4g}" for m, v in found.metrics.items())
        outcome.lines.append(f"minrho {name} [{found.backend}, {target.box}-box]: {shown}")
    return outcome
