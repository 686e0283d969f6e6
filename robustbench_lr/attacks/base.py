"""What every attack shares: the registry entry, frozen-model context, per-sample measures.

An attack is a plain function `(model, x, y, **params) -> x_adv` on one batch in [0, 1] that
builds its library object inside the call and holds no state. `AttackSpec` records what the
harness needs (backends, norm, defaults), so callers enumerate attacks instead of branching on
names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError
from torch import nn

from robustbench_lr.attacks.precision import verdict
from robustbench_lr.errors import InvalidArgument
from robustbench_lr.registry import Registry
from robustbench_lr.settings import (
    Classes,
    Count,
    NonNegative,
    Positive,
    Probability,
    Seed,
    accepted,
    adapter,
)

AttackFn = Callable[..., torch.Tensor]

# Madry et al.'s rule for the step size of an L-inf iterative attack when none is given:
# 2.5 * eps / steps lets the iterate reach the boundary of the ball and move along it.
ALPHA_RULE = 2.5

# What each hyper-parameter accepts, declared once: `AttackSpec.resolve` checks every value a
# caller gives (the API's keywords, a profile's grid, the command line, whose flags take these
# types), because a budget no attack can mean (steps=-1, alpha=nan, queries=0) would otherwise
# run and be scored as robustness. An L-inf `eps` or `alpha` is further capped at 1 (`LINF`):
# that ball already holds every image in [0, 1]; an L2 one has no such bound. `eps` = 0 is the
# clean input, a number that means what it says, and a step of 0 is taken only there
# (`resolve`): a loop that cannot move would report the clean accuracy as robust.
HYPERPARAMETERS: Mapping[str, Any] = MappingProxyType(
    {
        "eps": NonNegative,
        "steps": Count,
        "alpha": NonNegative,
        "p": Probability,
        "sigma": Positive,
        "overshoot": NonNegative,
        "candidates": Classes,
        "queries": Count,
        "targets": Count,
        "restarts": Count,
        "seed": Seed,
    }
)
LINF = {"eps": Probability, "alpha": Probability}  # the same range, [0, 1], as a probability


@dataclass(frozen=True)
class AttackSpec:
    """One registered attack: its implementations and everything the harness records about it.

    - `backends`: library name -> `(model, x, y, **params) -> x_adv`, the default first.
    - `norm`: the threat model ("linf", "l2", or "none" for random noise), whose ball
      `run_attack` checks the outputs against.
    - `defaults`: every hyper-parameter with its default; `alpha=None` is `ALPHA_RULE·eps/steps`.
    - `verify`: the attack whose first two backends `--verify` compares (itself, or the
      fixed-target twin whose loop it shares); None when no second implementation exists.
    - `randomized`: the implementations take a `seed`; `run_attack` derives one per chunk.
    - `averaged_over_draws`: a distribution (random noise), so its accuracy is the mean over
      `draws` seeds (Table 4); other randomized attacks seek a worst case and run once.
    - `sweep`: values the CLI sweeps when the user names none (Table 4's noise levels).
    - `record`: fixed facts written into every result row's `param` (e.g. how σ is read).
    - `fills`: the report slots read from its rows (leaderboard columns, `eps_sweep`), so reports
      name no attack; one attack fills each slot (`attacks.filling`).
    """

    name: str
    backends: Mapping[str, AttackFn]
    norm: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    verify: str | None = None
    randomized: bool = False
    averaged_over_draws: bool = False
    sweep: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    record: Mapping[str, str] = field(default_factory=dict)
    fills: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("backends", "defaults", "sweep", "record"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))
        if not self.backends:
            raise ValueError(f"attack {self.name!r} has no backend")
        if self.averaged_over_draws and not self.randomized:
            raise ValueError(f"attack {self.name!r} is averaged over draws but takes no seed")
        undeclared = sorted(set(self.defaults) - set(HYPERPARAMETERS))
        if undeclared:
            raise ValueError(f"attack {self.name!r} takes undeclared parameter(s) {undeclared}")

    def resolve(self, backend: str | None = None, **given: Any) -> tuple[str, dict[str, Any]]:
        """The backend and the complete hyper-parameters a call uses (what the results record)."""
        backend = backend or next(iter(self.backends))
        if backend not in self.backends:
            raise ValueError(
                f"attack {self.name!r} has no backend {backend!r}; "
                f"valid choices: {', '.join(self.backends)}"
            )
        stray = sorted(set(given) - set(self.defaults))
        if stray:
            raise ValueError(
                f"attack {self.name!r} takes no parameter(s) {stray}; "
                f"valid: {', '.join(self.defaults) or 'none'}"
            )
        checked = {k: self.check(k, v) for k, v in given.items() if v is not None}
        params = {**self.defaults, **checked}
        if "alpha" in params and params["alpha"] is None:
            params["alpha"] = ALPHA_RULE * float(params["eps"]) / int(params["steps"])
        if params.get("alpha") == 0 and params.get("eps", 0) > 0:
            raise InvalidArgument(f"{self.name} alpha", 0.0, "a step > 0 when eps > 0")
        return backend, params

    def check(self, key: str, value: Any) -> Any:
        """`value` of hyper-parameter `key` as the attack uses it (a fraction like "8/255" as a
        number), or `InvalidArgument` naming the attack, the key and what is accepted."""
        kind = LINF[key] if key in LINF and self.norm == "linf" else HYPERPARAMETERS[key]
        try:
            return adapter(kind).validate_python(value)
        except ValidationError:
            raise InvalidArgument(f"{self.name} {key}", value, accepted(kind)) from None


ATTACKS: Registry[AttackSpec] = Registry("attack")


def register(*args: Any, **fields: Any) -> AttackSpec:
    """Add `AttackSpec(*args, **fields)` to the registry under its own name."""
    spec = AttackSpec(*args, **fields)
    return ATTACKS.add(spec.name, spec)


@contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and `requires_grad_(False)` on every parameter for the duration of an attack.

    Attacks need input gradients only; weight gradients would slow them (foolbox up to 40%).
    Each module's own mode is restored after: `model.train(flag)` would hand the outer module's
    flag to every submodule (a fresh wrapper around an eval model would leave it training).
    """
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    for p in params:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)
        for module, mode in modes:
            module.training = mode


