"""Adversarial examples for the analyses that need them (Table 6, Fig. 4b).

The analyses take their attacks from `--option` pairs, so one vocabulary serves all of them:
`attacks=deepfool,ill,ifsgm` (registry names), `eps=2/255,8/255` (for attacks with a budget;
every ε gives one run), `steps=20` (iterations, where the attack has them), and
`source=CHECKPOINT` for black-box runs: the examples are crafted on that model (the paper's
N-LR of the same dataset and architecture) and evaluated on the analysed one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustbench_lr.analysis.base import AnalysisOptions
from robustbench_lr.config import parse_fraction


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
        from robustbench_lr.attacks import run_attack

        return run_attack(self.name, model, x, y, backend=self.backend, **self.params)


def attack_runs(
    options: AnalysisOptions, default_attacks: str, default_eps: str
) -> list[AttackRun]:
    """The runs the options ask for: each attack once, or once per ε if it takes a budget.

    Unknown attack names fail with the registry's list of valid choices.
    """
    from robustbench_lr.attacks import ATTACKS, resolve

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
        given: dict[str, Any] = {}
        if steps is not None and "steps" in spec.defaults:
            given["steps"] = steps
        for eps in budgets if "eps" in spec.defaults else [None]:
            if eps is not None:
                given["eps"] = eps
            backend, params = resolve(name, **given)
            runs.append(AttackRun(name, backend, params))
    return runs


@dataclass(frozen=True)
class AttackSource:
    """The model the examples are crafted on: the analysed one (white-box) or `source=`."""

    model: nn.Module
    box: str
    source: str

    def fields(self) -> dict[str, str]:
        """The box and source columns of a results row."""
        return {"box": self.box, "source": self.source}


def attack_source(model: nn.Module, meta: dict[str, Any], options: AnalysisOptions) -> AttackSource:
    """White-box on `model`, or black-box from the checkpoint named by `--option source=DIR`.

    The source must be trained on the same dataset, or its examples mean nothing to the target.
    """
    if "source" not in options.extra:
        return AttackSource(model, "white", "")
    from robustbench_lr.checkpoints import load_model

    path = Path(options.extra["source"])
    device = next(model.parameters()).device
    source_model, source_meta = load_model(path, device)
    if source_meta["config"]["dataset"] != meta["config"]["dataset"]:
        raise ValueError(
            f"source {path} was trained on {source_meta['config']['dataset']!r}, "
            f"but the analysed model on {meta['config']['dataset']!r}; black-box needs the same data"
        )
    return AttackSource(source_model, "black", str(path))
