"""The leaderboard's columns and the threat it ranks by: which numbers a model row holds, and
how each is shown.
"""

from __future__ import annotations

from dataclasses import dataclass

import robustbench_lr.leaderboard.tracks as board_tracks
from robustbench_lr import attacks, results

MODEL = ["dataset", "arch", "width", "method", "device"]

# The per-model summary of one column: see `_summary`.
SUMMARY = ("mean", "lo", "hi", "std", "min", "max", "seeds")

# Where the AutoAttack column reads from, preferred first: the authors' package (standard
# version) when the audit ran it, else the torchattacks port inside the audit's battery.
AUTOATTACK_SOURCES = (
    (
        "standard",
        {"experiment": "audit", "attack": attacks.filling("autoattack_acc"), "metric": "acc"},
    ),
    ("port", {"experiment": "audit", "attack": "audit", "metric": "autoattack_acc"}),
)

AUTOATTACK_NAMES = {
    "standard": "AutoAttack, standard version (the authors' package)",
    "port": "torchattacks' port of AutoAttack's components (the audit's autoattack_acc)",
}

# Accuracy columns of the table in the order shown, then the sizes (not proportions).
ACCURACIES = (
    "clean_acc",
    "robust_acc",
    "blackbox_acc",
    "worst_case_acc",
    "autoattack_acc",
    "noise_acc",
    "corruption_acc",
    *board_tracks.ACCURACIES,
)

# Hendrycks & Dietterich's relative mCE (%) with N-LR as the baseline model (100 = N-LR's).
SIZES = ("deepfool_rho", "corruption_mce")

# How far a model's clean accuracy moved when trained again under another code path
# (`perturbed.py`), in points: a difference between two models smaller than this is noise.
SPREADS = ("numerics_spread",)

# A zoo model's accuracies as RobustBench reports them (`results.ZOO_REPORTED` rows), shown
# beside the same accuracies as this suite measured them.
REPORTED = {metric: f"zoo_{metric}" for metric in results.ZOO_REPORTED_METRICS}

# Shown with one decimal (points, seconds, MB, the relative mCE in %); the others (ρ) with three.
ONE_PLACE = (*ACCURACIES, *SPREADS, *board_tracks.COSTS, "corruption_mce")

OPTIMALITY = "optimality:"  # prefix of the per-attack optimality columns

OPTIMALITY_WIDTH = 6  # models per attack-optimality table in leaderboard.md


@dataclass(frozen=True)
class Threat:
    """The threat model the leaderboard ranks by (RobustBench: Linf at 8/255)."""

    attack: str = attacks.filling("robust_acc")
    eps: float = 8 / 255
    steps: int = 20
