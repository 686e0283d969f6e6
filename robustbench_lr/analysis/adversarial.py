"""Adversarial examples for the analyses that need them (Table 6, Fig. 4b).

The analyses take their attacks from `--option` pairs, so one vocabulary serves all of them:
`attacks=deepfool,ill,ifsgm` (registry names), `eps=2/255,8/255` (for attacks with a budget;
every ε gives one run), `steps=20` (iterations, where the attack has them), and
`source=CHECKPOINT` for black-box runs: the examples are crafted on that model (the paper's
N-LR of the same dataset and architecture) and evaluated on the analysed one.
`stop_on=CHECKPOINT` is Table 6's N-LR protocol (D.5, see `matched_examples`): crafted with the
analysed model's gradients, each example iterated until it fools that other model.
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


def _same_data_model(path: Path, model: nn.Module, meta: dict[str, Any], role: str) -> nn.Module:
    """The checkpoint at `path`, which must be trained on the analysed model's dataset."""
    from robustbench_lr.checkpoints import load_model

    other, other_meta = load_model(path, next(model.parameters()).device)
    if other_meta["config"]["dataset"] != meta["config"]["dataset"]:
        raise ValueError(
            f"{role} {path} was trained on {other_meta['config']['dataset']!r}, but the "
            f"analysed model on {meta['config']['dataset']!r}; both must see the same data"
        )
    return other


def attack_source(model: nn.Module, meta: dict[str, Any], options: AnalysisOptions) -> AttackSource:
    """White-box on `model`, or black-box from the checkpoint named by `--option source=DIR`.

    The source must be trained on the same dataset, or its examples mean nothing to the target.
    """
    if "source" not in options.extra:
        return AttackSource(model, "white", "")
    path = Path(options.extra["source"])
    return AttackSource(_same_data_model(path, model, meta, "source"), "black", str(path))


# Box label of Table 6's N-LR protocol rows (D.5): the analysed model's gradients, another
# model's success criterion.
MATCHED_BOX = "matched"


def stop_model(
    model: nn.Module, meta: dict[str, Any], options: AnalysisOptions
) -> tuple[nn.Module, str] | None:
    """The model named by `--option stop_on=DIR` (Table 6's N-LR protocol), or None."""
    if "stop_on" not in options.extra:
        return None
    if "source" in options.extra:
        raise ValueError("--option stop_on= and --option source= cannot be combined")
    path = Path(options.extra["stop_on"])
    return _same_data_model(path, model, meta, "stop_on model"), str(path)


def matched_examples(
    run: AttackRun, model: nn.Module, judge: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Table 6's N-LR examples (D.5): "obtaining the gradient using ResNet18-N-LR but stopping
    the iteration only when the adversarial example could fool ResNet18-1-LR", so the N-LR
    hybrid faces as much noise as the 1-LR one.

    IFSGM and ILL take the update of Eq. 5/6 on `model` with per-sample early stopping judged
    by `judge` (the min-ρ search's loop, within the run's ε, α and steps). DeepFool has no
    iteration past `model`'s own boundary (its next step would walk back), so its perturbation
    r is extended along its direction, x + s·r with s = 1.05^k up to 20, until `judge` is
    fooled: the smallest such s per sample. Samples the judge never gets wrong end at the last
    iterate (callers count only the fooled ones).
    """
    from robustbench_lr.attacks.search import STEP_RULES, attack_until_fooled

    if run.name == "deepfool":
        return extend_until_fooled(judge, x, run.craft(model, x, y), y)
    if run.name not in STEP_RULES:
        raise ValueError(
            f"the stop_on protocol supports deepfool, {', '.join(STEP_RULES.names())}; "
            f"not {run.name!r}"
        )
    x_adv, _ = attack_until_fooled(
        model,
        x,
        y,
        attack=run.name,
        eps=float(run.params["eps"]),
        alpha=float(run.params["alpha"]),
        max_steps=int(run.params["steps"]),
        judge=judge,
    )
    return x_adv


# Scales DeepFool's perturbation is tried at under the matched protocol: 1, 1.05, ..., ~20.
EXTEND_SCALES = tuple(1.05**k for k in range(62))


def extend_until_fooled(
    judge: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Per sample, `clip(x + s·(x_adv − x), 0, 1)` at the smallest s in EXTEND_SCALES that
    `judge` misclassifies (the largest s where none does). Batched over samples; one forward
    pass of the batch per scale."""
    from robustbench_lr.attacks.base import model_device
    from robustbench_lr.evaluation import predict

    x, y = x.to(x_adv.device), y.to(x_adv.device)
    r = x_adv - x
    out = (x + EXTEND_SCALES[-1] * r).clamp(0, 1)
    standing = torch.arange(len(x), device=x.device)  # samples the judge still gets right
    for scale in EXTEND_SCALES:
        candidate = (x[standing] + scale * r[standing]).clamp(0, 1)
        fooled = (predict(judge, candidate) != y[standing].to(model_device(judge))).to(x.device)
        out[standing[fooled]] = candidate[fooled]
        standing = standing[~fooled]
        if len(standing) == 0:
            break
    return out
