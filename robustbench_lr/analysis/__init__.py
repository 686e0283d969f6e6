"""Analysis registry: `robustbench-lr analyze KIND` runs `ANALYSES[KIND]` on a loaded target.

To add an analysis: write a module with an `Analysis` value (see `analysis/base.py`) and add it
to the tuple below.
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
