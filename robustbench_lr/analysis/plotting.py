"""Figures of the representation analyses: a `figures/` folder beside the results file.

Figures are built as plain `matplotlib.figure.Figure` objects (Agg canvas) rather than through
pyplot, so an analysis leaves no global plotting state behind and needs no display.
"""

from __future__ import annotations

import re
from pathlib import Path

from matplotlib.figure import Figure

from robustbench_lr.files import atomic_write

FIGURES_DIR = "figures"


def safe_stem(*parts: str) -> str:
    """`parts` joined by `_` as a file-name stem: every run of other characters becomes `-`."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "-", "_".join(parts))


def figure_stem(kind: str, cfg: dict, *parts: str) -> str:
    """A file-name-safe stem naming the analysis, the model and the setting of one figure."""
    model = f"{cfg['dataset']}_{cfg['arch']}_w{float(cfg['width']):g}_{cfg['method']}"
    return safe_stem(kind, model, f"seed{cfg['seed']}", *parts).strip("-")


def save_figure(fig: Figure, results_path: Path, stem: str) -> Path:
    """Write `fig` as `<results folder>/figures/<stem>.png`, atomically; returns the path."""
    return write_figure(fig, Path(results_path).parent / FIGURES_DIR / f"{stem}.png")


def write_figure(fig: Figure, path: Path) -> Path:
    """Write `fig` as the PNG `path`, atomically; returns the path."""
    fig.tight_layout()
    # No "Software" entry, so the bytes do not change with the matplotlib version.
    atomic_write(
        path, lambda tmp: fig.savefig(tmp, dpi=110, format="png", metadata={"Software": None})
    )
    return path