def run_foolbox(
    attack: Any, model: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilons: float | None
) -> torch.Tensor:
    """Run a foolbox 3 attack on `model` (inputs in [0, 1]) and return its clipped examples."""
    import foolbox as fb

    _, clipped, _ = attack(fb.PyTorchModel(model, bounds=(0, 1)), x, y, epsilons=epsilons)
    return clipped


def least_likely(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The least-likely class other than the true one (Eq. 6's `argmin_y P(y|x)`).

    The true class is excluded as torchattacks' least-likely mode does, so `ill` and
    `ill-fixed` pick the same target on a clean input.
    """
    masked = logits.detach().scatter(1, y[:, None], float("inf"))
    return masked.argmin(1)


def linf_project(x_adv: torch.Tensor, x: torch.Tensor, eps: float | torch.Tensor) -> torch.Tensor:
    """`clip_{x,eps}` of Eq. 5-6 followed by the [0, 1] box, as torchattacks' PGD writes it;
    `eps` may be per-sample (N,) (the minimum-ε searches)."""
    if torch.is_tensor(eps):
        bound = eps.view(-1, *([1] * (x.dim() - 1)))
        delta = torch.maximum(torch.minimum(x_adv - x, bound), -bound)
    else:
        delta = torch.clamp(x_adv - x, min=-eps, max=eps)
    return torch.clamp(x + delta, min=0, max=1)


def robust_flags(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample bool on CPU: the model still classifies `x_adv` correctly (AutoAttack's
    `robust`), decided by `precision.verdict` in strict float32 whatever the attack crafted in.

    Robust accuracy is its mean; per-example worst cases (the audit) AND these flags.
    """
    return verdict(model, x_adv, y).cpu()


def rho(x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-sample normalized L2 dissimilarity `‖x_a − x‖₂ / ‖x‖₂` (Section 3, Table 3)."""
    diff = (x_adv - x).flatten(1).norm(dim=1)
    base = x.flatten(1).norm(dim=1)
    return torch.where(diff == 0, torch.zeros_like(diff), diff / base)


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from several integers (base seed, draw, chunk), independent streams each."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> 1)
