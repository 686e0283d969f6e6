"""The L2 track (RobustBench's second leaderboard) and the threat each attack supports.

RobustBench ranks CIFAR-10 models under L2 perturbations of norm ≤ 0.5 as well as L∞ ones; the
paper's attacks are all L∞, so an L2 claim needs L2 attacks from the same libraries: `pgd-l2`
(torchattacks' `PGDL2`, alpha by Madry's rule), the authors' AutoAttack and `strong.py`'s
builders at `norm="L2"`. Each dataset's L2 ε is its registry entry's `l2_eps` (`data.l2_eps`).

A result row's `threat` column says which ball its ε measures (`threat_of`); naming an L2 ε for
an attack that only has an L∞ ball is refused (`check_threat`), since its number would be filed
as an L2 result it is not.
"""

from __future__ import annotations

from functools import partial

from robustbench_lr.attacks import strong
from robustbench_lr.attacks.base import ATTACKS, register
from robustbench_lr.attacks.iterative import pgd

# The threat of an ε-bounded attack's ball, by its norm. An attack without an ε ball (random
# noise, unbounded DeepFool) supports none and its rows are filed under the default, L∞.
THREATS = {"linf": ("Linf",), "l2": ("L2",)}
THREAT_NAMES = ("Linf", "L2")
DEFAULT_THREAT = "Linf"
L2_EPS = 0.5  # RobustBench's CIFAR-10 L2 budget; each dataset's own is `data.l2_eps`
PGD_L2_STEPS = 20
# The strong attacks (`strong.LIBRARY`) whose torchattacks class has an L2 ball: each is
# registered again as `<name>-l2` (torchattacks' AutoAttack port is left out: the L2 audit
# runs its components one by one, and the authors' own ensemble beside them).
L2_TWINS = ("apgd-ce", "apgd-dlr", "apgd-t", "fab-t", "square")


class ThreatError(ValueError):
    """An ε of a threat the attack does not support: one line, exit 2."""


def threats(name: str) -> tuple[str, ...]:
    """The threats attack `name` has an ε ball for ("Linf", "L2"; none for unbounded ones)."""
    spec = ATTACKS.get(name)
    return THREATS.get(spec.norm, ()) if "eps" in spec.defaults else ()


def threat_of(name: str) -> str:
    """The threat a row of attack `name` is filed under (its ball's, else the default)."""
    return (threats(name) or (DEFAULT_THREAT,))[0]


def check_threat(name: str, threat: str) -> None:
    """Refuse an ε of `threat` for attack `name` unless the attack has that ball, naming both
    (the default threat is every attack's filing and always passes)."""
    if threat not in THREAT_NAMES:
        raise ThreatError(f"unknown threat {threat!r}; valid choices: {', '.join(THREAT_NAMES)}")
    supported = threats(name)
    if threat != DEFAULT_THREAT and threat not in supported:
        others = [n for n in ATTACKS.names() if threat in threats(n)]
        raise ThreatError(
            f"attack {name!r} supports threat(s) {', '.join(supported) or 'none'}, not an "
            f"{threat} ε; {threat} attacks: {', '.join(others)}"
        )


register(
    "pgd-l2",
    {"torchattacks": partial(pgd, library="PGDL2")},
    "l2",
    {"eps": L2_EPS, "steps": PGD_L2_STEPS, "alpha": None},
    fills=("l2_pgd_acc",),
)
register(
    "autoattack-standard-l2",
    {"pyautoattack": strong.seeded_library(partial(strong.autoattack_standard, norm="L2"))},
    "l2",
    {**strong.ENSEMBLE, "eps": L2_EPS},
    randomized=True,
    fills=("l2_autoattack_acc",),
)
register(
    "pgd-l2-restarts",
    {"torchattacks": partial(strong.ifsgm_restarts, library="PGDL2")},
    "l2",
    {"eps": L2_EPS, "steps": PGD_L2_STEPS, "alpha": None, "restarts": 5, "seed": 0},
    randomized=True,
)
for _name, _build, _defaults in strong.LIBRARY:
    if _name in L2_TWINS:
        register(
            f"{_name}-l2",
            {"torchattacks": strong.seeded_library(partial(_build, norm="L2"))},
            "l2",
            {**_defaults, "eps": L2_EPS},
            randomized=True,
        )
