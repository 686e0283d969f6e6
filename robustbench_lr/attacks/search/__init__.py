"""Minimum-perturbation searches (Table 3, Table 10, Appendix D.3) and step curves (Fig. 11).

`threshold.py` holds the searches themselves (early stopping, per-sample bisection, step
curves); `searches.py` the `SEARCHES` registry callers look a search up in.
"""

from __future__ import annotations

from robustbench_lr.attacks.loop import STEP_RULES
from robustbench_lr.attacks.search.searches import (
    EXTEND_SCALES,
    SEARCHES,
    SearchSettings,
    extend_until_fooled,
)
from robustbench_lr.attacks.search.threshold import (
    EpsSearch,
    accuracy_curve,
    attack_until_fooled,
    per_sample_min_eps,
    step_accuracies,
    step_curves,
    threshold_search,
)

__all__ = [
    "EXTEND_SCALES",
    "EpsSearch",
    "SEARCHES",
    "STEP_RULES",
    "SearchSettings",
    "accuracy_curve",
    "attack_until_fooled",
    "extend_until_fooled",
    "per_sample_min_eps",
    "step_accuracies",
    "step_curves",
    "threshold_search",
]
