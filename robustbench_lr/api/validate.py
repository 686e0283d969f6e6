"""Argument checks of the public calls: each bad value becomes one `InvalidArgument`.

Every check runs before anything is loaded, attacked or written, so a typo costs no minutes of
AutoAttack and leaves no file behind. Names are looked up in the registries the CLI uses, so
the API and the command line accept the same names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import nn

from robustbench_lr import results
from robustbench_lr.attacks import ATTACKS
from robustbench_lr.audit.options import AuditOptions
from robustbench_lr.data import DATASETS, DatasetSpec
from robustbench_lr.devices import model_device
from robustbench_lr.errors import InvalidArgument
from robustbench_lr.settings import Count, Positive, accepted, adapter

THREATS = ("Linf",)  # every attack of the suite's robust accuracy is an L-inf attack
EPS_MAX = 1.0  # an L-inf ball of radius 1 around any image in [0, 1] holds every image
DEVICES = ("auto", "cpu", "cuda")


def name_in(argument: str, value: Any, names: list[str]) -> str:
    """`value` if it is one of `names`, else InvalidArgument listing them (did you mean ...)."""
    if not isinstance(value, str) or value not in names:
        raise InvalidArgument(argument, value, names, "is not a known name")
    return value


def dataset_name(value: Any) -> str:
    """A registered dataset or `npz:PATH` to an existing file."""
    if isinstance(value, str) and value.startswith("npz:"):
        if not Path(value[len("npz:") :]).is_file():
            raise InvalidArgument("dataset", value, "an existing file after npz:", "names no file")
        return value
    return name_in("dataset", value, [*DATASETS.names(), "npz:PATH"])


def attack_name(value: Any) -> str:
    return name_in("attack", value, ATTACKS.names())


def threat(value: Any) -> str:
    return name_in("threat", value, list(THREATS))


def eps(value: Any, top: float = EPS_MAX, argument: str = "eps") -> float:
    """A finite L-inf budget in (0, top]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgument(
            argument, value, f"a number in (0, {top:g}], e.g. 8/255", "is not a number"
        )
    if not (math.isfinite(value) and 0 < value <= top):
        raise InvalidArgument(argument, value, f"a number in (0, {top:g}]", "is out of range")
    return float(value)


