"""The paper's tables (and the tracks beside them) as specs: which experiment writes each one's
rows is its `where`; adding a table is adding a spec here, not a script."""

from __future__ import annotations

import math

from robustbench_lr.methods import METHODS
from robustbench_lr.tables.engine import MODEL_INDEX, ModelColumn, TableSpec

AUDIT_COLUMNS = (
    ModelColumn(
        "AutoAttack (worst case/example)",
        {"experiment": "audit", "attack": "audit", "metric": "worst_case_acc"},
    ),
    ModelColumn(
        "audit verdict",
        {"experiment": "audit", "attack": "audit", "metric": "failed_checks"},
        verdict=True,
    ),
)


def _families(*families: str) -> tuple[str, ...]:
    """The registered methods of `families`: the paper's row order is family by family, in
    registry order within one."""
    return tuple(name for family in families for name in METHODS if METHODS[name].family == family)


LR_METHODS = _families("baseline", "low-rank")
ALL_METHODS = _families("baseline", "regularizer", "low-rank")
_ADV = {"experiment": "attack", "attack": "ifsgm", "metric": "acc"}


def _hybrid_table(
    name: str, title: str, taps: tuple[str, ...], dims: tuple[float, ...], note: str = ""
) -> TableSpec:
    """A table of the `hybrid` analyses' accuracy at `taps` (one column per PCA dimension d;
    `inf`: no PCA, shown as `full`).

    The tap picks the paper's table: before the last FC (5a), before ResNet block 4 (5b),
    before VGG19's third-last FC (8); `hybrid` and `hybrid-deep` write their rows.
    """
    return TableSpec(
        name,
        title,
        {"experiment": "hybrid", "metric": "hybrid_acc"},
        ("dim",),
        methods=ALL_METHODS,
        note=note,
        extra_where={"tap": taps, "dim": dims},
    )


def _minrho_table(name: str, title: str, metric: str) -> TableSpec:
    """Tables 3 and 10: what the min-perturbation search needed (its ρ, or its ε) per attack."""
    return TableSpec(
        name,
        title,
        {"experiment": "minrho", "metric": metric},
        ("attack", "box"),
        methods=ALL_METHODS,
        digits=3,
    )


SPECS: tuple[TableSpec, ...] = (
    TableSpec(
        "table1",
        "IFSGM adversarial accuracy (%), white-box and black-box (from N-LR)",
        _ADV,
        ("box", "eps", "steps"),
        methods=LR_METHODS,
        model_columns=AUDIT_COLUMNS,
    ),
    TableSpec(
        "table2",
        "Other regularizers vs LR: white-box IFSGM accuracy (%)",
        {**_ADV, "box": "white"},
        ("eps", "steps"),
        methods=ALL_METHODS,
        model_columns=AUDIT_COLUMNS,
    ),
    _minrho_table(
        "table3",
        "Normalized L2 dissimilarity ρ needed to misclassify > 99% (min-perturbation search)",
        "rho",
    ),
    TableSpec(
        "table4",
        "Accuracy (%) under random pixel noise, N(0, σ) added with probability p",
        {"experiment": "attack", "attack": "noise", "metric": "acc"},
        ("p",),
        methods=ALL_METHODS,
        note="σ = 128/255 read as a standard deviation (the paper's N(0, 128/255) is ambiguous).",
    ),
    _hybrid_table(
        "table5a",
        "Hybrid max-margin accuracy (%) on features before the FC vs embedding dimension",
        ("pre_fc", "fc3_in"),
        (math.inf, 10, 5),
    ),
    _hybrid_table(
        "table5b",
        "Hybrid max-margin accuracy (%) replacing the last block and FC (features before block 4)",
        ("pre_block4",),
        (math.inf, 20, 10),
    ),
    TableSpec(
        "table6",
        "Max-margin hybrid accuracy (fraction) on adversarial examples that fooled the network",
        {"experiment": "maxmargin", "metric": "maxmargin_acc"},
        ("attack", "box"),
        index=(*MODEL_INDEX, "tap", "dim"),  # one of each per architecture, so row labels
        methods=ALL_METHODS,
        digits=2,
        note=(
            "matched = the paper's N-LR protocol (D.5): crafted with the N-LR network's gradients,"
            " iterated until the 1-LR network of the same seed is fooled; the paper's N-LR row"
            " is this column."
        ),
    ),
    TableSpec(
        "table7",
        "Clean test accuracy (%)",
        {"experiment": "clean", "metric": "clean_acc"},
        (),
        methods=ALL_METHODS,
    ),
    _hybrid_table(
        "table8",
        "VGG19 hybrid max-margin accuracy (%) on features before the third-last FC layer",
        ("fc1_in",),
        (math.inf, 20, 10),
        note="full = the 512 units VGG19 has before its first (third-last) FC layer.",
    ),
    TableSpec(
        "table9",
        "CIFAR-100 fine: clean and IFSGM (ε = 8/255, 7 steps) accuracy (%)",
        {
            "dataset": "cifar100",
            "metric": ("clean_acc", "acc"),
            "attack": ("clean", "ifsgm"),
            "box": ("", "white"),
            "experiment": ("clean", "attack"),
        },
        ("attack", "eps", "steps"),
        methods=ALL_METHODS,
    ),
    _minrho_table(
        "table10",
        "Smallest ε (L∞) at which > 99% is misclassified (min-perturbation search)",
        "eps",
    ),
    TableSpec(
        "corruptions",
        "Mean accuracy (%) under the 15 common corruptions x 5 severities, and per family",
        {"experiment": "corruption", "metric": "mean_acc"},
        ("attack",),
        methods=ALL_METHODS,
        others=True,
        note="Hendrycks & Dietterich (ICLR 2019): all = the mean corruption accuracy; the "
        "relative mCE against N-LR is the leaderboard's corruption_mce.",
    ),
    TableSpec(
        "corruptions_severity",
        "Accuracy (%) per common corruption and severity",
        {"experiment": "corruption", "metric": "acc"},
        ("severity",),
        index=(*MODEL_INDEX, "attack"),
        methods=ALL_METHODS,
        others=True,
    ),
    TableSpec(
        "shifts",
        "Accuracy (%) under natural distribution shifts, beside the clean test accuracy",
        {"experiment": "shift"},
        ("attack", "metric"),
        note="CIFAR-10.1 (Recht et al. 2019) and CINIC-10's test split (Darlow et al. 2018), "
        "OODRobustBench's natural shifts; clean_acc is the same model on its own test subset.",
    ),
)
