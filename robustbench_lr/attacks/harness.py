"""Run one attack on one evaluation set and turn the outcome into result rows.

The function the `attack` command, the bench and the audit share: white-box or black-box
(crafted on `source`, scored on the target, Section 3), averaged over draws for random noise,
with per-sample outcomes kept for worst cases per example (AutoAttack-style). Outcomes are
`robust_flags` (strict float32); a setting crafted in another precision says so in its rows
(`craft=bf16` in `param`): it may be a weaker attack, and must not pass for a float32 one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from robustbench_lr.attacks import DEFAULT_BATCH, run_attack
from robustbench_lr.attacks.base import ATTACKS, derive_seed, rho, robust_flags
from robustbench_lr.attacks.l2 import threat_of
from robustbench_lr.attacks.precision import craft_precision
from robustbench_lr.devices import model_device

# Hyper-parameters that have their own results column (`p`: the noise probability of Table 4);
# every other one goes into `param`.
COLUMN_PARAMS = ("eps", "steps", "alpha", "p")


@dataclass(frozen=True)
class Evaluation:
    """Per-sample outcome of one attack setting on one target.

    `robust[d, i]`: the target classifies draw d's adversarial version of sample i correctly;
    `rho[d, i]`: its ρ. Deterministic attacks have one draw.
    """

    attack: str
    backend: str
    params: Mapping[str, Any]
    box: str
    clean: torch.Tensor
    robust: torch.Tensor
    rho: torch.Tensor
    record: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of evaluated samples (the results' `n` column)."""
        return int(self.clean.numel())

    @property
    def acc(self) -> float:
        """Adversarial accuracy in percent, averaged over draws (Tables 1, 2, 4)."""
        return 100.0 * self.robust.float().mean().item()

    @property
    def clean_acc(self) -> float:
        """The target's accuracy (%) on the unperturbed subset: the baseline of every attack row."""
        return 100.0 * self.clean.float().mean().item()

    @property
    def mean_rho(self) -> float:
        """ρ = E[‖x_a − x‖₂/‖x‖₂] over the subset (Fig. 4a's x-axis)."""
        return self.rho.mean().item()

    @property
    def turned(self) -> torch.Tensor:
        """(draws, N) bool: correct on the clean input, wrong on the adversarial one."""
        return self.clean[None, :] & ~self.robust

    @property
    def rho_fooled(self) -> float:
        """Mean ρ over the samples the attack turned wrong (NaN if none)."""
        return self.rho[self.turned].mean().item() if self.turned.any() else math.nan

    @property
    def success(self) -> float:
        """Share (%) of clean-correct samples the attack turned wrong (NaN if none were correct)."""
        correct = int(self.clean.sum()) * self.robust.shape[0]
        return 100.0 * int(self.turned.sum()) / correct if correct else math.nan


def evaluate_attack(
    name: str,
    target: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    source: nn.Module | None = None,
    backend: str | None = None,
    draws: int = 1,
    batch_size: int = DEFAULT_BATCH,
    **params: Any,
) -> Evaluation:
    """Attack `x` (crafted on `source` if given: black-box transfer) and score it on `target`.

    Attacks averaged over draws (`AttackSpec.averaged_over_draws`: random noise) run `draws`
    times with seeds derived from their `seed`; every other attack once, whatever `draws` says.
    """
    spec = ATTACKS.get(name)
    backend, resolved = spec.resolve(backend, **params)
    draws = draws if spec.averaged_over_draws else 1
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws}")
    crafter = source if source is not None else target
    robust, rhos = [], []
    for draw in range(draws):
        run_params = dict(resolved)
        if spec.randomized:
            run_params["seed"] = derive_seed(resolved["seed"], draw)
        x_adv = run_attack(
            name, crafter, x, y, backend=backend, batch_size=batch_size, **run_params
        )
        robust.append(robust_flags(target, x_adv, y))
        rhos.append(rho(x_adv.cpu(), x.cpu()))
    precision = craft_precision(model_device(crafter))
    record = {
        **spec.record,
        **({"draws": draws} if spec.randomized else {}),
        **({} if precision.exact else {"craft": precision.name}),
    }
    return Evaluation(
        name,
        backend,
        resolved,
        "white" if source is None else "black",
        robust_flags(target, x, y),
        torch.stack(robust),
        torch.stack(rhos),
        record,
    )


def param_text(params: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> str:
    """`k=v;k=v` of every hyper-parameter without its own column, sorted by name; floats to 6
    significant digits (the same bytes on every run)."""
    merged = {k: v for k, v in params.items() if k not in COLUMN_PARAMS}
    merged.update(extra or {})
    text = {k: f"{v:.6g}" if isinstance(v, float) else str(v) for k, v in merged.items()}
    return ";".join(f"{k}={text[k]}" for k in sorted(text))


def setting_fields(
    params: Mapping[str, Any], extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The eps/steps/alpha/p columns and the `param` text of one attack setting."""
    columns = {k: params[k] for k in COLUMN_PARAMS if k in params}
    return {**columns, "param": param_text(params, extra)}


def evaluation_rows(
    ev: Evaluation,
    model_columns: Mapping[str, Any],
    *,
    source: str = "",
    experiment: str = "attack",
    extra: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Result rows of one evaluation: acc, clean_acc, rho, rho_fooled, success (all per SPEC §3).

    `model_columns` is `results.model_fields(meta, checkpoint)` of the target; `extra` adds
    facts to `param` (e.g. a non-default subset seed).
    """
    base = {
        **model_columns,
        "experiment": experiment,
        "attack": ev.attack,
        "box": ev.box,
        "source": source,
        "backend": ev.backend,
        "n": ev.n,
        "threat": threat_of(ev.attack),
        **setting_fields(ev.params, {**ev.record, **(extra or {})}),
    }
    metrics = {
        "acc": ev.acc,
        "clean_acc": ev.clean_acc,
        "rho": ev.mean_rho,
        "rho_fooled": ev.rho_fooled,
        "success": ev.success,
    }
    return [{**base, "metric": metric, "value": value} for metric, value in metrics.items()]
