"""Figures drawn from the results file (matplotlib, Agg): one function per paper figure.

Per-checkpoint figures (cushion histograms, scatter plots) are written by the analyses
themselves; the figures here overlay *models* (N-LR vs LR vs the rest), which only the results
file can do, the rank analysis' per-architecture curves among them. Each function returns the
path it wrote, or None when the run has no data for it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from robustbench_lr import attacks  # noqa: E402
from robustbench_lr.analysis.examples import examples_figure, report_blocks
from robustbench_lr.analysis.rank import plot_all_curves
from robustbench_lr.corruptions import CORRUPTIONS
from robustbench_lr.files import atomic_write  # noqa: E402
from robustbench_lr.registry import Registry  # noqa: E402

FigureFn = Callable[[pd.DataFrame, Path], "Path | None"]
FIGURES: Registry[FigureFn] = Registry("figure")


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return path


PanelFn = Callable[[plt.Axes, tuple, pd.DataFrame], None]


def _figure(rows: pd.DataFrame, by: list[str], draw: PanelFn, path: Path) -> Path | None:
    """One panel per group of `by`, side by side, each drawn by `draw(ax, key, group)`, saved
    at `path`; None when there are no rows."""
    if rows.empty:
        return None
    groups = [(k if isinstance(k, tuple) else (k,), g) for k, g in rows.groupby(by, sort=True)]
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 3.6), squeeze=False)
    for ax, (key, group) in zip(axes[0], groups, strict=True):
        draw(ax, key, group)
    return _save(fig, path)


def _mean_curve(rows: pd.DataFrame, metric: str, x: str) -> pd.Series:
    """The mean `value` of `metric` at each `x`."""
    return rows[rows["metric"] == metric].groupby(x)["value"].mean()


def _label_axes(ax: plt.Axes, title: str, xlabel: str, ylabel: str, legend_size: int = 8) -> None:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)


@FIGURES.register("fig2_variance_ratio")
def variance_ratio(frame: pd.DataFrame, out_dir: Path) -> Path | None:
    """Fig. 2: variance ratio vs number of singular values, one line per model (seed 0), per tap."""
    rows = frame[(frame["experiment"] == "rank") & (frame["metric"] == "variance_ratio")]

    def draw(ax: plt.Axes, key: tuple, group: pd.DataFrame) -> None:
        for method, curve in group.groupby("method", sort=True):
            curve = curve.sort_values("steps")
            limit = curve[curve["steps"] <= 60]
            ax.plot(limit["steps"], limit["value"], label=method)
        title = f"{key[0]} {key[1]} @ {key[2]}"
        _label_axes(ax, title, "number of singular values k", "variance ratio")

    first_seed = rows[rows["seed"] == rows["seed"].min()]
    path = out_dir / "fig2_variance_ratio.png"
    return _figure(first_seed, ["dataset", "arch", "tap"], draw, path)


def _sweep_panels(
    frame: pd.DataFrame, x_metric: str | None, xlabel: str, path: Path
) -> Path | None:
    """IFSGM accuracy over the ε sweep (most steps run), one panel per (dataset, arch, box) and a
    line per method averaged over seeds; x is ε itself, or the mean of `x_metric` at each ε."""
    attack = attacks.filling("eps_sweep")
    rows = frame[(frame["experiment"] == "attack") & (frame["attack"] == attack)]

    def draw(ax: plt.Axes, key: tuple, group: pd.DataFrame) -> None:
        for method, per_method in group.groupby("method", sort=True):
            ys = _mean_curve(per_method, "acc", "eps")
            if x_metric is None:
                xs = ys.index.to_series()
            else:
                xs = _mean_curve(per_method, x_metric, "eps").reindex(ys.index)
            ax.plot(xs.values, ys.values, marker="o", ms=3, label=method)
        _label_axes(ax, f"{key[0]} {key[1]} {key[2]}-box IFSGM", xlabel, "accuracy (%)")

    most_steps = rows[rows["steps"] == rows["steps"].max()]
    return _figure(most_steps, ["dataset", "arch", "box"], draw, path)


@FIGURES.register("fig4a_accuracy_vs_rho")
def accuracy_vs_rho(frame: pd.DataFrame, out_dir: Path) -> Path | None:
    """Fig. 4a / 9: IFSGM accuracy against the ρ its examples needed, over the ε sweep (20 steps)."""
    path = out_dir / "fig4a_accuracy_vs_rho.png"
    return _sweep_panels(frame, "rho", "ρ = ‖x_a − x‖₂ / ‖x‖₂", path)


@FIGURES.register("fig_accuracy_vs_eps")
def accuracy_vs_eps(frame: pd.DataFrame, out_dir: Path) -> Path | None:
    """Tables 1-2 as curves: IFSGM accuracy against ε (most steps), one line per method."""
    in_255 = frame.assign(eps=frame["eps"] * 255)
    return _sweep_panels(in_255, None, "ε (×1/255)", out_dir / "fig_accuracy_vs_eps.png")


@FIGURES.register("fig11_step_curves")
def step_curves(frame: pd.DataFrame, out_dir: Path) -> Path | None:
    """Fig. 11 (D.4): instantaneous vs cumulative accuracy after each attack step (seed 0)."""
    rows = frame[frame["experiment"] == "step-curve"]

    def draw(ax: plt.Axes, key: tuple, group: pd.DataFrame) -> None:
        for index, (method, per_method) in enumerate(group.groupby("method", sort=True)):
            for metric, style in (("acc_instant", "-"), ("acc_cumulative", "--")):
                curve = _mean_curve(per_method, metric, "steps")
                label = f"{method} {metric.removeprefix('acc_')}"
                ax.plot(curve.index, curve.values, style, color=f"C{index}", label=label)
        eps = group["eps"].iloc[0] * 255
        title = f"{key[0]} {key[1]} {key[2]}-box, ε={eps:g}/255"
        _label_axes(ax, title, "attack step", "accuracy (%)", legend_size=7)

    first_seed = rows[rows["seed"] == rows["seed"].min()]
    return _figure(first_seed, ["dataset", "arch", "box"], draw, out_dir / "fig11_step_curves.png")


@FIGURES.register("fig_corruption_severity")
def corruption_severity(frame: pd.DataFrame, out_dir: Path) -> Path | None:
    """Common corruptions: accuracy against severity, one panel per dataset and family
    (noise, blur, weather, digital), one line per method (mean over its corruptions, models
    and seeds)."""
    rows = frame[(frame["experiment"] == "corruption") & (frame["metric"] == "acc")]
    rows = rows.assign(
        family=rows["attack"].map(CORRUPTIONS), severity=rows["severity"].astype(int)
    )

    def draw(ax: plt.Axes, key: tuple, group: pd.DataFrame) -> None:
        for method, per_method in group.groupby("method", sort=True):
            curve = per_method.groupby("severity")["value"].mean()
            ax.plot(curve.index, curve.values, "o-", label=method)
        ax.set_xticks(range(1, 6))
        _label_axes(ax, f"{key[0]} {key[1]}", "severity", "accuracy (%)")

    return _figure(rows, ["dataset", "family"], draw, out_dir / "fig_corruption_severity.png")


@FIGURES.register("fig3_deepfool_examples")
def deepfool_examples(frame: pd.DataFrame, out_dir: Path) -> Path | None:
    """Fig. 3 / 10: per model, test images above the images DeepFool made of them.

    The pixels come from the npz files the `deepfool-examples` analysis wrote into the figures
    folder beside the results file (`out_dir` when the report renders beside it).
    """
    blocks = report_blocks(frame, out_dir)
    if not blocks:
        return None
    return _save(examples_figure(blocks), out_dir / "fig3_deepfool_examples.png")


def render_all(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Every figure the results can fill, written under `out_dir/figures/`: the registered
    ones, then the rank analysis' per-architecture curves redrawn from `frame`."""
    paths = [FIGURES.get(name)(frame, out_dir / "figures") for name in FIGURES]
    curves = plot_all_curves(frame, out_dir / "figures")
    return [path for path in paths if path is not None] + curves
