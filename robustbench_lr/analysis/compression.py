"""Hybrid max-margin models (Table 5, Appendix C.2) and their robustness (Table 6, Appendix D.5).

A hybrid model keeps the trained network up to a tap, then replaces the rest by
standardize -> optional PCA to d dimensions -> linear max-margin classifier, all fitted on the
*training* set's features (C.2: "PCA, with standard pre-processing of scaling the input").
The classifier is the paper's: SGD on the hinge loss with an L2 coefficient of 0.01 and the
learning rate η₀/(1 + αt) — scikit-learn's `SGDClassifier(loss="hinge", alpha=0.01,
learning_rate="optimal")`, which the paper's footnote 9 points to. Seeds fix SGD's shuffling and
the randomized PCA, so the numbers repeat exactly on CPU.

Rows (experiment `hybrid`, column `tap`; column `dim` = d, `inf` for no PCA, which keeps every
dimension): `hybrid_acc` (test accuracy, %), `network_acc` (the network's own, no `dim`),
`params_replaced` (parameters of every stage after the tap: for `pre_block4` the 4th block and
the FC, Table 5b), `params_linear` (coefficients + intercepts of the linear model) and, with
PCA, `params_pca` (the d × m projection). Rows of experiment `maxmargin` are described at
`run_maxmargin`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import torch

from robustbench_lr import models
from robustbench_lr.analysis.adversarial import (
    ATTACK_OPTIONS,
    MATCHED_BOX,
    attack_runs,
    attack_source,
    matched_examples,
)
from robustbench_lr.analysis.base import Analysis, AnalysisOptions, analysis_tap
from robustbench_lr.data import Data
from robustbench_lr.evaluation import predict
from robustbench_lr.experiments import Outcome
from robustbench_lr.models import StagedNet
from robustbench_lr.target import Target

if TYPE_CHECKING:  # scikit-learn is imported when an analysis runs, not when the CLI starts
    from sklearn.pipeline import Pipeline

FULL = 0  # a --dims entry meaning "no PCA: the whole representation"
HINGE_ALPHA = 0.01  # the paper's L2 coefficient (Appendix C)


def dim_label(dim: int) -> str:
    """How a target dimension is shown to a reader: `full` or the number."""
    return "full" if dim == FULL else str(dim)


def dim_value(dim: int) -> float:
    """A target dimension as the results' `dim` column holds it: no PCA keeps every dimension,
    so FULL is `inf` (a number that orders after every projection), else the number."""
    return math.inf if dim == FULL else float(dim)


def default_dims(arch: str, tap: str) -> tuple[int, ...]:
    """The paper's dimensions: Tables 5b and 8 at the deep tap, else Table 5a."""
    return (FULL, 20, 10) if tap == models.deep_tap(arch) else (FULL, 10, 5)


