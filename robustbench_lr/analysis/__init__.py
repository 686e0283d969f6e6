"""Analysis registry: `robustbench-lr analyze KIND` runs `ANALYSES[KIND]` on a loaded target.

Each entry's `run(target, options)`, an experiment (`experiments.Outcome` out), takes the model
under test already loaded on its test subset (`target.Target`); the faces that name an analysis
(the `analyze` command, `robustbench_lr.analyze`, the bench's analysis jobs) load it, with the
training split when the entry's `needs_train` says so. To add an analysis: write a module with
an `Analysis` value (see `analysis/base.py`) and add it to the tuple below.
"""

from __future__ import annotations

from robustbench_lr.analysis.base import Analysis, AnalysisOptions
from robustbench_lr.analysis.classwise import CLASSWISE
from robustbench_lr.analysis.clusters import CLUSTERS
from robustbench_lr.analysis.compression import HYBRID, HYBRID_DEEP, MAXMARGIN
from robustbench_lr.analysis.cushion import CUSHION
from robustbench_lr.analysis.examples import DEEPFOOL_EXAMPLES
from robustbench_lr.analysis.rank import RANK
from robustbench_lr.analysis.stability import STABILITY
from robustbench_lr.analysis.transfer import TRANSFER
from robustbench_lr.registry import Registry

ANALYSES: Registry[Analysis] = Registry("analysis")
for _analysis in (
    RANK,
    HYBRID,
    HYBRID_DEEP,
    MAXMARGIN,
    STABILITY,
    CUSHION,
    CLASSWISE,
    CLUSTERS,
    TRANSFER,
    DEEPFOOL_EXAMPLES,
):
    ANALYSES.add(_analysis.name, _analysis)

__all__ = ["ANALYSES", "Analysis", "AnalysisOptions"]
