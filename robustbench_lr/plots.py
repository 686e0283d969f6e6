"""Figures drawn from the results file (matplotlib, Agg): one function per paper figure.

Per-checkpoint figures (cushion histograms, scatter plots) are written by the analyses
themselves; the figures here overlay *models* (N-LR vs LR vs the rest), which only the results
file can do. Each function returns the path it wrote, or None when the run has no data for it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from robustbench_lr.io import atomic_write  # noqa: E402
from robustbench_lr.registry import Registry  # noqa: E402

FigureFn = Callable[[pd.DataFrame, Path], "Path | None"]
FIGURES: Registry[FigureFn] = Registry("figure")


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return path


def _model_label(row: pd.Series) -> str:
    return f"{row['arch']} {row['method']}"


def _panels(frame: pd.DataFrame, by: list[str]) -> list[tuple[tuple, pd.DataFrame]]:
    return [(k if isinstance(k, tuple) else (k,), g) for k, g in frame.groupby(by, sort=True)]


@FIGURES.register("fig2_variance_ratio")
def variance_ratio(frame: pd.DataFrame, out_dir: Path) -> Path | None:
    """Fig. 2: variance ratio vs number of singular values, one line per model (seed 0), per tap."""
    rows = frame[(frame["experiment"] == "rank") & (frame["metric"] == "variance_ratio")]
    if rows.empty:
        return None
    rows = rows[rows["seed"] == rows["seed"].min()]
    panels = _panels(rows, ["dataset", "arch", "param"])
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (key, group) in zip(axes[0], panels, strict=True):
        for method, curve in group.groupby("method", sort=True):
            curve = curve.sort_values("steps")
            limit = curve[curve["steps"] <= 60]
            ax.plot(limit["steps"], limit["value"], label=method)
        ax.set_title(f"{key[0]} {key[1]} @ {key[2]}")
        ax.set_xlabel("number of singular values k")
        ax.set_ylabel("variance ratio")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, out_dir / "fig2_variance_ratio.png")


def render_all(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Every figure the results can fill, written under `out_dir/figures/`."""
    written = []
    for name in FIGURES:
        path = FIGURES.get(name)(frame, out_dir / "figures")
        if path is not None:
            written.append(path)
    return written