def hybrid_pipeline(dim: int, seed: int) -> Pipeline:
    """Standardize -> PCA(dim) unless `dim` is FULL -> the paper's linear max-margin classifier."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import SGDClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    pca = [] if dim == FULL else [("pca", PCA(n_components=dim, random_state=seed))]
    svm = SGDClassifier(loss="hinge", alpha=HINGE_ALPHA, learning_rate="optimal", random_state=seed)
    return Pipeline([("scale", StandardScaler()), *pca, ("svm", svm)])


def fit_hybrid(features: np.ndarray, labels: np.ndarray, dim: int, seed: int) -> Pipeline:
    """The hybrid head fitted on training features only (the test set never informs PCA)."""
    n, m = features.shape
    if dim != FULL and not 0 < dim <= min(n, m):
        raise ValueError(
            f"--dims {dim}: PCA can give 1..{min(n, m)} dimensions here "
            f"({m} features, {n} training images); use 'full' for no PCA"
        )
    return hybrid_pipeline(dim, seed).fit(features, labels)


def fit_heads(
    features: np.ndarray, labels: np.ndarray, dims: Sequence[int], seed: int
) -> dict[int, Pipeline]:
    """One hybrid head per target dimension, all on the same training features."""
    return {dim: fit_hybrid(features, labels, dim, seed) for dim in dims}


def tap_features(model: StagedNet, x: torch.Tensor, tap: str) -> np.ndarray:
    """Flattened activations at `tap` (eval mode, batched) as a float32 array for scikit-learn."""
    return models.activations(model, x, [tap])[tap].numpy()


def accuracy_percent(pipeline: Pipeline, features: np.ndarray, labels: np.ndarray) -> float:
    """Test accuracy of a fitted hybrid head in percent (the unit of Table 5)."""
    return 100.0 * float(np.mean(pipeline.predict(features) == labels))


def params_after_tap(model: StagedNet, tap: str) -> int:
    """Parameters of everything the hybrid head replaces: the stages after `tap` and any
    prediction-path transform (Bottle-LR) at a later tap."""
    start = model.tap_index[tap]
    stages = list(model.stages.values())[start:]
    later = [t for name, t in model.tap_transforms.items() if model.tap_index[name] > start]
    return sum(p.numel() for module in [*stages, *later] for p in module.parameters())


def hybrid_rows(
    model: StagedNet, data: Data, tap: str, dims: Sequence[int], seed: int, base: dict
) -> tuple[list[dict], dict[int, Pipeline]]:
    """Table 5 rows for one model and tap, and the fitted heads by dimension (for Table 6)."""
    train, test = tap_features(model, data.x_train, tap), tap_features(model, data.x_test, tap)
    y_train, y_test = data.y_train.numpy(), data.y_test.numpy()
    network = 100.0 * float((predict(model, data.x_test).cpu() == data.y_test).float().mean())
    base = {**base, "tap": tap}
    rows = [
        {**base, "metric": "network_acc", "value": network, "n": len(y_test)},
        {**base, "metric": "params_replaced", "value": params_after_tap(model, tap)},
    ]
    heads = fit_heads(train, y_train, dims, seed)
    for dim, head in heads.items():
        projected = {**base, "dim": dim_value(dim)}
        accuracy = accuracy_percent(head, test, y_test)
        rows.append({**projected, "metric": "hybrid_acc", "value": accuracy, "n": len(y_test)})
        svm = head.named_steps["svm"]
        params = int(svm.coef_.size + svm.intercept_.size)
        rows.append({**projected, "metric": "params_linear", "value": params})
        if dim != FULL:
            params = int(head.named_steps["pca"].components_.size)
            rows.append({**projected, "metric": "params_pca", "value": params})
    return rows, heads


def run_hybrid(target: Target, options: AnalysisOptions, default_tap: models.TapRole) -> Outcome:
    """Hybrid accuracy per PCA dimension at a tap (default: `default_tap(arch)`). With
    `models.last_tap`, the layer before the last FC: Table 5a (`hybrid`). With `models.deep_tap`,
    Tables 5b and 8 (`hybrid-deep`): the ResNet hybrid before block 4 replaces the 4th block and
    the FC by one linear model, the VGG19 one sits before the third-last FC layer; dims default
    to the paper's full, 20, 10."""
    model = target.model
    arch = target.meta["config"]["arch"]
    tap = analysis_tap(model, options, arch, default_tap)
    dims = tuple(options.dims) or default_dims(arch, tap)
    base = {**target.columns, "experiment": "hybrid"}
    rows, _ = hybrid_rows(model, target.data, tap, dims, options.seed, base)
    by_metric = {(r["metric"], r.get("dim")): r["value"] for r in rows}
    lines = [
        f"{target.checkpoint} @ {tap}: network {by_metric[('network_acc', None)]:.2f}%, hybrid "
        + ", ".join(
            f"d={dim_label(d)} {by_metric[('hybrid_acc', dim_value(d))]:.2f}%" for d in dims
        )
        + f"; the head replaces {by_metric[('params_replaced', None)]:.0f} parameters"
    ]
    return Outcome(rows, lines)


