"""Stability of representations under adversarial perturbations (Fig. 4b, Section 3.2).

For an adversarial perturbation δ of an input x, the paper plots the input-space size
‖δ‖²/‖x‖² (x-axis) against the representation-space size ‖f(x+δ) − f(x)‖²/‖f(x)‖² (y-axis),
f being the representation before the last FC; a model that attenuates perturbations sits
lower. Pairs come from every attack run of `--option attacks=` (per ε of `--option eps=`) on
the test set (`--n` images); pairs whose δ is zero (an attack that left x unchanged) are
dropped, as they have no place on the log-log plot.

Rows (experiment `stability`, attack columns filled, box/source as in `adversarial.py`, column
`tap`):
- per run and per bin of the input ratio (fixed log-spaced edges, `--option bins_per_decade=2`,
  so bins line up across models): `input_ratio_median` and `rep_ratio_median`, param
  `bin=<lo>..<hi>`, n = pairs in the bin;
- per run: `amplification_median` = median of (representation ratio / input ratio), n = all
  pairs (lower = stronger attenuation).
The scatter of every pair goes to `figures/stability_*.png`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from robustbench_lr import models
from robustbench_lr.analysis.adversarial import ATTACK_OPTIONS, attack_runs, attack_source
from robustbench_lr.analysis.base import Analysis, AnalysisOptions, analysis_tap, number
from robustbench_lr.analysis.plotting import figure_stem, save_figure
from robustbench_lr.experiments import Outcome
from robustbench_lr.models import StagedNet
from robustbench_lr.settings import Count
from robustbench_lr.target import Target


def stability_pairs(
    model: StagedNet, x: torch.Tensor, x_adv: torch.Tensor, tap: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per example (‖δ‖²/‖x‖², ‖f(x+δ) − f(x)‖²/‖f(x)‖²) at `tap`, dropping δ = 0 pairs; in
    float64 so tiny perturbations do not round to zero."""
    delta = (x_adv - x).flatten(1).double()
    keep = delta.abs().sum(1) > 0
    if not bool(keep.any()):
        return np.empty(0), np.empty(0)
    x_kept, adv_kept = x[keep], x_adv[keep]
    clean = models.activations(model, x_kept, [tap])[tap].double()
    moved = models.activations(model, adv_kept, [tap])[tap].double()
    input_ratio = delta[keep].square().sum(1) / x_kept.flatten(1).double().square().sum(1)
    rep_ratio = (moved - clean).square().sum(1) / clean.square().sum(1)
    return input_ratio.numpy(), rep_ratio.numpy()


def binned_medians(
    input_ratio: np.ndarray, rep_ratio: np.ndarray, bins_per_decade: int
) -> list[tuple[float, float, float, float, int]]:
    """(lo, hi, median input ratio, median representation ratio, count) per non-empty bin.

    Edges are fixed powers 10^(k / bins_per_decade), independent of the data, so the same bin
    means the same perturbation size for every model.
    """
    if bins_per_decade <= 0:
        raise ValueError(f"bins_per_decade must be positive, got {bins_per_decade}")
    finite = np.isfinite(input_ratio) & np.isfinite(rep_ratio) & (input_ratio > 0)
    inp, rep = input_ratio[finite], rep_ratio[finite]
    index = np.floor(np.log10(inp) * bins_per_decade).astype(np.int64)
    out = []
    for k in np.unique(index):
        members = index == k
        lo, hi = 10.0 ** (k / bins_per_decade), 10.0 ** ((k + 1) / bins_per_decade)
        medians = float(np.median(inp[members])), float(np.median(rep[members]))
        out.append((lo, hi, *medians, int(members.sum())))
    return out


def run_stability(target: Target, options: AnalysisOptions) -> Outcome:
    """Fig. 4b pairs, binned medians and scatter for one model (default tap: before the FC)."""
    model, data = target.model, target.data
    cfg = target.meta["config"]
    tap = analysis_tap(model, options, cfg["arch"])
    per_decade = options.get("bins_per_decade", int, 2)
    source = attack_source(target, options)
    runs = attack_runs(options, "deepfool,ifsgm", "2/255,4/255,8/255,16/255")
    base = {**target.columns, "experiment": "stability", "tap": tap, **source.fields()}
    rows, lines, scatter = [], [], []
    for run in runs:
        x_adv = run.craft(source.model, data.x_test, data.y_test)
        inp, rep = stability_pairs(model, data.x_test, x_adv, tap)
        fields = {**base, **run.fields()}
        for lo, hi, med_in, med_rep, count in binned_medians(inp, rep, per_decade):
            param = f"bin={lo:.3g}..{hi:.3g}"
            for metric, value in (("input_ratio_median", med_in), ("rep_ratio_median", med_rep)):
                rows.append(
                    {**fields, "param": param, "metric": metric, "value": value, "n": count}
                )
        amplification = float(np.median(rep / inp)) if len(inp) else math.nan
        rows.append(
            {**fields, "metric": "amplification_median", "value": amplification, "n": len(inp)}
        )
        label = run.name if fields["eps"] == 0 else f"{run.name} eps={fields['eps']:.3g}"
        scatter.append((label, inp, rep))
        lines.append(
            f"{label} ({source.box}-box) @ {tap}: median representation/input ratio "
            f"{amplification:.3g} over {len(inp)} perturbations"
        )
    png = plot_pairs(options.results, cfg, tap, source.box, scatter)
    return Outcome(rows, lines, [png])


def plot_pairs(
    out: Path, cfg: dict, tap: str, box: str, scatter: list[tuple[str, np.ndarray, np.ndarray]]
) -> Path:
    """Fig. 4b: log-log scatter of input vs representation perturbation, one colour per run."""
    fig = Figure(figsize=(5, 4))
    ax = fig.add_subplot()
    for label, inp, rep in scatter:
        ax.scatter(inp, rep, s=6, alpha=0.5, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("‖δ‖² / ‖x‖²  (input)")
    ax.set_ylabel("‖f(x+δ) − f(x)‖² / ‖f(x)‖²  (representation)")
    ax.set_title(
        f"{cfg['method']} {cfg['arch']} on {cfg['dataset']} @ {tap}, {box}-box", fontsize=9
    )
    ax.grid(True, alpha=0.3)
    if scatter:
        ax.legend(fontsize=7)
    return save_figure(fig, out, figure_stem("stability", cfg, tap, box))


STABILITY = Analysis(
    name="stability",
    summary="input vs representation perturbation size under attacks (binned medians), Fig. 4b",
    run=run_stability,
    crafts_adversarial=True,
    boxes=("white", "black"),
    options={**ATTACK_OPTIONS, "bins_per_decade": number(Count)},
)
