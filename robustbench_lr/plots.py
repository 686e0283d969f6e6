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

from robustbench_lr.files import atomic_write  # noqa: E402
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


def _line_panels(
    rows: pd.DataFrame,
    x: str,
    y_metric: str,
    x_metric: str | None,
    title: str,
    xlabel: str,
    ylabel: str,
    path: Path,
) -> Path | None:
    """One panel per (dataset, arch, box): a line per method, averaged over seeds."""
    if rows.empty:
        return None
    panels = _panels(rows, ["dataset", "arch", "box"])
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (key, group) in zip(axes[0], panels, strict=True):
        for method, per_method in group.groupby("method", sort=True):
            ys = per_method[per_method["metric"] == y_metric].groupby(x)["value"].mean()
            if x_metric is None:
                xs = ys.index.to_series()
            else:
                xs = (
                    per_method[per_method["metric"] == x_metric]
                    .groupby(x)["value"]
                    .mean()
                    .reindex(ys.index)
                )
            ax.plot(xs.values, ys.values, marker="o", ms=3, label=method)
        ax.set_title(f"{key[0]} {key[1]} {key[2]}-box {title}".strip())
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


@FIGURES.register("fig4a_accuracy_vs_rho")
def accuracy_vs_rho(frame: pd.DataFrame, out_dir: Path) -> Path | None:
    """Fig. 4a / 9: IFSGM accuracy against the ρ its examples needed, over the ε sweep (20 steps)."""
    rows = frame[(frame["experiment"] == "attack") & (frame["attack"] == "ifsgm")]
    rows = rows[rows["steps"] == rows["steps"].max()] if not rows.empty else rows
    return _line_panels(
        rows,
        "eps",
        "acc",
        "rho",
        "IFSGM",
        "ρ = ‖x_a − x‖₂ / ‖x‖₂",
        "accuracy (%)",
        out_dir / "fig4a_accuracy_vs_rho.png",
    )


@FIGURES.register("fig_accuracy_vs_eps")
def accuracy_vs_eps(frame: pd.DataFrame, out_dir: Path) -> Path | None:
    """Tables 1-2 as curves: IFSGM accuracy against ε (most steps), one line per method."""
    rows = frame[(frame["experiment"] == "attack") & (frame["attack"] == "ifsgm")]
    rows = rows[rows["steps"] == rows["steps"].max()] if not rows.empty else rows
    rows = rows.assign(eps=rows["eps"] * 255)
    return _line_panels(
        rows,
        "eps",
        "acc",
        None,
        "IFSGM",
        "ε (×1/255)",
        "accuracy (%)",
        out_dir / "fig_accuracy_vs_eps.png",
    )


@FIGURES.register("fig11_step_curves")
def step_curves(frame: pd.DataFrame, out_dir: Path) -> Path | None:
    """Fig. 11 (D.4): instantaneous vs cumulative accuracy after each attack step (seed 0)."""
    rows = frame[frame["experiment"] == "step-curve"]
    if rows.empty:
        return None
    rows = rows[rows["seed"] == rows["seed"].min()]
    panels = _panels(rows, ["dataset", "arch", "box"])
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (key, group) in zip(axes[0], panels, strict=True):
        for index, (method, per_method) in enumerate(group.groupby("method", sort=True)):
            color = f"C{index}"
            for metric, style in (("acc_instant", "-"), ("acc_cumulative", "--")):
                curve = per_method[per_method["metric"] == metric].groupby("steps")["value"].mean()
                ax.plot(
                    curve.index,
                    curve.values,
                    style,
                    color=color,
                    label=f"{method} {metric.removeprefix('acc_')}",
                )
        eps = group["eps"].iloc[0] * 255
        ax.set_title(f"{key[0]} {key[1]} {key[2]}-box, ε={eps:g}/255")
        ax.set_xlabel("attack step")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, out_dir / "fig11_step_curves.png")


def render_all(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Every figure the results can fill, written under `out_dir/figures/`."""
    written = []
    for name in FIGURES:
        path = FIGURES.get(name)(frame, out_dir / "figures")
        if path is not None:
            written.append(path)
    return written
