"""Class-wise variance (Fig. 7, Appendix C.3).

For each class c, the share of the variance of the class's activation matrix A_c (its test
images × units at a tap) that the first singular value captures, σ₁² / Σσ_i² — the inverse
stable rank. A share near 1 for every class, with a low-rank whole, means each class occupies
nearly its own direction (the paper's sub-additivity argument). It is the first point of the
variance-ratio curve of `analysis/rank.py` restricted to one class, so it uses that function
(uncentred activations, the same exact/randomized SVD switch).

Rows (experiment `classwise`, column `tap`): `top1_share` per class (param `class=<c>`, n = its
images) and `top1_share_mean` over classes (n = all images). Bar chart in
`figures/classwise_*.png`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from robustbench_lr import models
from robustbench_lr.analysis.base import Analysis, AnalysisOptions, analysis_tap
from robustbench_lr.analysis.plotting import figure_stem, save_figure
from robustbench_lr.analysis.rank import variance_ratio
from robustbench_lr.experiments import Outcome
from robustbench_lr.target import Target


def class_top1_shares(acts: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> dict[int, float]:
    """σ₁²/Σσ² of each class's rows of `acts` (classes with all-zero activations are skipped)."""
    shares = {}
    for cls in torch.unique(labels).tolist():
        rows = acts[labels == cls]
        if rows.square().sum() > 0:
            shares[int(cls)] = float(variance_ratio(rows, seed=seed)[0][0])
    return shares


def run_classwise(target: Target, options: AnalysisOptions) -> Outcome:
    """Fig. 7 numbers for one model at one tap (default: before the last FC)."""
    model, data = target.model, target.data
    cfg = target.meta["config"]
    tap = analysis_tap(model, options, cfg["arch"])
    acts = models.activations(model, data.x_test, [tap])[tap]
    shares = class_top1_shares(acts, data.y_test, options.seed)
    counts = {c: int((data.y_test == c).sum()) for c in shares}
    base = {**target.columns, "experiment": "classwise", "tap": tap}
    rows = [
        {**base, "param": f"class={c}", "metric": "top1_share", "value": v, "n": counts[c]}
        for c, v in shares.items()
    ]
    mean = float(np.mean(list(shares.values())))
    rows.append({**base, "metric": "top1_share_mean", "value": mean, "n": len(acts)})
    png = plot_shares(options.results, cfg, tap, shares)
    lines = [
        f"{target.checkpoint} @ {tap}: first singular value holds {mean:.3f} of each class's "
        f"variance on average ({len(shares)} classes)"
    ]
    return Outcome(rows, lines, [png])


def plot_shares(out: Path, cfg: dict, tap: str, shares: dict[int, float]) -> Path:
    """Fig. 7: one bar per class."""
    fig = Figure(figsize=(max(4.0, 0.25 * len(shares) + 2), 3))
    ax = fig.add_subplot()
    ax.bar([str(c) for c in shares], list(shares.values()))
    ax.set_ylim(0, 1)
    ax.set_xlabel("class")
    ax.set_ylabel("σ₁² / Σσ²")
    ax.set_title(f"class-wise variance: {cfg['method']} {cfg['arch']} @ {tap}", fontsize=9)
    ax.tick_params(axis="x", labelsize=6)
    return save_figure(fig, out, figure_stem("classwise", cfg, tap))


CLASSWISE = Analysis(
    name="classwise",
    summary="share of each class's variance in its first singular value at a tap, Fig. 7",
    run=run_classwise,
)
