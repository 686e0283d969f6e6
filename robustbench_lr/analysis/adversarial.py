"""Adversarial examples for the analyses that need them (Table 6, Fig. 4b).

The analyses take their attacks from `--option` pairs, so one vocabulary serves all of them:
`attacks=deepfool,ill,ifsgm` (registry names), `eps=2/255,8/255` (for attacks with a budget;
every ε gives one run), `steps=20` (iterations, where the attack has them), and
`source=CHECKPOINT` for black-box runs: the examples are crafted on that model (the paper's
N-LR of the same dataset and architecture) and evaluated on the analysed one.
`stop_on=CHECKPOINT` is Table 6's N-LR protocol (D.5, see `matched_examples`): crafted with the
analysed model's gradients, each example iterated until it fools that other model.

Those two models are the only ones an analysis loads itself (named by its own options), through
`target.load_companion`, the loader of every second model with its same-data check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustbench_lr.analysis.base import AnalysisOptions, OptionParser, listed, number
from robustbench_lr.attacks import ATTACKS, resolve, run_attack
from robustbench_lr.attacks.search import SEARCHES
from robustbench_lr.config import parse_fraction
from robustbench_lr.settings import Budget, Count, accepted
from robustbench_lr.target import Target, load_companion


@dataclass(frozen=True)
class AttackRun:
    """One attack with its complete, resolved hyper-parameters (what the rows record)."""

    name: str
    backend: str
    params: dict[str, Any]

    def fields(self) -> dict[str, Any]:
        """The attack columns of a results row."""
        return {
            "attack": self.name,
            "backend": self.backend,
            "eps": float(self.params.get("eps", 0.0)),
            "steps": int(self.params.get("steps", 0)),
            "alpha": float(self.params.get("alpha", 0.0) or 0.0),
        }

    def craft(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Adversarial examples of `x` against `model` through the attack harness."""
        return run_attack(self.name, model, x, y, backend=self.backend, **self.params)


# The `--option`s `attack_runs` and `attack_source` read, for the analyses that craft examples.
ATTACK_OPTIONS: dict[str, OptionParser] = {
    "attacks": listed(ATTACKS.get, f"an attack name ({', '.join(ATTACKS.names())})"),
    "eps": listed(number(Budget), accepted(Budget)),
    "steps": number(Count),
    "source": str,
}


def attack_runs(
    options: AnalysisOptions, default_attacks: str, default_eps: str
) -> list[AttackRun]:
    """The runs the options ask for: each attack once, or once per ε if it takes a budget."""
    names = [
        a.strip() for a in options.get("attacks", str, default_attacks).split(",") if a.strip()
    ]
    budgets = [
        parse_fraction(e) for e in options.get("eps", str, default_eps).split(",") if e.strip()
    ]
    steps = options.get("steps", int, None)
    runs = []
    for name in names:
        spec = ATTACKS.get(name)
        given = {"steps": steps} if steps is not None and "steps" in spec.defaults else {}
        for eps in budgets if "eps" in spec.defaults else [None]:
            budget = {} if eps is None else {"eps": eps}
            runs.append(AttackRun(name, *resolve(name, **given, **budget)))
    return runs


# Box label of Table 6's N-LR protocol rows (D.5): the analysed model's gradients, another
# model's success criterion.
MATCHED_BOX = "matched"


@dataclass(frozen=True)
class AttackSource:
    """The model the examples are crafted on: the analysed one (white-box) or `source=`; under
    Table 6's N-LR protocol, `judge` is the `stop_on=` model whose errors end each search."""

    model: nn.Module
    box: str
    source: str
    judge: nn.Module | None = None

    def fields(self) -> dict[str, str]:
        """The box and source columns of a results row."""
        return {"box": self.box, "source": self.source}


def attack_source(target: Target, options: AnalysisOptions, matched: bool = False) -> AttackSource:
    """White-box on the target's model, or black-box from the checkpoint named by
    `--option source=DIR` (trained on the same dataset, or its examples mean nothing here).
    With `matched`, `--option stop_on=DIR` names a judge (Table 6's N-LR protocol), trained on
    the target's data like a source."""
    if matched and "stop_on" in options.extra:
        if "source" in options.extra:
            raise ValueError("--option stop_on= and --option source= cannot be combined")
        path = Path(options.extra["stop_on"])
        judge = load_companion(path, target, "stop_on model")
        return AttackSource(target.model, MATCHED_BOX, str(path), judge)
    if "source" not in options.extra:
        return AttackSource(target.model, "white", "")
    path = Path(options.extra["source"])
    return AttackSource(load_companion(path, target, "source"), "black", str(path))


def matched_examples(
    run: AttackRun, model: nn.Module, judge: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Table 6's N-LR examples (D.5): "obtaining the gradient using ResNet18-N-LR but stopping
    the iteration only when the adversarial example could fool ResNet18-1-LR". Each search of
    `attacks.search.SEARCHES` knows its own version; samples the judge never gets wrong end at
    the last iterate (callers count only the fooled ones).
    """
    if run.name not in SEARCHES:
        raise ValueError(
            f"the stop_on protocol supports {', '.join(SEARCHES.names())}; not {run.name!r}"
        )
    return SEARCHES.get(run.name).matched(model, judge, x, y, run.backend, run.params)