def fooled_mask(
    model: StagedNet, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """Examples the attack fooled: classified correctly when clean, wrongly when attacked."""
    return (predict(model, x).cpu() == y) & (predict(model, x_adv).cpu() != y)


def maxmargin_accuracy(
    head: Pipeline,
    model: StagedNet,
    tap: str,
    x_adv: torch.Tensor,
    y: torch.Tensor,
    fooled: torch.Tensor,
) -> tuple[float, int]:
    """Fraction of the examples that fooled the network (Table 6 counts only those) that
    the hybrid classifies correctly, and their count."""
    n = int(fooled.sum())
    if n == 0:
        return float("nan"), 0
    features = tap_features(model, x_adv[fooled], tap)
    return float(np.mean(head.predict(features) == y[fooled].numpy())), n


def run_maxmargin(target: Target, options: AnalysisOptions) -> Outcome:
    """Table 6: accuracy of the hybrid max-margin model on adversarial examples that fooled
    the network (white-box by default, black-box with `--option source=CHECKPOINT`).

    The examples are crafted on the test subset with each of `--option attacks=` (budget
    `--option eps=`, `--option steps=`); those the analysed network classified correctly when
    clean and wrongly when attacked go through the hybrid of Table 5 (`--dims`, default full),
    and the fraction it classifies correctly is the row's value (metric `maxmargin_acc`, a
    fraction in [0, 1] like Table 6, `n` = the number of fooled examples).

    The paper's N-LR row follows another protocol (D.5): so that the N-LR hybrid faces as much
    noise as the 1-LR hybrid, its examples are crafted with the N-LR network's gradients but
    iterated until they fool the *1-LR* network. `--option stop_on=<1-LR checkpoint>` on an
    N-LR checkpoint runs exactly that (`adversarial.matched_examples`; box `matched`): an
    example counts when it fooled both networks. Black-box rows (`source=`) of a 1-LR
    checkpoint with `source=<N-LR>` are the paper's black-box 1-LR row.
    """
    model, data = target.model, target.data
    arch = target.meta["config"]["arch"]
    tap = analysis_tap(model, options, arch)
    dims = tuple(options.dims) or (FULL,)
    source = attack_source(target, options, matched=True)
    runs = attack_runs(options, "deepfool,ill,ifsgm", "8/255")
    train = tap_features(model, data.x_train, tap)
    heads = fit_heads(train, data.y_train.numpy(), dims, options.seed)
    base = {**target.columns, "experiment": "maxmargin", **source.fields()}
    rows, lines = [], []
    x, y = data.x_test, data.y_test
    for run in runs:
        fields = {**base, **run.fields(), "tap": tap}
        if source.judge is None:
            x_adv = run.craft(source.model, x, y)
            fooled = fooled_mask(model, x, x_adv, y)
        else:  # the analysed model's gradients, the judge's success criterion
            x_adv = matched_examples(run, model, source.judge, x, y)
            fooled = fooled_mask(model, x, x_adv, y) & fooled_mask(source.judge, x, x_adv, y)
        for dim, head in heads.items():
            value, n = maxmargin_accuracy(head, model, tap, x_adv, y, fooled)
            rows.append(
                {**fields, "dim": dim_value(dim), "metric": "maxmargin_acc", "value": value, "n": n}
            )
            lines.append(
                f"{run.name} ({source.box}-box, eps={fields['eps']:.4g}) @ {tap} "
                f"d={dim_label(dim)}: hybrid correct on {value:.3f} of {n} fooled examples"
            )
    return Outcome(rows, lines)


HYBRID = Analysis(
    name="hybrid",
    summary="hybrid max-margin model (tap -> PCA -> linear SVM) accuracy per --dims, Table 5a",
    run=partial(run_hybrid, default_tap=models.last_tap),
    suite_models_only=True,
    needs_train=True,
)
HYBRID_DEEP = replace(
    HYBRID,
    name="hybrid-deep",
    summary="the hybrid at the deeper tap (before ResNet block 4), with parameter counts, Table 5b",
    run=partial(run_hybrid, default_tap=models.deep_tap),
)
MAXMARGIN = Analysis(
    name="maxmargin",
    summary="hybrid max-margin accuracy on adversarial examples that fooled the network, Table 6",
    run=run_maxmargin,
    crafts_adversarial=True,
    boxes=("white", "black", MATCHED_BOX),
    needs_train=True,
    options={**ATTACK_OPTIONS, "stop_on": str},
)
