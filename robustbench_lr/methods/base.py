"""The method plug-in: a small value with hooks, so training never asks which method it runs.

A method may (1) change the *inference* architecture (`structure`, e.g. Bottle-LR's bottleneck),
(2) create training-only state (`prepare`: an auxiliary module whose parameters and buffers are
saved with the training state, e.g. an LR branch or a SNIP mask), (3) add loss terms computed from
tap activations (`penalty`), (4) act after each optimizer step (`after_step`, e.g. the rank
projection or re-masking), and (5) replace the data term of the loss (`objective`: adversarial
training computes it on crafted inputs, PGD-AT and TRADES), and (6) refuse options that do not
fit the built network (a tap it lacks) before training writes anything (`check`, which changes
nothing). Every hook has a do-nothing default; `objective`'s is plain cross-entropy on the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_lr.data import DatasetSpec
from robustbench_lr.models import StagedNet
from robustbench_lr.registry import Registry


@dataclass(frozen=True)
class Option:
    """A method hyper-parameter; the CLI exposes it as `--<name with dashes>`."""

    name: str
    type: Callable[[str], Any]
    default: Any
    help: str

    @property
    def flag(self) -> str:
        return flag_of(self.name)


def checked_option(
    flag: str, parse: Callable[[str], Any], valid: Callable[[Any], bool], rule: str
) -> Callable[[str], Any]:
    """An option's parser for `flag`: convert with `parse`, then require `valid(value)`; both
    kinds of error say `rule` in one line (what the CLI and the profile schema show)."""

    def check(text: str) -> Any:
        try:
            value = parse(text)
        except (TypeError, ValueError):
            raise ValueError(f"{flag} takes {rule}, got {text!r}") from None
        if not valid(value):
            raise ValueError(f"{flag} takes {rule}, got {text!r}")
        return value

    return check


def flag_of(name: str) -> str:
    """The command-line flag of the option `name` (`lr_rank` -> `--lr-rank`)."""
    return "--" + name.replace("_", "-")


def at_least(name: str, parse: Callable[[str], Any], low: int, default: Any, help: str) -> Option:
    """An option whose value, an integer or a number as `parse` says, must be >= `low`."""
    rule = f"{'an integer' if parse is int else 'a number'} >= {low}"
    return Option(
        name, checked_option(flag_of(name), parse, lambda v: v >= low, rule), default, help
    )


def choice_option(flag: str, registry: Registry[Any]) -> Callable[[str], str]:
    """An option's parser for `flag` that accepts only the names registered in `registry`."""

    def check(text: str) -> str:
        if text not in registry:
            raise ValueError(
                f"unknown {flag} {text!r}; valid choices: {', '.join(registry.names())}"
            )
        return text

    return check


@dataclass(frozen=True)
class TrainContext:
    """What `prepare` may look at: the fresh model, its data and the run's shape."""

    model: StagedNet
    arch: str
    spec: DatasetSpec
    first_batch: tuple[torch.Tensor, torch.Tensor]  # one seeded training batch (SNIP)
    epochs: int
    steps_per_epoch: int
    seed: int
    device: torch.device


@dataclass(frozen=True)
class Progress:
    """Where training is: the hooks use it for warm-ups and every-k-steps schedules."""

    epoch: int  # 0-based epoch being run
    step: int  # global optimizer steps done, counting this one
    epochs: int


@dataclass
class PenaltyTerms:
    """Loss terms to add (`losses`) and detached numbers to log per epoch (`logs`)."""

    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    logs: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class Batch:
    """What `objective` sees of one training step: the (augmented) images and labels, the taps
    `penalty` will read, where training is, and the epoch's seeded generator (the one that
    augments; random starts draw from it, so CPU runs stay bit-for-bit repeatable)."""

    x: torch.Tensor
    y: torch.Tensor
    taps: list[str]
    progress: Progress
    gen: torch.Generator


@dataclass
class Objective:
    """The data term of one step: `loss` (logged as "loss"), the `logits` training accuracy is
    read from, the tap activations `penalty` sees (`acts`), and further terms (`extra`)."""

    loss: torch.Tensor
    logits: torch.Tensor
    acts: dict[str, torch.Tensor]
    # A function, not the class: torch.compile cannot trace a class as a default factory.
    extra: PenaltyTerms = field(default_factory=lambda: PenaltyTerms())


def cross_entropy_objective(model: StagedNet, batch: Batch, opts: dict[str, Any]) -> Objective:
    """Plain training's data term (every non-adversarial method): cross-entropy on the batch."""
    logits, acts = model.run(batch.x, batch.taps)
    return Objective(F.cross_entropy(logits.float(), batch.y), logits, acts)


def _nothing(*args: Any) -> None:
    return None


def _all_trainable(aux: nn.Module, opts: dict[str, Any]) -> list[dict[str, Any]]:
    params = [p for p in aux.parameters() if p.requires_grad]
    return [{"params": params}] if params else []


@dataclass(frozen=True)
class Method:
    """A training method: its options and its hooks (see the module docstring)."""

    name: str
    summary: str
    # What kind of method: "baseline" (N-LR), "low-rank", "regularizer" (the paper's Table 2
    # comparisons) or "adversarial"; the paper's tables pick their rows by family.
    family: str
    options: tuple[Option, ...] = ()
    structure: Callable[[StagedNet, str, dict[str, Any]], None] = _nothing
    check: Callable[[StagedNet, str, dict[str, Any]], None] = _nothing
    prepare: Callable[[TrainContext, dict[str, Any]], nn.Module] = lambda ctx, opts: nn.Module()
    taps: Callable[[str, dict[str, Any]], list[str]] = lambda arch, opts: []
    penalty: Callable[
        [nn.Module, dict[str, torch.Tensor], Progress, dict[str, Any]], PenaltyTerms
    ] = lambda aux, acts, progress, opts: PenaltyTerms()
    after_step: Callable[[StagedNet, nn.Module, Progress, dict[str, Any]], None] = _nothing
    # Parameter groups of the auxiliary module for the shared SGD optimizer; a method that
    # updates its own parameters in `after_step` returns [].
    aux_param_groups: Callable[[nn.Module, dict[str, Any]], list[dict[str, Any]]] = _all_trainable
    describe: Callable[[StagedNet, nn.Module, dict[str, Any]], dict[str, Any]] = (
        lambda model, aux, opts: {}
    )
    # Called in training mode under the loop's autocast; it may run attacks on the model.
    objective: Callable[[StagedNet, Batch, dict[str, Any]], Objective] = cross_entropy_objective

    @property
    def adversarial_training(self) -> bool:
        """Trains on adversarial examples (RobustBench's `adversarial_training` field)."""
        return self.family == "adversarial"

    def resolve(self, given: dict[str, Any]) -> dict[str, Any]:
        """Defaults overridden by `given`; an option this method does not have is an error."""
        known = {o.name: o for o in self.options}
        stray = sorted(k for k, v in given.items() if v is not None and k not in known)
        if stray:
            flags = ", ".join(flag_of(k) for k in stray)
            valid = ", ".join(o.flag for o in self.options) or "none"
            raise ValueError(
                f"{flags} does not apply to method {self.name!r} (its options: {valid})"
            )
        return {
            name: option.default if given.get(name) is None else option.type(given[name])
            for name, option in known.items()
        }
