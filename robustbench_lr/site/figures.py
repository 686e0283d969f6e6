"""The report's PNG figures, sorted by kind and by the model they belong to.

Per-model figures are named by `analysis.plotting.figure_stem` (`<kind>_<model>_seed<k>_…`);
the same function gives the model part here, so a figure is found by the name its writer
chose, not by a second naming rule. Figures without a model part (`fig2_…`) overlay models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from robustbench_lr.analysis.plotting import FIGURES_DIR, figure_stem

ACROSS_MODELS = "across models"


@dataclass(frozen=True)
class Figure:
    """One PNG: its path relative to the report folder, its kind and owner (slug, seed)."""

    path: str
    kind: str
    model: str = ""  # the model page's slug ('' for figures across models)
    seed: int | None = None


def find(root: Path, owners: dict[str, tuple[dict, list[int]]]) -> list[Figure]:
    """Every PNG under `root/figures`, each with its kind and, if it has one, its model.

    `owners` maps a model's slug to its identifying fields and its seeds.
    """
    # A model's part of a figure's name: the stem of a one-letter kind, less that letter.
    markers = {
        figure_stem("k", {**fields, "seed": seed})[1:]: (slug, seed)
        for slug, (fields, seeds) in owners.items()
        for seed in seeds
    }
    found = []
    for png in sorted((root / FIGURES_DIR).glob("*.png")):
        stem, path = png.stem, png.relative_to(root).as_posix()
        figure = Figure(path, ACROSS_MODELS)
        for marker, (slug, seed) in markers.items():
            at = stem.find(marker)
            end = at + len(marker)
            if at > 0 and (end == len(stem) or stem[end] == "_"):
                figure = Figure(path, stem[:at], slug, seed)
                break
        found.append(figure)
    return found
