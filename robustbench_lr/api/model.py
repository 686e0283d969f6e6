"""A user's in-memory network as the suite's model under test, and back unchanged.

The commands evaluate an external model through `external.ExternalTarget` (a factory plus a
weights file): the same `target.Target`, subset, rows and checks as a trained checkpoint. A
network in a notebook becomes that same object here, without a file, so `benchmark()` and
`robustbench-lr attack --model ...` run one code path and agree bit for bit on the CPU.

The caller keeps their model: it is lent for the call (`lent`) and handed back on its device
and in each submodule's own train/eval mode.
"""

from __future__ import annotations

import re
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from robustbench_lr.api import validate
from robustbench_lr.data import DatasetSpec, LoadOptions, load
from robustbench_lr.errors import InvalidArgument
from robustbench_lr.external import (
    ExternalTarget,
    ExternalTargetSpec,
    TappedModel,
    check_name,
    weights_digest,
)
from robustbench_lr.models.base import Normalize
from robustbench_lr.target import Target, load_target

CHECK_BATCH = 256  # images per forward pass of the logit check
PREPROCESSING = "None, 'dataset' (its mean/std), (mean, std), or an nn.Module applied first"


def network(model: Any) -> nn.Module:
    """`model` if it is an `nn.Module`, else InvalidArgument."""
    if not isinstance(model, nn.Module):
        raise InvalidArgument(
            "model", type(model).__name__, "a torch.nn.Module", "is not a network"
        )
    return model


def preprocessed(model: nn.Module, preprocessing: Any, spec: DatasetSpec) -> nn.Module:
    """`model` behind its input preprocessing, so attacks still work on images in [0, 1].

    As in RobustBench, a model trained on normalized inputs is evaluated on [0, 1] images with
    its normalization as the first layer: `'dataset'` uses the dataset's own mean and std.
    """
    if preprocessing is None:
        return model
    if isinstance(preprocessing, nn.Module):
        first = preprocessing
    elif isinstance(preprocessing, str) and preprocessing == "dataset":
        first = Normalize(spec.mean, spec.std)
    elif _mean_std(preprocessing, spec.channels):
        mean, std = preprocessing
        first = Normalize(_per_channel(mean, spec.channels), _per_channel(std, spec.channels))
    else:
        raise InvalidArgument(
            "preprocessing", preprocessing, PREPROCESSING, "is not a preprocessing"
        )
    return nn.Sequential(OrderedDict(preprocessing=first, model=model))


def _mean_std(value: Any, channels: int) -> bool:
    """A (mean, std) pair, each a number or one per channel, every std positive."""
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        return False
    try:
        mean, std = (_per_channel(part, channels) for part in value)
    except (TypeError, ValueError):
        return False
    return all(s > 0 for s in std) and all(map(torch.isfinite, torch.tensor([*mean, *std])))


def _per_channel(value: Any, channels: int) -> tuple[float, ...]:
    values = (value,) * channels if isinstance(value, (int, float)) else tuple(value)
    if len(values) != channels:
        raise ValueError(f"{len(values)} values for {channels} channels")
    return tuple(float(v) for v in values)


@contextmanager
def lent(model: nn.Module) -> Iterator[nn.Module]:
    """`model` for the duration of a call, then its device and train/eval modes restored.

    A network left in training mode would be attacked with dropout and batch statistics on,
    a number about another function than the one deployed; so it is evaluated in eval mode,
    with a warning, as RobustBench asks of its users.
    """
    modes = [(module, module.training) for module in model.modules()]
    first = next(model.parameters(), None)
    home = first.device if first is not None else None
    if any(training for _, training in modes):
        warnings.warn(
            f"{type(model).__name__} is in training mode: it is evaluated in eval mode and "
            "handed back in training mode",
            UserWarning,
            stacklevel=4,
        )
    try:
        yield model
    finally:
        if home is not None:
            model.to(home)
        for module, training in modes:
            module.training = training


def origin(net: nn.Module, dataset: str, name: str | None) -> ExternalTarget:
    """The in-memory `net` as what `--model MODULE:FACTORY --name NAME` builds from files.

    Rows name it `external:<name>@<weights digest>`, so two calls on the same weights compare
    in the regression gate and two different weights never do.
    """
    label = name if name is not None else _default_name(net)
    try:
        check_name(label)
    except ValueError as err:
        raise InvalidArgument(
            "name", label, "1-64 of A-Z a-z 0-9 . _ -", "is not a model name"
        ) from err
    kind = type(net)
    factory = f"{kind.__module__}:{kind.__qualname__}"
    spec = ExternalTargetSpec(dataset=dataset, factory=factory, name=label)
    digest = weights_digest(net)
    details = {"name": label, "factory": factory, "weights": "", "digest": digest}
    return ExternalTarget(spec, TappedModel(net).eval(), digest, kind.__name__, details)


def _default_name(net: nn.Module) -> str:
    """The network's class name, cut to what result rows accept."""
    inner = net.model if isinstance(net, nn.Sequential) and hasattr(net, "model") else net
    return re.sub(r"[^A-Za-z0-9_.-]", "_", type(inner).__name__)[:64] or "model"


def probe_input(spec: DatasetSpec, device: torch.device) -> torch.Tensor:
    """Two mid-grey images of the dataset's shape: what a model must take before any attack."""
    return torch.full((2, spec.channels, spec.size, spec.size), 0.5, device=device)


def dataset_spec(dataset: str, options: LoadOptions) -> DatasetSpec:
    """The dataset's shape, classes and normalization (its loader reads it; one image kept)."""
    return load(dataset, options, 1, 1).spec


def checked(
    net: nn.Module, dataset: str, preprocessing: Any, options: LoadOptions, device: torch.device
) -> nn.Module:
    """`net` behind its preprocessing, on `device` in eval mode, once it has shown that it
    takes the dataset's images and returns finite logits of its classes."""
    spec = dataset_spec(dataset, options)
    wrapped = preprocessed(net, preprocessing, spec).to(device).eval()
    validate.forward(wrapped, probe_input(spec, device), spec, dataset)
    return wrapped


def target(
    net: nn.Module,
    dataset: str,
    preprocessing: Any,
    name: str | None,
    n: int | None,
    seed: int,
    device: torch.device,
    options: LoadOptions,
) -> Target:
    """The target `--model ... --dataset D --n N --seed S` loads, `net` checked on every image."""
    wrapped = checked(net, dataset, preprocessing, options, device)
    loaded = load_target(
        origin(wrapped, dataset, name), n=n, seed=seed, device=device, options=options
    )
    spec = loaded.data.spec
    for start in range(0, len(loaded.y), CHECK_BATCH):
        validate.forward(
            loaded.model, loaded.x[start : start + CHECK_BATCH].to(device), spec, dataset
        )
    return loaded
