"""Variance ratio of a representation (paper Section 2.1, Fig. 2, 5, 6).

The curve `v(k) = Σ_{i≤k} σ_i² / Σ_i σ_i²` over the singular values σ of the (uncentred)
activation matrix A (test images × units at one tap) says how many directions carry the
representation; `rank99` / `rank95` are the smallest k with v(k) ≥ 0.99 / 0.95.

Rows (experiment=rank, tap=<tap>): `metric=variance_ratio` with the number of singular values
k in the `steps` column (one row per k), and `metric=rank99` / `metric=rank95`. The `backend`
column says how σ was obtained: `exact` (torch.linalg.svdvals) or `randomized`
(torch.svd_lowrank, Halko et al.) when min(n, m) exceeds `--option exact_max=4096`; then the
curve has `--option k=1024` points, its denominator ‖A‖_F² stays exact, and a rank beyond k is
reported as NaN (the summary line says "> k").
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import torch
from matplotlib.figure import Figure

from robustbench_lr import models, results
from robustbench_lr.analysis.base import Analysis, AnalysisOptions, analysis_tap, number
from robustbench_lr.analysis.plotting import FIGURES_DIR, safe_stem, write_figure
from robustbench_lr.experiments import Outcome
from robustbench_lr.settings import Count, Seed
from robustbench_lr.target import Target

EXACT_MAX = 4096  # min(n, m) above which svdvals is too slow for 2 CPU cores
RANDOMIZED_K = 1024  # singular values estimated by the randomized SVD
LEVELS = {"rank99": 0.99, "rank95": 0.95}


def variance_ratio(
    acts: torch.Tensor, exact_max: int = EXACT_MAX, k: int = RANDOMIZED_K, seed: int = 0
) -> tuple[torch.Tensor, str]:
    """The curve v(1..K) of `acts` (n × m) and the backend used (`exact` or `randomized`).

    The exact SVD costs O(n·m·min(n, m)); beyond `exact_max` the top-k singular values come from
    a seeded randomized SVD (the total energy Σσ² = ‖A‖_F² needs no SVD, so the ratios keep an
    exact denominator and are lower bounds of the true curve).
    """
    a = acts.double()
    total = a.square().sum()
    if total == 0:
        raise ValueError("the activations are all zero; the variance ratio is undefined")
    if min(a.shape) <= exact_max:
        sigma, backend = torch.linalg.svdvals(a), "exact"
    else:
        q = min(k, min(a.shape))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            _, sigma, _ = torch.svd_lowrank(a, q=q, niter=4)
        backend = "randomized"
    return (sigma.square().cumsum(0) / total).float(), backend


def rank_at(curve: torch.Tensor, level: float) -> float:
    """Smallest k with v(k) ≥ level (1-based); NaN when the (truncated) curve never gets there."""
    hits = torch.nonzero(curve >= level)
    return float(hits[0, 0] + 1) if len(hits) else math.nan


def run_rank(target: Target, options: AnalysisOptions) -> Outcome:
    """Variance-ratio rows of one model at one tap (default: the layer before the last FC)."""
    model, meta = target.model, target.meta
    tap = analysis_tap(model, options, meta["config"]["arch"])
    acts = models.activations(model, target.x, [tap])[tap]
    exact_max, top_k = options.get("exact_max", int, EXACT_MAX), options.get("k", int, RANDOMIZED_K)
    curve, backend = variance_ratio(acts, exact_max, top_k, options.seed)
    base = {**target.columns, "experiment": "rank", "tap": tap, "backend": backend, "n": len(acts)}
    rows = [
        {**base, "metric": "variance_ratio", "steps": k, "value": float(v)}
        for k, v in enumerate(curve.tolist(), start=1)
    ]
    ranks = {name: rank_at(curve, level) for name, level in LEVELS.items()}
    rows += [{**base, "metric": name, "value": value} for name, value in ranks.items()]
    shown = {name: (f"> {len(curve)}" if math.isnan(v) else f"{v:g}") for name, v in ranks.items()}
    lines = [
        f"{target.checkpoint} @ {tap} (m={acts.shape[1]}, n={len(acts)}, {backend} SVD): "
        f"rank99 = {shown['rank99']}, rank95 = {shown['rank95']}"
    ]
    png = plot_curves(options.results, rows, meta["config"], tap)
    return Outcome(rows, lines, [png])


def plot_curves(out: Path, new_rows: list[dict], cfg: dict, tap: str) -> Path:
    """Fig. 2: the variance-ratio curves of every model of this dataset/arch/width/tap in `out`.

    Curves already in the results file (other methods and seeds) are drawn beside the new one,
    so analysing the N-LR and the LR checkpoint in turn yields the paper's comparison.
    """
    frame = results.read(out)
    new = pd.DataFrame([results.make_row(**r) for r in new_rows])
    same = (
        (frame["experiment"] == "rank")
        & (frame["metric"] == "variance_ratio")
        & (frame["tap"] == tap)
        & (frame["dataset"] == cfg["dataset"])
        & (frame["arch"] == cfg["arch"])
        & (frame["width"] == float(cfg["width"]))
        & (frame["checkpoint"] != new["checkpoint"].iloc[0])
    )
    curves = pd.concat([frame[same], new[new["metric"] == "variance_ratio"]], ignore_index=True)
    key = (cfg["dataset"], cfg["arch"], float(cfg["width"]), tap)
    return _curves(curves, key, Path(out).parent / FIGURES_DIR)


def plot_all_curves(frame: pd.DataFrame, figures: Path) -> list[Path]:
    """`plot_curves`' figure of each dataset/arch/width/tap in `frame`, from its rows alone.

    The report draws these after the merge: a bench's analysis job drew its copy from whatever
    the results file held while the job ran (other models' older rows, or none yet), and a
    report must depend on nothing but its results file.
    """
    rows = frame[(frame["experiment"] == "rank") & (frame["metric"] == "variance_ratio")]
    by_key = rows.groupby(["dataset", "arch", "width", "tap"], sort=True)
    return [_curves(curves, key, figures) for key, curves in by_key]


def _curves(curves: pd.DataFrame, key: tuple[str, str, float, str], figures: Path) -> Path:
    """One line per model (method, seed, checkpoint) of `curves`, written into `figures`."""
    dataset, arch, width, tap = key
    fig = Figure(figsize=(5, 3.5))
    ax = fig.add_subplot()
    for (method, seed, _), group in curves.groupby(["method", "seed", "checkpoint"], sort=True):
        group = group.sort_values("steps")
        ax.plot(group["steps"], group["value"], label=f"{method} (seed {seed})")
    ax.set_xscale("log")
    ax.set_xlabel("number of singular values k")
    ax.set_ylabel("variance ratio")
    ax.set_ylim(0, 1.01)
    ax.set_title(f"{dataset} {arch} w{width:g} @ {tap}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    stem = safe_stem("rank", dataset, arch, f"w{width:g}", tap)
    return write_figure(fig, figures / f"{stem}.png")


RANK = Analysis(
    name="rank",
    summary="variance ratio of a tap's activations: curve, rank99, rank95, Fig. 2 PNG",
    run=run_rank,
    options={"exact_max": number(Seed), "k": number(Count)},  # exact_max 0: always randomized
)