def count(argument: str, value: Any, allow_none: bool = False) -> int | None:
    """A positive integer (or None where None means "all")."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgument(argument, value, "an integer >= 1", "is not a positive integer")
    return value


def options(argument: str, given: Mapping[str, Any] | None, valid: list[str]) -> dict[str, Any]:
    """Keyword options of an attack or the audit: only names it takes."""
    given = dict(given or {})
    for key in given:
        if key not in valid:
            raise InvalidArgument(f"{argument}[{key!r}]", key, valid, "is not an option")
    return given


# The audit's fields a caller may set that declare no kind of their own (the declared ones are
# its budget, `audit.options.BUDGET`).
_AUDIT_UNDECLARED = {"sweep_max": Positive, "batch_size": Count}


def setting(argument: str, kind: Any, value: Any) -> Any:
    """`value` as a setting of type `kind` (one of `settings`' types, which the command line
    and the profiles check the same setting with), or InvalidArgument saying what it takes."""
    if kind is Count:
        return count(argument, value)
    try:
        return adapter(kind).validate_python(value)
    except ValidationError:
        raise InvalidArgument(argument, value, accepted(kind)) from None


def audit_budgets(argument: str, given: Mapping[str, Any] | None, own: tuple[str, ...]) -> dict:
    """`AuditOptions` fields other than `own` (what the call sets itself), each checked by the
    type its declaration gives it: the same values `robustbench-lr audit` accepts."""
    valid = [name for name in AuditOptions.__dataclass_fields__ if name not in own]
    budgets = options(argument, given, valid)
    for key, value in budgets.items():
        declared = AuditOptions.__dataclass_fields__[key].metadata.get("kind")
        budgets[key] = setting(f"{argument}[{key!r}]", declared or _AUDIT_UNDECLARED[key], value)
    return budgets


def out(value: Any) -> None:
    """A results file rows can be appended to (an existing one is read now): refused before the
    work rather than after it, which a folder or a foreign CSV would otherwise cost."""
    if value is None:
        return
    if not isinstance(value, (str, Path)):
        raise InvalidArgument("out", value, "a path to a results CSV", "is not a path")
    try:
        results.check_appendable(value)
    except (ValueError, OSError) as err:
        raise InvalidArgument("out", str(value), "a results CSV or a new file", str(err)) from err


def device(value: Any, model: nn.Module) -> str:
    """`auto`, `cpu` or `cuda` (what `devices.use_device` takes); None: where `model` lives."""
    if value is None:
        return model_device(model).type
    kind = value.type if isinstance(value, torch.device) else value
    if kind not in DEVICES:
        raise InvalidArgument("device", value, [*DEVICES, "a torch.device"], "is not a device")
    if kind == "cuda" and not torch.cuda.is_available():
        raise InvalidArgument(
            "device", value, "cpu or auto here", "names no device: torch sees no CUDA"
        )
    return kind


def inputs(x: Any, y: Any, num_classes: int | None = None) -> None:
    """Images float in [0, 1] of shape (N, C, H, W) and N integer labels in [0, classes)."""
    if not torch.is_tensor(x) or not x.is_floating_point() or x.dim() != 4 or not len(x):
        shown = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        valid = "a float tensor of shape (N, C, H, W), N >= 1"
        raise InvalidArgument("x", shown, valid, "is not images")
    if not bool(torch.isfinite(x).all()) or x.min() < 0 or x.max() > 1:
        span = f"values in [{x.min().item():.4g}, {x.max().item():.4g}]"
        raise InvalidArgument(
            "x", span, "images in [0, 1] (normalization belongs in the model)", "is outside [0, 1]"
        )
    if (
        not torch.is_tensor(y)
        or y.dtype not in (torch.int64, torch.int32)
        or y.shape != x.shape[:1]
    ):
        shown = (y.dtype, tuple(y.shape)) if torch.is_tensor(y) else type(y).__name__
        raise InvalidArgument(
            "y", shown, f"an integer tensor of shape ({len(x)},)", "does not fit x"
        )
    if num_classes is not None and len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise InvalidArgument(
            "y",
            f"labels in [{y.min().item()}, {y.max().item()}]",
            f"labels in [0, {num_classes - 1}]",
            "holds unknown classes",
        )


def logits(out: Any, n: int, spec: DatasetSpec | None, dataset: str = "") -> torch.Tensor:
    """The model's output for n inputs: finite logits of shape (n, the dataset's classes)."""
    if not torch.is_tensor(out) or out.dim() != 2 or out.shape[0] != n:
        shown = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
        raise InvalidArgument(
            "model",
            f"output {shown} for {n} inputs",
            "logits of shape (N, classes)",
            "returns no (N, classes) logits",
        )
    if spec is not None and out.shape[1] != spec.num_classes:
        raise InvalidArgument(
            "model",
            f"{out.shape[1]} classes",
            f"{spec.num_classes} logits, one per class of {dataset}",
            "does not match the dataset",
        )
    bad = int((~torch.isfinite(out)).any(1).sum())
    if bad:
        raise InvalidArgument(
            "model",
            f"non-finite logits on {bad} of {n} inputs",
            "finite logits for every input",
            "returns NaN or infinity",
        )
    return out


def forward(model: nn.Module, x: torch.Tensor, spec: DatasetSpec, dataset: str) -> torch.Tensor:
    """The model's checked logits for `x` (eval mode, no gradients)."""
    try:
        with torch.no_grad():
            out = model(x)
    except Exception as err:  # the user's forward may raise anything on another input size
        shape = tuple(x.shape[1:])
        raise InvalidArgument(
            "model",
            type(model).__name__,
            f"a network taking {dataset} images of shape {shape}",
            f"raised {type(err).__name__} on them",
        ) from err
    return logits(out, len(x), spec, dataset)
