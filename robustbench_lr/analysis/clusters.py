"""2-D PCA clusters of a representation (Fig. 8, Appendix C.4).

The paper shows the 2-D PCA projection of the features before the FC, coloured by label, and
reads off that LR's classes separate better. The projection is the hybrid's own preprocessing
(standardize -> PCA, `compression.hybrid_pipeline` without the classifier), fitted on the
training features; the test features are projected and drawn. The figure gets a number: the
silhouette score of the projected test points under their labels (scikit-learn's
`silhouette_score`, Euclidean; in [−1, 1], higher = tighter, better separated clusters).

Rows (experiment `clusters`, column `tap`): `silhouette_2d` (n = test images) and
`pca2_variance` (the share of the standardized training features' variance the two components
explain). Scatter in `figures/clusters_*.png`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from robustbench_lr.analysis.base import Analysis, AnalysisOptions, analysis_tap
from robustbench_lr.analysis.compression import hybrid_pipeline, tap_features
from robustbench_lr.analysis.plotting import figure_stem, save_figure
from robustbench_lr.experiments import Outcome
from robustbench_lr.target import Target


def run_clusters(target: Target, options: AnalysisOptions) -> Outcome:
    """Fig. 8 scatter and its silhouette score for one model (default tap: before the FC)."""
    from sklearn.metrics import silhouette_score

    model, data = target.model, target.data
    cfg = target.meta["config"]
    tap = analysis_tap(model, options, cfg["arch"])
    # the hybrid's standardize -> 2-component PCA, fitted on the training features only
    projection = hybrid_pipeline(2, options.seed)[:-1].fit(tap_features(model, data.x_train, tap))
    points = projection.transform(tap_features(model, data.x_test, tap))
    labels = data.y_test.numpy()
    score = float(silhouette_score(points, labels))
    explained = float(projection.named_steps["pca"].explained_variance_ratio_.sum())
    base = {**target.columns, "experiment": "clusters", "tap": tap}
    rows = [
        {**base, "metric": "silhouette_2d", "value": score, "n": len(labels)},
        {**base, "metric": "pca2_variance", "value": explained, "n": len(data.y_train)},
    ]
    png = plot_clusters(options.results, cfg, tap, points, labels, score)
    lines = [
        f"{target.checkpoint} @ {tap}: 2-D PCA silhouette {score:.3f} "
        f"(the 2 components explain {explained:.1%} of the training variance)"
    ]
    return Outcome(rows, lines, [png])


def plot_clusters(
    out: Path, cfg: dict, tap: str, points: np.ndarray, labels: np.ndarray, score: float
) -> Path:
    """Fig. 8: the projected test points coloured by label."""
    fig = Figure(figsize=(4.5, 4))
    ax = fig.add_subplot()
    cmap = "tab10" if labels.max() < 10 else "tab20"
    ax.scatter(points[:, 0], points[:, 1], c=labels, cmap=cmap, s=5, alpha=0.7)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(f"{cfg['method']} {cfg['arch']} @ {tap}: silhouette {score:.3f}", fontsize=9)
    return save_figure(fig, out, figure_stem("clusters", cfg, tap))


CLUSTERS = Analysis(
    name="clusters",
    summary="2-D PCA projection of a tap coloured by label, with its silhouette score, Fig. 8",
    run=run_clusters,
    needs_train=True,
)
