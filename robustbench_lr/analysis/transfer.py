"""Transfer to another labelling of the same images (Table 7c, Appendix C.1).

The paper takes the 2048-d features of a ResNet50 trained on CIFAR-100's 20 coarse labels and
trains the hybrid's linear max-margin model on the 100 fine labels of the same images; the
surprise is how much a low-rank representation keeps of what its own task did not need.
Any pair of datasets holding the same images in the same order works: the model's own
dataset gives the images, `--option labels=DATASET` (a registry name or `npz:PATH`) the
labels to learn (without it, the dataset entry's `other_labelling`: cifar100-coarse <->
cifar100; digits relabelled by parity -> digits needs `labels=`). A model whose dataset has no
known second labelling and no `labels=` gets no rows and a line saying so (the bench runs
every analysis on every model). The images are compared element by element first, since
different images would make the number meaningless. Training and test subsets (the checkpoint's
limits, `--n`) are drawn once, stratified by the model's own labels, and cut both labellings at
the same indices: the analysis reads both whole datasets, not the target's test subset.

Rows (experiment `transfer`): `hybrid_acc` (test accuracy, %, n = test images) for the model's
own labels and for the new ones, columns `tap` and `dim` (`--dims`, default full = `inf`), param
`labels=<dataset label>` (an npz is named by `data.dataset_label`, never by its path). The
model's own dataset must still hold the content it was trained on (`data.load_for_checkpoint`).
"""

from __future__ import annotations

from robustbench_lr.analysis.base import Analysis, AnalysisOptions, analysis_tap
from robustbench_lr.analysis.compression import (
    FULL,
    accuracy_percent,
    dim_label,
    dim_value,
    fit_heads,
    tap_features,
)
from robustbench_lr.data import (
    DATASETS,
    Data,
    dataset_label,
    load,
    load_for_checkpoint,
    stratified_subset,
)
from robustbench_lr.experiments import Outcome
from robustbench_lr.target import Target


def other_labelling(dataset: str) -> str | None:
    """The registered other labelling of `dataset`'s images (`Dataset.other_labelling`), the
    target when `--option labels=` is not given (the bench); None for an npz or for none."""
    return DATASETS.get(dataset).other_labelling if dataset in DATASETS else None


def same_images(own: Data, other: Data, own_name: str, other_name: str) -> None:
    """Raise unless both datasets hold identical train and test images in the same order."""
    for split in ("x_train", "x_test"):
        a, b = getattr(own, split), getattr(other, split)
        if a.shape != b.shape or not bool((a == b).all()):
            raise ValueError(
                f"{own_name} and {other_name} do not hold the same {split[2:]} images "
                f"({tuple(a.shape)} vs {tuple(b.shape)}); transfer needs one image set "
                "with two labellings"
            )


def run_transfer(target: Target, options: AnalysisOptions) -> Outcome:
    """Table 7c: hybrid accuracy on the model's own labels and on `--option labels=DATASET`."""
    model, meta, checkpoint = target.model, target.meta, target.checkpoint
    cfg = meta["config"]
    labels = options.extra.get("labels", other_labelling(cfg["dataset"]))
    if labels is None:
        known = ", ".join(f"{a} -> {other_labelling(a)}" for a in DATASETS if other_labelling(a))
        skipped = (
            f"{checkpoint}: transfer skipped, no other labelling of {cfg['dataset']} is known "
            f"({known}); pass --option labels=DATASET"
        )
        return Outcome([], [skipped])
    tap = analysis_tap(model, options, cfg["arch"])
    dims = tuple(options.dims) or (FULL,)
    own = load_for_checkpoint(meta, checkpoint, options.load)
    other = load(labels, options.load)  # another dataset: no fingerprint of it was recorded
    same_images(own, other, cfg["dataset"], labels)
    train_limit = cfg.get("train_limit")
    test_limit = options.n if options.n is not None else cfg.get("test_limit")
    train_idx = stratified_subset(own.y_train, train_limit) if train_limit else slice(None)
    test_idx = stratified_subset(own.y_test, test_limit) if test_limit else slice(None)
    train = tap_features(model, own.x_train[train_idx], tap)
    test = tap_features(model, own.x_test[test_idx], tap)
    base = {**target.columns, "experiment": "transfer", "metric": "hybrid_acc", "n": len(test)}
    accuracy = {}  # (labelling, d) -> test accuracy (%)
    for name, data in ((base["dataset"], own), (dataset_label(labels), other)):
        y_train, y_test = data.y_train[train_idx].numpy(), data.y_test[test_idx].numpy()
        heads = fit_heads(train, y_train, dims, options.seed)
        accuracy.update({(name, d): accuracy_percent(h, test, y_test) for d, h in heads.items()})
    rows = [
        {**base, "tap": tap, "dim": dim_value(d), "param": f"labels={name}", "value": acc}
        for (name, d), acc in accuracy.items()
    ]
    lines = [
        f"{checkpoint} @ {tap} -> linear model on {name} labels (d={dim_label(d)}): {acc:.2f}%"
        for (name, d), acc in accuracy.items()
    ]
    return Outcome(rows, lines)


TRANSFER = Analysis(
    name="transfer",
    summary="hybrid linear model on another labelling of the same images (--option labels=), Table 7c",
    run=run_transfer,
    suite_models_only=True,
    options={"labels": str},
)
