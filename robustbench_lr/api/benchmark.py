"""`benchmark(model, ...)`: RobustBench's call on any `nn.Module`, with the audit behind it.

The numbers come from the functions the commands call: the target is what `robustbench-lr
attack --model ... --n N --seed S` loads (`target.load_target` on an `external.ExternalTarget`),
the attack is `attacks.harness.evaluate_attack` with the CLI's defaults, the rows are
`evaluation_rows` and the audit's (`audit.checkpoint.audit_target` on the same target). So on
the CPU, for the same seed and points, the API and the command line give the same numbers bit
for bit (tests/test_api.py checks it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from robustbench_lr import results
from robustbench_lr.api import model as models
from robustbench_lr.api import validate
from robustbench_lr.api.result import BenchmarkResult
from robustbench_lr.attacks import ATTACKS, DEFAULT_BATCH
from robustbench_lr.attacks.harness import evaluate_attack, evaluation_rows
from robustbench_lr.audit.checkpoint import audit_target
from robustbench_lr.audit.options import AuditOptions
from robustbench_lr.data import DEFAULT_DATA_ROOT, LoadOptions
from robustbench_lr.devices import use_device
from robustbench_lr.errors import InvalidArgument
from robustbench_lr.experiments.attack import Sweep
from robustbench_lr.target import DEFAULT_N

DEFAULT_ATTACK = "autoattack-standard"  # the authors' AutoAttack, as RobustBench runs it
# AuditOptions fields the benchmark sets itself (the same ε, points, batches and L-inf threat
# as the attack), and `results` (where a bench job writes audit.md), which is no budget.
AUDIT_OWN = ("eps", "n", "seed", "batch_size", "threat", "results")


def benchmark(
    model: nn.Module,
    dataset: str = "cifar10",
    threat: str = "Linf",
    eps: float = 8 / 255,
    n: int | None = DEFAULT_N,
    *,
    device: str | torch.device | None = None,
    preprocessing: Any = None,
    seed: int = 0,
    attack: str = DEFAULT_ATTACK,
    attack_options: Mapping[str, Any] | None = None,
    audit: bool = True,
    audit_options: Mapping[str, Any] | None = None,
    batch_size: int = DEFAULT_BATCH,
    name: str | None = None,
    data_root: str | Path = DEFAULT_DATA_ROOT,
    download: bool = False,
    out: str | Path | None = None,
    progress: bool = True,
) -> BenchmarkResult:
    """Clean and robust accuracy of `model` on `n` test images of `dataset`, then its audit.

    `model` takes images in [0, 1] (N, C, H, W) and returns logits (N, classes); a model
    trained on normalized inputs passes `preprocessing='dataset'`, `(mean, std)` or a module
    applied first. The images are the seeded uniform subset `--n N --seed S` draws on the
    command line (`n=None`: the whole test split). `attack` (standard AutoAttack, the authors'
    `pyautoattack`, by default) gives the robust accuracy; `attack_options` lowers its budget
    (`steps`, `targets`, `queries`, `seed`). `audit=True` then runs the gradient-masking audit
    on the same images at the same ε (`audit_options`: `AuditOptions` budgets), whose
    worst case per example and verdict say whether the robust number can be trusted.
    `device=None` runs where the model's parameters are; the model is handed back there, in
    its own train/eval mode. `out` appends the rows to a results CSV (nothing on error).
    Every bad argument raises `InvalidArgument` before any work.
    """
    net = models.network(model)
    dataset = validate.dataset_name(dataset)
    validate.threat(threat)
    budgets = validate.audit_budgets("audit_options", audit_options, AUDIT_OWN) if audit else {}
    eps = validate.eps(
        eps, budgets.get("sweep_max", AuditOptions.sweep_max) if audit else validate.EPS_MAX
    )
    n = validate.count("n", n, allow_none=True)
    validate.count("batch_size", batch_size)
    validate.out(out)
    validate.attack_name(attack)
    spec = ATTACKS[attack]
    if spec.norm != "linf":
        kind = {"l2": "an L2", "none": "a random-noise"}.get(spec.norm, f"an {spec.norm}")
        problem = f"is {kind} attack, not an L-inf one"
        raise InvalidArgument("attack", attack, _linf_attacks(), problem)
    given = validate.options(
        "attack_options", attack_options, [k for k in spec.defaults if k != "eps"]
    )
    budget = _audit_options(budgets, eps, n, seed, batch_size) if audit else None
    where = validate.device(device, net)
    options = LoadOptions(data_root=str(data_root), download=download)
    stages = 2 + (budget is not None)
    with models.lent(net), tqdm(total=stages, desc="benchmark", disable=not progress) as bar:
        bar.set_postfix_str("loading")
        device = use_device(where)
        target = models.target(net, dataset, preprocessing, name, n, seed, device, options)
        bar.update()
        bar.set_postfix_str(attack)
        batch = (target.model, target.x, target.y)
        params = {"eps": eps, **given}
        ev = evaluate_attack(attack, *batch, draws=Sweep.draws, batch_size=batch_size, **params)
        rows = evaluation_rows(ev, target.columns, extra=target.subset_extra)
        bar.update()
        report, markdown = None, ""
        if budget is not None:
            bar.set_postfix_str("audit")
            audited = audit_target(target, replace(budget, n=len(target.y)))
            report, markdown = audited.report, audited.markdown
            rows += audited.rows
            bar.update()
    frame = pd.DataFrame([results.make_row(**row) for row in rows], columns=results.COLUMNS)
    if out is not None:
        results.append(out, rows)
    return BenchmarkResult(
        dataset, threat, eps, attack, ev.clean, ev.robust.all(0), frame, report, markdown
    )


def _audit_options(
    budgets: dict[str, Any], eps: float, n: int | None, seed: int, batch_size: int
) -> AuditOptions:
    """The audit's budgets (`AuditOptions`' defaults unless given) at the benchmark's ε,
    points and batches."""
    own = {"eps": eps, "n": n or AuditOptions.n, "seed": seed, "batch_size": batch_size}
    try:
        return AuditOptions(**own, **budgets)
    except ValueError as err:
        raise InvalidArgument("audit_options", budgets, "AuditOptions' ranges", str(err)) from err


def _linf_attacks() -> list[str]:
    return [name for name in ATTACKS if ATTACKS[name].norm == "linf"]
