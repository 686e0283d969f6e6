"""`attack`, `audit`, `analyze` and `shift` on a network in memory: the commands' functions.

`attack` is `attacks.run_attack` (the entry point every attack of the suite goes through) on
the caller's own batch; `audit`, `analyze` and `shift` load the seeded test subset the
commands draw and run on it the same `audit_target` / `ANALYSES` / `run_shifts` as
`robustbench-lr audit/analyze/shift`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from robustbench_lr import results
from robustbench_lr.analysis import ANALYSES, AnalysisOptions
from robustbench_lr.api import model as models
from robustbench_lr.api import validate
from robustbench_lr.api.training import checkpoint_folder
from robustbench_lr.attacks import (
    ATTACKS,
    DEFAULT_BATCH,
    crafting_in,
    rho,
    robust_flags,
    run_attack,
)
from robustbench_lr.attacks.precision import PRECISIONS
from robustbench_lr.audit.checkpoint import CheckpointAudit, audit_target
from robustbench_lr.audit.options import AuditOptions, default_eps
from robustbench_lr.audit.threats import THREATS as AUDIT_THREATS
from robustbench_lr.checkpoints import read_meta
from robustbench_lr.data import DEFAULT_DATA_ROOT, LoadOptions
from robustbench_lr.devices import use_device
from robustbench_lr.errors import InvalidArgument
from robustbench_lr.experiments.shift import ShiftSettings, run_shifts
from robustbench_lr.shifts import SHIFTS
from robustbench_lr.target import DEFAULT_N


@dataclass(frozen=True, eq=False)
class AttackResult:
    """Adversarial examples of one attack and what they did, per example (in input order)."""

    x_adv: torch.Tensor
    clean: torch.Tensor  # bool (N,): correct on the input
    robust: torch.Tensor  # bool (N,): still correct on x_adv (a strict float32 verdict)
    rho: torch.Tensor  # ‖x_adv − x‖₂ / ‖x‖₂ (Section 3)
    params: Mapping[str, Any]  # every hyper-parameter the attack ran with

    def __iter__(self):
        """`x_adv, robust = attack(...)`."""
        return iter((self.x_adv, self.robust))

    @property
    def acc(self) -> float:
        """Robust accuracy (%) on the batch."""
        return 100.0 * self.robust.float().mean().item()


def attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: str = "ifsgm",
    eps: float | None = 8 / 255,
    steps: int | None = None,
    *,
    backend: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    craft_precision: str | None = None,
    **params: Any,
) -> AttackResult:
    """Attack the batch `x` (images in [0, 1]) with labels `y` against `model`.

    `steps=None` and any parameter not given take the attack's defaults (`ATTACKS[name]`);
    `eps` is ignored by attacks without a budget (DeepFool, noise). Runs where the model's
    parameters are; the model is handed back in its own train/eval mode.
    """
    net = models.network(model)
    spec = ATTACKS[validate.attack_name(attack)]
    given = {"eps": eps, "steps": steps, **params}
    if "eps" not in spec.defaults:
        del given["eps"]  # the documented default of a keyword most attacks take
    given = {k: v for k, v in given.items() if v is not None}
    validate.options("attack options", given, list(spec.defaults))
    if backend is not None:
        validate.name_in("backend", backend, list(spec.backends))
    _, resolved = spec.resolve(backend, **given)  # every value checked before any work
    if craft_precision is not None:
        validate.name_in("craft_precision", craft_precision, PRECISIONS.names())
    validate.count("batch_size", batch_size)
    validate.inputs(x, y)
    with models.lent(net), crafting_in(craft_precision):
        device = use_device(validate.device(None, net))
        net.eval()
        out = validate.logits(_logits(net, x, device, batch_size), len(x), None)
        validate.inputs(x, y, out.shape[1])
        x_adv = run_attack(attack, net, x, y, backend=backend, batch_size=batch_size, **given)
        robust = robust_flags(net, x_adv, y)
    clean = out.argmax(1).cpu() == y.cpu()
    return AttackResult(x_adv, clean, robust, rho(x_adv.cpu(), x.cpu()), resolved)


def _logits(net: nn.Module, x: torch.Tensor, device: torch.device, batch: int) -> torch.Tensor:
    chunks = x.split(batch)
    try:
        with torch.no_grad():
            outs = [net(chunk.to(device)) for chunk in chunks]
    except Exception as err:  # the user's forward may raise anything on inputs it cannot take
        shown = f"{x.dtype} images of shape {tuple(x.shape[1:])}"
        raise InvalidArgument(
            "x", shown, "inputs the model takes", "are not taken by model"
        ) from err
    return torch.cat([validate.logits(o, len(c), None) for o, c in zip(outs, chunks, strict=True)])


def audit(
    model: nn.Module,
    dataset: str = "cifar10",
    eps: float | None = None,
    n: int = AuditOptions.n,
    *,
    seed: int = 0,
    device: str | torch.device | None = None,
    preprocessing: Any = None,
    name: str | None = None,
    data_root: str | Path = DEFAULT_DATA_ROOT,
    download: bool = False,
    threat: str = "Linf",
    **budgets: Any,
) -> CheckpointAudit:
    """`robustbench-lr audit` on a network in memory: its report, rows and audit.md text.

    `threat`: the ball the battery attacks in, "Linf" or "L2" (`robustbench-lr audit --norm`).
    `eps=None` audits at the dataset's own ε for that threat (`audit.default_eps`: L∞ digits
    32/255, else 8/255; L2 digits 0.289, else 0.5); `budgets` are `AuditOptions` fields
    (`steps`, `queries`, `targets`, `restarts`, ...).
    """
    net = models.network(model)
    dataset = validate.dataset_name(dataset)
    threat = validate.name_in("threat", threat, AUDIT_THREATS.names())
    validate.count("n", n)
    budgets = validate.audit_budgets("budgets", budgets, ("eps", "n", "seed", "threat", "results"))
    top = AUDIT_THREATS[threat].eps_max(budgets.get("sweep_max", AuditOptions.sweep_max))
    eps = default_eps(dataset, threat) if eps is None else validate.eps(eps, top)
    options = AuditOptions(eps=eps, n=n, seed=seed, threat=threat, **budgets)
    where = validate.device(device, net)
    load_options = LoadOptions(data_root=str(data_root), download=download)
    with models.lent(net):
        dev = use_device(where)
        target = models.target(net, dataset, preprocessing, name, n, seed, dev, load_options)
        return audit_target(target, replace(options, n=len(target.y)))


def analyze(
    kind: str,
    model: nn.Module | str | Path,
    dataset: str | None = None,
    *,
    tap: str | None = None,
    n: int | None = None,
    seed: int = 0,
    dims: tuple[int, ...] = (),
    device: str | torch.device | None = None,
    preprocessing: Any = None,
    name: str | None = None,
    data_root: str | Path = DEFAULT_DATA_ROOT,
    download: bool = False,
    out: str | Path | None = None,
    **options: Any,
) -> pd.DataFrame:
    """`robustbench-lr analyze KIND` on a network in memory or a checkpoint folder: its rows.

    An `nn.Module` needs `dataset`; a checkpoint (a folder, or what `train` returns) knows its
    own. `options` are the analysis' own settings (`--option KEY=VALUE`). Figures an analysis
    draws go beside `out` (the results CSV its rows are appended to), else nowhere.
    """
    validate.name_in("kind", kind, ANALYSES.names())
    ANALYSES[kind].check_options(options)
    validate.count("n", n, allow_none=True)
    validate.out(out)
    settings = {
        "tap": tap,
        "n": n,
        "seed": seed,
        "dims": tuple(dims),
        "load": LoadOptions(data_root=str(data_root), download=download),
        "extra": {key: str(value) for key, value in options.items()},
    }
    if isinstance(model, nn.Module):
        if dataset is None:
            raise InvalidArgument(
                "dataset",
                None,
                [*validate.DATASETS.names(), "npz:PATH"],
                "is needed for an nn.Module",
            )
        if ANALYSES[kind].suite_models_only:
            takes = [k for k in ANALYSES.names() if not ANALYSES[k].suite_models_only]
            raise InvalidArgument("kind", kind, takes, "needs a checkpoint of the suite (train())")
        dataset = validate.dataset_name(dataset)
        device_name = validate.device(device, model)
        with models.lent(model):
            dev = use_device(device_name)
            wrapped = models.checked(model, dataset, preprocessing, settings["load"], dev)
            return _analysis(
                kind, models.origin(wrapped, dataset, name), out, settings, device_name
            )
    folder = checkpoint_folder(model)
    _check_checkpoint_call(folder, dataset, preprocessing=preprocessing, name=name)
    device_name = "auto" if device is None else validate.device(device, nn.Module())
    return _analysis(kind, folder, out, settings, device_name)


def _check_checkpoint_call(folder: Path, dataset: str | None, **module_only: Any) -> None:
    """A checkpoint knows its dataset, normalization and name: a `dataset` other than its own
    is refused, and so is any argument that only describes an `nn.Module`."""
    own = read_meta(folder)["config"]["dataset"]
    if dataset is not None and dataset != own:
        raise InvalidArgument("dataset", dataset, [own], "is not the checkpoint's dataset")
    for argument, value in module_only.items():
        if value is not None:
            raise InvalidArgument(
                argument, value, "None", "describes an nn.Module, not a checkpoint"
            )


def shift(
    model: nn.Module,
    dataset: str = "cifar10",
    shifts: str | Sequence[str] | None = None,
    n: int = DEFAULT_N,
    *,
    seed: int = 0,
    device: str | torch.device | None = None,
    preprocessing: Any = None,
    name: str | None = None,
    data_root: str | Path = DEFAULT_DATA_ROOT,
    download: bool = False,
    out: str | Path | None = None,
) -> pd.DataFrame:
    """`robustbench-lr shift` on a network in memory: `acc` per shifted set and `clean_acc` rows.

    `shifts=None` scores every shift of `dataset` (`shifts.SHIFTS`); `n` images of each, drawn
    as the test subset is. A shift of another dataset is refused before any image is read: its
    labels would mean other classes. `out` appends the rows to a results CSV.
    """
    net = models.network(model)
    dataset = validate.dataset_name(dataset)
    own = [key for key, spec in SHIFTS.items() if spec.dataset == dataset]
    names = [shifts] if isinstance(shifts, str) else shifts
    if names is not None and not names:
        raise InvalidArgument("shifts", names, own or "none", "names no shift")
    for key in names or ():
        validate.name_in("shifts", key, list(SHIFTS))
        if key not in own:
            raise InvalidArgument("shifts", key, own or "none", f"does not test {dataset} models")
    if names is None and not own:
        raise InvalidArgument(
            "dataset",
            dataset,
            sorted({s.dataset for s in SHIFTS.values()}),
            "has no distribution shift",
        )
    validate.count("n", n)
    validate.out(out)
    where = validate.device(device, net)
    load_options = LoadOptions(data_root=str(data_root), download=download)
    with models.lent(net):
        dev = use_device(where)
        target = models.target(net, dataset, preprocessing, name, n, seed, dev, load_options)
        settings = ShiftSettings(names and tuple(names), str(data_root), download)
        outcome = run_shifts(target, settings)
    if out is not None:
        results.append(out, outcome.rows)
    return pd.DataFrame([results.make_row(**row) for row in outcome.rows], columns=results.COLUMNS)


def _analysis(
    kind: str, origin: Any, out: str | Path | None, settings: dict, device: str
) -> pd.DataFrame:
    """Load the target `ANALYSES[kind]` reads (its training split if it needs it), run the
    analysis, append its rows to `out` if given, return them as a frame."""
    options = AnalysisOptions(device=device, **settings)
    analysis = ANALYSES[kind]
    target = analysis.load(origin, options)
    with tempfile.TemporaryDirectory() as scratch:
        where = Path(out) if out is not None else Path(scratch) / "results.csv"
        outcome = analysis.run(target, replace(options, results=where))
        if out is not None:
            results.append(out, outcome.rows)
    return pd.DataFrame([results.make_row(**row) for row in outcome.rows], columns=results.COLUMNS)
