"""Stronger L-inf attacks for the robustness audit (issue 8): APGD, Square, AutoAttack, FGSM.

The paper's claim, robustness without adversarial training, is the pattern gradient masking
produces, so its numbers are re-checked with the attacks the field trusts (Croce & Hein 2020,
"Reliable evaluation of adversarial robustness with an ensemble of diverse parameter-free
attacks"; Carlini et al. 2019, "On Evaluating Adversarial Robustness"). All wrap torchattacks:

- `fgsm`: one signed-gradient step (Goodfellow et al. 2015), the single-step baseline.
- `ifsgm-restarts`: `ifsgm` from uniformly random starts in the ball (torchattacks' PGD with
  `random_start=True`), worst case per example over `restarts` runs.
- `apgd-ce`, `apgd-dlr`: Auto-PGD on cross-entropy / the DLR loss, with `restarts`.
- `apgd-t`: targeted APGD on the DLR loss against the `targets` most likely wrong classes.
- `fab-t`: targeted FAB, a minimum-norm attack, against `targets` classes.
- `square`: Square Attack, score-based random search with `queries` model queries and no
  gradients, so gradient masking cannot stop it.
- `autoattack`: the standard ensemble APGD-CE -> APGD-T -> FAB-T -> Square, each attack on the
  points the previous ones left standing (torchattacks' `MultiAttack` over the components
  built here with our steps / queries / seed, since its `AutoAttack` class fixes APGD at 10
  steps).
- `linf-noise`: random corners of the L-inf ball, the blind baseline of the audit.

torchattacks draws from (and re-seeds) torch's global generator; `seeded` forks it, so a seed
gives the same numbers on every run and the caller's random state is left untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from robustbench_lr.attacks.base import AttackSpec, derive_seed, register

# AutoAttack's standard settings (Croce & Hein 2020): 100 iterations, 9 target classes,
# 5000 Square queries. The audit lowers them on CPU (`AuditOptions`).
APGD_STEPS = 100
TARGETS = 9
QUERIES = 5000


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Run a torchattacks call from `seed` without touching the caller's global RNG state."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type):
        torch.manual_seed(int(seed))
        yield


def _classes(model: nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad():
        return int(model(x[:1]).shape[1])


def _targets(model: nn.Module, x: torch.Tensor, targets: int) -> int:
    """Target classes to try: at most every wrong class; the DLR losses need 3 classes or more."""
    classes = _classes(model, x)
    if classes < 3:
        raise ValueError(f"APGD-T / FAB-T / DLR need at least 3 classes, the model has {classes}")
    return max(1, min(int(targets), classes - 1))


def fgsm(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, backend: str = "torchattacks"
) -> torch.Tensor:
    """Fast gradient sign method: x + eps·sign(∇ CE), clipped to [0, 1] (one step).

    Args: eps (L-inf radius). Shapes: x (N, C, H, W) in [0, 1], y (N,) -> x_adv (N, C, H, W).
    The audit's "iterative beats single step" check compares `ifsgm` against it.
    """
    import torchattacks

    return torchattacks.FGSM(model, eps=eps)(x, y)


def ifsgm_restarts(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int,
    alpha: float,
    restarts: int,
    seed: int,
    backend: str = "torchattacks",
) -> torch.Tensor:
    """IFSGM from `restarts` uniformly random starts; per sample, the first start that fools it.

    Args: eps, steps (default 20), alpha (default 2.5·eps/steps), restarts (5), seed.
    Each restart runs torchattacks' PGD(random_start=True) on the samples still classified
    correctly (AutoAttack's rule: attack only what stands), so the result is the worst case per
    example over restarts. The restart loop is ours: torchattacks' PGD has no restarts.
    """
    import torchattacks

    x_adv = x.clone()
    with torch.no_grad():
        standing = torch.nonzero(model(x).argmax(1) == y).flatten()
    for restart in range(int(restarts)):
        if len(standing) == 0:
            break
        attack = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)
        with seeded(derive_seed(seed, restart), x.device):
            candidate = attack(x[standing], y[standing])
        x_adv[standing] = candidate
        with torch.no_grad():
            still = model(candidate).argmax(1) == y[standing]
        standing = standing[still]
    return x_adv


def _apgd(model, eps, steps, restarts, seed, loss):
    import torchattacks

    return torchattacks.APGD(
        model, norm="Linf", eps=eps, steps=steps, n_restarts=restarts, seed=seed, loss=loss
    )


def _apgd_t(model, x, eps, steps, restarts, seed, targets):
    import torchattacks

    attack = torchattacks.APGDT(
        model,
        norm="Linf",
        eps=eps,
        steps=steps,
        n_restarts=restarts,
        seed=seed,
        n_classes=_classes(model, x),
    )
    attack.n_target_classes = _targets(model, x, targets)
    return attack


def _fab_t(model, x, eps, steps, seed, targets):
    import torchattacks

    attack = torchattacks.FAB(
        model,
        norm="Linf",
        eps=eps,
        steps=steps,
        seed=seed,
        multi_targeted=True,
        n_classes=_classes(model, x),
    )
    attack.n_target_classes = _targets(model, x, targets)
    return attack


def _square(model, eps, queries, seed):
    import torchattacks

    return torchattacks.Square(
        model, norm="Linf", eps=eps, n_queries=queries, seed=seed, loss="margin"
    )


def apgd_ce(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int,
    restarts: int,
    seed: int,
    backend: str = "torchattacks",
) -> torch.Tensor:
    """Auto-PGD on cross-entropy (Croce & Hein 2020): step size adapted per sample, no tuning.

    Args: eps, steps (100), restarts (1; each further restart only on samples still standing),
    seed. AutoAttack's first component.
    """
    with seeded(seed, x.device):
        return _apgd(model, eps, steps, restarts, seed, "ce")(x, y)


def apgd_dlr(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int,
    restarts: int,
    seed: int,
    backend: str = "torchattacks",
) -> torch.Tensor:
    """Auto-PGD on the Difference of Logits Ratio loss, invariant to logit scaling.

    DLR = −(z_y − max_{i≠y} z_i) / (z_π1 − z_π3): a model that inflates its logits (a saturated
    softmax) cannot shrink this loss's gradient the way it shrinks cross-entropy's.
    Args as `apgd-ce` (restarts default 1; the audit uses more).
    """
    with seeded(seed, x.device):
        return _apgd(model, eps, steps, restarts, seed, "dlr")(x, y)


def apgd_t(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int,
    targets: int,
    restarts: int,
    seed: int,
    backend: str = "torchattacks",
) -> torch.Tensor:
    """Targeted APGD-DLR against each of the `targets` most likely wrong classes in turn.

    Args: eps, steps (100), targets (9, capped at classes − 1), restarts (1), seed.
    AutoAttack's second component.
    """
    with seeded(seed, x.device):
        return _apgd_t(model, x, eps, steps, restarts, seed, targets)(x, y)


def fab_t(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int,
    targets: int,
    seed: int,
    backend: str = "torchattacks",
) -> torch.Tensor:
    """Targeted FAB (Croce & Hein 2020b): minimum-norm steps towards each target's boundary.

    Args: eps, steps (100), targets (9), seed. Returns an input within `eps` only where FAB
    found one (the clean input elsewhere). AutoAttack's third component.
    """
    with seeded(seed, x.device):
        return _fab_t(model, x, eps, steps, seed, targets)(x, y)


def square(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    queries: int,
    seed: int,
    backend: str = "torchattacks",
) -> torch.Tensor:
    """Square Attack (Andriushchenko et al. 2020): random search on the margin, no gradients.

    Args: eps, queries (model queries per sample: 5000 in AutoAttack, 1000 on CPU profiles),
    seed. Because it only reads scores, gradient masking does not stop it (Carlini et al. 2019).
    """
    with seeded(seed, x.device):
        return _square(model, eps, queries, seed)(x, y)


def autoattack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int,
    targets: int,
    queries: int,
    seed: int,
    backend: str = "torchattacks",
) -> torch.Tensor:
    """AutoAttack "standard", L-inf: APGD-CE, APGD-T, FAB-T, Square; worst case per example.

    Args: eps, steps (APGD / FAB iterations, 100), targets (9), queries (Square, 5000), seed.
    Each component runs on the samples its predecessors left standing (torchattacks'
    `MultiAttack`), so the result is misclassified wherever any component succeeded.
    """
    import torchattacks

    components = [
        _apgd(model, eps, steps, 1, seed, "ce"),
        _apgd_t(model, x, eps, steps, 1, seed, targets),
        _fab_t(model, x, eps, steps, seed, targets),
        _square(model, eps, queries, seed),
    ]
    with seeded(seed, x.device):
        return torchattacks.MultiAttack(components)(x, y)


def linf_noise(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    seed: int,
    backend: str = "ours",
) -> torch.Tensor:
    """A random corner of the L-inf ball: x + eps·s with s uniform in {−1, +1}, clipped to [0, 1].

    The blind baseline of Carlini et al.'s checklist: if noise of the attack's own size fools a
    sample that gradient attacks cannot, the gradients mislead. Hand-written because no library
    draws corners (torchattacks' random start is uniform inside the ball, a weaker probe). Drawn
    on a CPU generator so a seed means the same noise on every device; the model is not used.
    """
    gen = torch.Generator().manual_seed(int(seed))
    signs = torch.randint(0, 2, x.shape, generator=gen, dtype=torch.int64).to(x.dtype) * 2 - 1
    return torch.clamp(x + eps * signs.to(x.device), 0, 1)


EPS = {"eps": 8 / 255}
register(
    AttackSpec(
        "fgsm",
        fgsm,
        "linf",
        EPS,
        ("torchattacks",),
        summary="FGSM, one signed-gradient step (single-step baseline)",
    )
)
register(
    AttackSpec(
        "ifsgm-restarts",
        ifsgm_restarts,
        "linf",
        {**EPS, "steps": 20, "alpha": None, "restarts": 5, "seed": 0},
        ("torchattacks",),
        randomized=True,
        summary="IFSGM from random starts, worst case over restarts (torchattacks PGD)",
    )
)
APGD = {**EPS, "steps": APGD_STEPS, "restarts": 1, "seed": 0}
register(
    AttackSpec(
        "apgd-ce",
        apgd_ce,
        "linf",
        APGD,
        ("torchattacks",),
        randomized=True,
        summary="Auto-PGD on cross-entropy (AutoAttack)",
    )
)
register(
    AttackSpec(
        "apgd-dlr",
        apgd_dlr,
        "linf",
        APGD,
        ("torchattacks",),
        randomized=True,
        summary="Auto-PGD on the DLR loss, with restarts (AutoAttack)",
    )
)
register(
    AttackSpec(
        "apgd-t",
        apgd_t,
        "linf",
        {**APGD, "targets": TARGETS},
        ("torchattacks",),
        randomized=True,
        summary="targeted Auto-PGD-DLR over the most likely wrong classes (AutoAttack)",
    )
)
register(
    AttackSpec(
        "fab-t",
        fab_t,
        "linf",
        {**EPS, "steps": APGD_STEPS, "targets": TARGETS, "seed": 0},
        ("torchattacks",),
        randomized=True,
        summary="targeted FAB, minimum-norm boundary attack (AutoAttack)",
    )
)
register(
    AttackSpec(
        "square",
        square,
        "linf",
        {**EPS, "queries": QUERIES, "seed": 0},
        ("torchattacks",),
        randomized=True,
        summary="Square Attack, score-based random search without gradients",
    )
)
register(
    AttackSpec(
        "autoattack",
        autoattack,
        "linf",
        {**EPS, "steps": APGD_STEPS, "targets": TARGETS, "queries": QUERIES, "seed": 0},
        ("torchattacks",),
        randomized=True,
        summary="AutoAttack standard: APGD-CE, APGD-T, FAB-T, Square; worst case per example",
    )
)
register(
    AttackSpec(
        "linf-noise",
        linf_noise,
        "linf",
        {**EPS, "seed": 0},
        randomized=True,
        summary="random corners of the L-inf ball (blind baseline of the audit)",
    )
)
