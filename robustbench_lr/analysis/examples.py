"""DeepFool's adversarial images beside the originals (Fig. 3, Fig. 10, Appendix D.3).

The paper shows, for each model, a row of test images and below it the images DeepFool made
of them: the LR models' are visibly more perturbed (Table 3's 4-11× larger ρ, seen). The
images are the first `--option images=8` of the test set (of the `--n` subset when given),
so every model of a dataset shows the same ones; DeepFool runs white-box with its registry
defaults (50 steps, overshoot 0.02), as in Table 3.

Pixels have no place in the results file, so the analysis keeps them in an npz beside its
figures (`figures/deepfool-examples_<model>.npz`, named by the model's results columns); the
report's Fig. 3 (`plots.py`) stacks every model's pair of rows from those files. The analysis
also draws its own model's pair of rows.

Rows (experiment `deepfool-examples`, attack columns of the DeepFool run, box `white`):
`rho` = ‖x_adv − x‖₂ / ‖x‖₂ per image (param `image=<i>`, its position in the test set used,
n = 1).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from robustbench_lr.analysis.adversarial import AttackRun
from robustbench_lr.analysis.base import Analysis, AnalysisOptions, number
from robustbench_lr.analysis.plotting import FIGURES_DIR, figure_stem, save_figure
from robustbench_lr.attacks import resolve, rho
from robustbench_lr.evaluation import predict
from robustbench_lr.experiments import Outcome
from robustbench_lr.files import atomic_write
from robustbench_lr.settings import Count
from robustbench_lr.target import Target

log = logging.getLogger(__name__)

EXPERIMENT = "deepfool-examples"
IMAGES = 8  # images per model, as many as Fig. 10 shows
MODEL_COLUMNS = ["dataset", "arch", "width", "method", "seed"]


@dataclass(frozen=True)
class Examples:
    """One model's images: originals `x` and DeepFool's `x_adv` (k × C × H × W in [0, 1]),
    the true labels, the labels the model gives `x_adv`, and each image's ρ."""

    label: str
    x: np.ndarray
    x_adv: np.ndarray
    y: np.ndarray
    pred: np.ndarray
    rho: np.ndarray


def examples_path(figures: Path, fields: dict[str, Any]) -> Path:
    """Where the npz of a model's images lies in a `figures/` folder: named by the columns that
    identify the model in the results file, so the report finds it from a row."""
    return figures / f"{figure_stem(EXPERIMENT, fields)}.npz"


ARRAYS = ("x", "x_adv", "y", "pred", "rho")


def save_examples(path: Path, examples: Examples) -> Path:
    """Write a model's images as an npz at `path`, atomically."""

    def write(tmp: Path) -> None:
        with tmp.open("wb") as handle:  # a handle: given a path, numpy would append ".npz"
            np.savez(handle, **{k: getattr(examples, k) for k in ARRAYS})

    return atomic_write(path, write)


def load_examples(path: Path, label: str) -> Examples:
    """The images an analysis run saved at `path`, shown under `label`."""
    with np.load(path) as saved:
        return Examples(label, *(saved[k] for k in ARRAYS))


def run_examples(target: Target, options: AnalysisOptions) -> Outcome:
    """Fig. 3 / 10 for one model: DeepFool on the first test images, their ρ, the images."""
    model, data = target.model, target.data
    k = options.get("images", int, IMAGES)
    if k < 1:
        raise ValueError(f"--option images= must be at least 1, got {k}")
    x, y = data.x_test[:k], data.y_test[:k]
    run = AttackRun("deepfool", *resolve("deepfool"))
    x_adv = run.craft(model, x, y).cpu()
    fields = target.columns
    examples = Examples(
        f"{fields['arch']} {fields['method']}",
        x.numpy(),
        x_adv.numpy(),
        y.numpy(),
        predict(model, x_adv).cpu().numpy(),
        rho(x_adv, x).double().numpy(),
    )
    base = {**fields, "experiment": EXPERIMENT, "box": "white", **run.fields(), "metric": "rho"}
    rows = [
        {**base, "param": f"image={i}", "value": float(v), "n": 1}
        for i, v in enumerate(examples.rho)
    ]
    figures = Path(options.results).parent / FIGURES_DIR
    npz = save_examples(examples_path(figures, fields), examples)
    png = save_figure(examples_figure([examples]), options.results, figure_stem(EXPERIMENT, fields))
    wrong = int((examples.pred != examples.y).sum())
    lines = [
        f"{target.checkpoint}: {wrong} of {len(y)} images misclassified after DeepFool, "
        f"mean ρ = {float(examples.rho.mean()):.3g}"
    ]
    return Outcome(rows, lines, [npz, png])


def _image(array: np.ndarray) -> np.ndarray:
    """C × H × W in [0, 1] as imshow wants it: H × W (grey) or H × W × 3."""
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)


def examples_figure(blocks: list[Examples]) -> Figure:
    """Fig. 10's layout: per model, its originals on one row and DeepFool's images below,
    each adversarial titled with the label it gets and its ρ."""
    cols = max(len(b.x) for b in blocks)
    fig = Figure(figsize=(1.3 * cols, 2.9 * len(blocks)))
    axes = fig.subplots(2 * len(blocks), cols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for index, block in enumerate(blocks):
        top, bottom = axes[2 * index], axes[2 * index + 1]
        for i in range(len(block.x)):
            top[i].imshow(_image(block.x[i]), cmap="gray", vmin=0, vmax=1)
            top[i].set_title(f"label {block.y[i]}", fontsize=7)
            bottom[i].imshow(_image(block.x_adv[i]), cmap="gray", vmin=0, vmax=1)
            bottom[i].set_title(f"→ {block.pred[i]}, ρ={block.rho[i]:.2g}", fontsize=7)
        top[0].text(-0.15, 0.5, block.label, transform=top[0].transAxes, ha="right", fontsize=8)
    return fig


def report_blocks(frame: pd.DataFrame, figures: Path) -> list[Examples]:
    """Every model (its lowest seed) with DeepFool examples in `frame`, in the results file's
    order, read from the npz files in `figures`; a model whose file is missing is skipped
    with a warning (a results file copied without its figures folder)."""
    rows = frame[frame["experiment"] == EXPERIMENT]
    models = rows[MODEL_COLUMNS].drop_duplicates()
    models = models[models["seed"] == models.groupby(MODEL_COLUMNS[:-1])["seed"].transform("min")]
    blocks = []
    for fields in models.to_dict("records"):
        path = examples_path(figures, fields)
        if not path.is_file():
            log.warning("no DeepFool images at %s; the model is left out of Fig. 3", path)
            continue
        label = f"{fields['dataset']} {fields['arch']} {fields['method']}"
        blocks.append(load_examples(path, label))
    return blocks


DEEPFOOL_EXAMPLES = Analysis(
    name=EXPERIMENT,
    summary="DeepFool's images of the first test images beside the originals (npz + PNG), Fig. 3/10",
    run=run_examples,
    crafts_adversarial=True,
    options={"images": number(Count)},
)
